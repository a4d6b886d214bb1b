/**
 * `npm pack` hooks: the packed package.json carries only what an installing
 * user's npm reads. `prepack` builds (dist/, the bundle), saves package.json
 * and drops this repository's own development keys (the `prepare` and
 * `pretest` scripts, `allowScripts` for the pinned Node); `postpack` puts the
 * saved file back. `restore` is safe to run at any time (a pack that failed
 * half-way leaves the saved copy, which it restores).
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
const manifest = Path.join(root, "package.json")
const saved = Path.join(root, "package.json.unpacked")

const restore = () => {
  if (Fs.existsSync(saved)) Fs.renameSync(saved, manifest)
}

const step = process.argv[2]
if (step === "prepack") {
  restore()
  execFileSync(process.execPath, [Path.join(root, "scripts/bundle.ts")], { cwd: root, stdio: "inherit" })
  const text = Fs.readFileSync(manifest, "utf8")
  const pkg = JSON.parse(text) as { scripts?: Record<string, string>; allowScripts?: unknown }
  Fs.writeFileSync(saved, text)
  delete pkg.allowScripts
  if (pkg.scripts !== undefined) {
    delete pkg.scripts["prepare"]
    delete pkg.scripts["pretest"]
    delete pkg.scripts["prepack"]
    delete pkg.scripts["postpack"]
  }
  Fs.writeFileSync(manifest, `${JSON.stringify(pkg, null, 2)}\n`)
} else if (step === "postpack" || step === "restore") {
  restore()
} else {
  throw new Error(`usage: node scripts/pack-manifest.ts prepack|postpack|restore (got ${step})`)
}

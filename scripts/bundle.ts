/**
 * Bundles the fiberd program (`src/runtime/main.ts`, the offload thread's
 * entry, cluster mode as a chunk loaded only when a table uses it) into
 * `dist/bin/` with esbuild: a process then loads a few files instead of
 * hundreds of modules (Node's module loader, not the code, was most of the
 * start-up: ~850 ms from the TypeScript sources, ~600 ms from tsc's
 * output, ~300 ms bundled). `bin/fiberd.js` runs it. `dist/bin` sits two
 * levels under the package, as `src/runtime` does, so the paths the program
 * reads beside itself (package.json, public/) are the same.
 */
import * as esbuild from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
// `--outdir DIR` (tests bundle apart, so a concurrent `npm pack` cannot swap dist/bin under them)
const at = process.argv.indexOf("--outdir")
const outdir = at >= 0 ? Path.resolve(process.argv[at + 1]!) : Path.join(root, "dist/bin")
Fs.rmSync(outdir, { recursive: true, force: true }) // chunks are named by content: no stale ones beside the new

await esbuild.build({
  entryPoints: {
    main: Path.join(root, "src/runtime/main.ts"),
    pbkdf2Thread: Path.join(root, "src/runtime/pbkdf2Thread.ts")
  },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  // pg's optional native binding is never installed; CommonJS dependencies get a require of their own
  external: ["pg-native"],
  banner: { js: "import { createRequire as __fiberdRequire } from \"node:module\"; const require = __fiberdRequire(import.meta.url);" },
  logLevel: "warning"
})

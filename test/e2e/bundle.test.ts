/**
 * The `fiberd` command runs the bundled program (dist/bin, built by
 * `npm run build` and on install). Bundled afresh here from the sources, into
 * a package-shaped temp directory (so a concurrent `npm pack` rebuilding
 * dist/bin cannot disturb it), it serves the bundled site from two prefork
 * workers (each re-executing the bundle), computes on the offload pool's
 * thread (its own bundled entry) and reports its version read from
 * package.json two levels up, as in the package.
 */
import { afterAll, assert, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { type ServerProcess, start } from "../support/serverProcess.ts"

const root = Path.resolve(import.meta.dirname, "../..")
const servers: Array<ServerProcess> = []
const dirs: Array<string> = []
afterAll(async () => {
  for (const s of servers) await s.stop()
  for (const d of dirs) Fs.rmSync(d, { recursive: true, force: true })
})

const get = (port: number, path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = Http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode!, body }))
    })
    req.on("error", reject)
  })

it("the bundled command serves the site from two workers and runs offload jobs on its thread", { timeout: 60_000 }, async () => {
  const pkg = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-bundle-"))
  dirs.push(pkg)
  Fs.symlinkSync(Path.join(root, "package.json"), Path.join(pkg, "package.json"))
  Fs.symlinkSync(Path.join(root, "public"), Path.join(pkg, "public"))
  execFileSync(process.execPath, [Path.join(root, "scripts/bundle.ts"), "--outdir", Path.join(pkg, "dist/bin")], { cwd: root })
  const command = Path.join(pkg, "dist/bin/main.js")
  assert.match(execFileSync(process.execPath, [command, "--version"], { encoding: "utf8" }), /^fiberd v\d+\.\d+\.\d+/)
  const server = await start({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }] }, ["--workers", "2"], command)
  servers.push(server)
  await server.waitFor(/worker 1 \(pid \d+\) listening/)
  await server.waitFor(/worker 2 \(pid \d+\) listening/)
  const port = server.port("web")
  const page = await get(port, "/")
  assert.strictEqual(page.status, 200)
  assert.include(page.body, "<html")
  const digest = await get(port, "/api/pbkdf2?rounds=1000")
  assert.strictEqual(digest.status, 200, digest.body)
  assert.match(digest.body, /[0-9a-f]{64}/)
})

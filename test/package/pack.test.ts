/**
 * fiberd as a dependency: the project is packed (`npm pack`, which builds
 * dist/), the tarball is installed into a fresh project that has none of
 * fiberd's TypeScript settings — without the network — and
 * used from plain JavaScript (a listener on port 0 talked to over TCP, a
 * testkit property) and from TypeScript (plain `tsc --strict`). The tarball
 * holds what a user needs, and not the tests, benchmarks or CI files.
 */
import { assert, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "../..")
const run = (cmd: string, args: ReadonlyArray<string>, cwd: string) =>
  new Promise<string>((resolve, reject) =>
    execFile(cmd, args, { cwd, maxBuffer: 16 << 20, env: { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" } }, (error, stdout, stderr) =>
      error ? reject(new Error(`${cmd} ${args.join(" ")} failed:\n${stdout}\n${stderr}`)) : resolve(stdout))
  )

const consumerJs = `import { Effect, Option } from "effect"
import * as Net from "node:net"
import * as fc from "fast-check"
import { Echo, Listener, Lines } from "fiberd"
import { Arbitraries, Property, Script } from "fiberd/testkit"

const exchange = (port, text) => new Promise((resolve, reject) => {
  const socket = Net.connect(port, "127.0.0.1", () => socket.end(text))
  let got = ""
  socket.on("data", (d) => (got += d))
  socket.on("close", () => resolve(got))
  socket.on("error", reject)
})

const served = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const listener = yield* Listener.make({ name: "echo", port: 0 }, Echo.handler)
  return yield* Effect.promise(() => exchange(listener.address.port, "hello from a consumer"))
})))
const property = await Effect.runPromise(Property.check([Arbitraries.chunked(fc.uint8Array({ maxLength: 50 }))], (input) =>
  Script.run(Echo.handler, [...input.steps, Script.endWrite]).pipe(Effect.map((r) => Buffer.from(r.output).equals(Buffer.from(input.bytes))))
, { numRuns: 20 }))
const lines = new Lines.Decoder({ maxLength: 10 }).push(Buffer.from("a\\r\\nb\\n"))
console.log(JSON.stringify({ served, propertyFailed: property.failed, runs: property.numRuns, lines: lines.map((l) => l.text) }))
`

const consumerTs = `import { Effect, Option } from "effect"
import { type Connection, Http, HttpServer, Listener, Middleware, Response, Router } from "fiberd"
import { MemoryConnection, Script } from "fiberd/testkit"

const upper = (conn: Connection): Effect.Effect<void, unknown> =>
  Effect.gen(function*() {
    const chunk = yield* conn.read
    if (Option.isNone(chunk)) return
    yield* conn.write(Buffer.from(Buffer.from(chunk.value).toString().toUpperCase()))
  })
const app: Http.App = Router.make([Router.get("/", () => Effect.succeed(Response.text("hi")))])
export const program = Effect.scoped(Effect.gen(function*() {
  const server = yield* HttpServer.listen(Middleware.cors({ origins: "*" })(app), { listen: { port: 0 } })
  const listener: Listener.Listener = yield* Listener.make({ port: 0 }, upper)
  const pair = MemoryConnection.makePair()
  const result = yield* Script.run(upper, [Script.send("x")])
  return [server.listener.address, listener.address, pair.client.id, result.text] as const
}))
`

it("npm pack, install the tarball into a fresh project (offline), import fiberd and fiberd/testkit from JS and TS", { timeout: 180_000 }, async () => {
  const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-pack-"))
  const packed = JSON.parse(await run("npm", ["pack", "--json", "--pack-destination", work], root)) as Array<{ filename: string; files: Array<{ path: string }> }>
  const files = packed[0]!.files.map((f) => f.path)
  assert.include(files, "dist/index.js")
  assert.include(files, "dist/index.d.ts")
  assert.include(files, "dist/testkit/index.js")
  assert.include(files, "bin/fiberd.js")
  assert.include(files, "dist/bin/main.js") // the bundled program the command runs
  assert.include(files, "dist/bin/pbkdf2Thread.js")
  assert.include(files, "public/index.html")
  // the README's examples come with the package (node_modules/fiberd/examples/)
  assert.include(files, "examples/line-protocol.test.ts")
  assert.include(files, "examples/model-based.test.ts")
  assert.include(files, "examples/embedding.ts")
  for (const unwanted of ["test/", "bench/", ".ci/"]) {
    assert.isFalse(files.some((f) => f.startsWith(unwanted)), `the tarball must not ship ${unwanted}`)
  }
  const project = Path.join(work, "consumer")
  Fs.mkdirSync(project)
  Fs.writeFileSync(Path.join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }))
  // install without the network: the tarball unpacked as node_modules/fiberd (what npm does with it), and
  // fiberd's dependencies linked from this checkout's node_modules (npm's offline mode would need registry
  // metadata that a lockfile install never caches)
  const modules = Path.join(project, "node_modules")
  Fs.mkdirSync(modules)
  await run("tar", ["-xzf", Path.join(work, packed[0]!.filename), "-C", modules], project)
  Fs.renameSync(Path.join(modules, "package"), Path.join(modules, "fiberd"))
  const manifest = JSON.parse(Fs.readFileSync(Path.join(modules, "fiberd", "package.json"), "utf8")) as {
    dependencies: Record<string, string>
    bin: Record<string, string>
    scripts?: Record<string, string>
    allowScripts?: unknown
  }
  // the packed manifest carries none of this repository's development keys (npm would act on or warn about them)
  assert.isUndefined(manifest.allowScripts)
  assert.isUndefined(manifest.scripts?.["prepare"])
  assert.isUndefined(manifest.scripts?.["pretest"])
  // and the checkout's own package.json is back as it was
  const own = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string>; allowScripts?: unknown }
  assert.isDefined(own.scripts["prepare"])
  assert.isDefined(own.allowScripts)
  assert.isFalse(Fs.existsSync(Path.join(root, "package.json.unpacked")))
  for (const dep of Object.keys(manifest.dependencies)) {
    Fs.mkdirSync(Path.dirname(Path.join(modules, dep)), { recursive: true })
    Fs.symlinkSync(Path.join(root, "node_modules", dep), Path.join(modules, dep))
  }
  Fs.mkdirSync(Path.join(modules, ".bin"))
  for (const [name, target] of Object.entries(manifest.bin)) Fs.symlinkSync(Path.join("..", "fiberd", target), Path.join(modules, ".bin", name))
  // plain JavaScript on plain Node (the Node this test runs on: 24)
  Fs.writeFileSync(Path.join(project, "consumer.mjs"), consumerJs)
  const out = JSON.parse((await run(process.execPath, ["consumer.mjs"], project)).trim().split("\n").at(-1)!)
  assert.deepStrictEqual(out, { served: "hello from a consumer", propertyFailed: false, runs: 20, lines: ["a", "b"] })
  // TypeScript with none of fiberd's settings: plain --strict, Node's module resolution
  Fs.writeFileSync(Path.join(project, "consumer.ts"), consumerTs)
  await run(Path.join(root, "node_modules/.bin/tsc"), ["--strict", "--noEmit", "--module", "nodenext", "--target", "es2022", "--types", "node", "--typeRoots", Path.join(root, "node_modules/@types"), "consumer.ts"], project)
  // the installed command, on the Node it needs; on an older Node (pretended: this machine's Node 20 cannot
  // load Effect 4 at all), one line and exit 1, not a stack trace
  const bin = Path.join(project, "node_modules/.bin/fiberd")
  assert.match(await run(process.execPath, [bin, "--version"], project), /^fiberd v0\.1\.0/)
  Fs.writeFileSync(Path.join(project, "old-node.mjs"), `Object.defineProperty(process.versions, "node", { value: "20.19.0" })\n`)
  const old = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
    execFile(process.execPath, ["--import", "./old-node.mjs", bin, "--version"], { cwd: project }, (error, _stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error.code as number), stderr }))
  )
  assert.strictEqual(old.code, 1)
  assert.strictEqual(old.stderr, "fiberd: needs Node.js 22.19 or newer (this is Node.js 20.19.0)\n")
})

// The embedding example, started on port 0 inside a scope, driven with real clients, then closed.
import { assert, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { AppLive, Lines, Web } from "./embedding.ts"

const get = (port: number, path: string) =>
  new Promise<string>((resolve, reject) => {
    Http.get({ host: "127.0.0.1", port, path }, (res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve(body))
    }).on("error", reject)
  })
const line = (port: number, text: string) =>
  new Promise<string>((resolve, reject) => {
    const s = Net.connect(port, "127.0.0.1", () => s.end(text + "\n"))
    let out = ""
    s.on("data", (d) => (out += d))
    s.on("close", () => resolve(out))
    s.on("error", reject)
  })
const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = Net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(false)))
    s.on("error", () => resolve(true))
  })
/** Handles and timers of the process, by kind (a fiber left running would hold one). */
const resources = () => process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap" && r !== "FSReqCallback").sort()

it.live("the embedded app serves HTTP and a line protocol; closing its scope releases ports, flushes the log, leaves nothing running", () =>
  Effect.gen(function*() {
    const accessLog = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-embed-")), "access.log")
    const before = resources()
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(AppLive({ httpPort: 0, linePort: 0, accessLog }), scope)
    const web = (context.mapUnsafe.get(Web.key) as typeof Web.Service).listener.address as { port: number }
    const lines = (context.mapUnsafe.get(Lines.key) as typeof Lines.Service).address as { port: number }
    assert.strictEqual(yield* Effect.promise(() => get(web.port, "/hello/ada")), "hello, ada (#1)\n")
    assert.strictEqual(yield* Effect.promise(() => line(lines.port, "bob")), "hello, bob (#2)\n")
    assert.strictEqual(yield* Effect.promise(() => get(web.port, "/count")), "{\"greetings\":2}")
    yield* Scope.close(scope, Exit.void)
    assert.isTrue(yield* Effect.promise(() => refused(web.port)), "HTTP port released")
    assert.isTrue(yield* Effect.promise(() => refused(lines.port)), "line port released")
    const log = Fs.readFileSync(accessLog, "utf8").trim().split("\n")
    assert.deepStrictEqual(log.map((l) => /"([^"]+)" (\d+)/.exec(l)!.slice(1).join(" ")), [
      "GET /hello/ada HTTP/1.1 200",
      "GET /count HTTP/1.1 200"
    ])
    yield* Effect.promise(() => new Promise((r) => setTimeout(r, 50)))
    assert.deepStrictEqual(resources(), before, "no socket, server or timer of fiberd is left")
  }))

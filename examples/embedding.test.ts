// The embedding example, started on port 0 inside a scope, driven with real clients, then closed.
import { assert, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import * as AsyncHooks from "node:async_hooks"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { AppLive, Lines, Web } from "./embedding.ts"

const get = (port: number, path: string) =>
  new Promise<string>((resolve, reject) => {
    Http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
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
/**
 * Sockets, servers and timers created from now on that are still alive (a fiber of fiberd left running
 * would hold a timer; a listener not closed, its server handle). Tracked by async_hooks, so timers of the
 * test runner itself do not count.
 */
const track = () => {
  const live = new Map<number, string>()
  const hook = AsyncHooks.createHook({
    init: (id, type) => {
      if (type === "Timeout" || type === "TCPSERVERWRAP" || type === "TCPWRAP") live.set(id, type)
    },
    destroy: (id) => void live.delete(id)
  }).enable()
  return {
    live: () => [...live.values()].sort(),
    stop: () => void hook.disable()
  }
}
/** Waits (event-loop turns, at most ~2 s) until `done()`: destroy hooks run a turn after a handle closes. */
const turns = (done: () => boolean) =>
  Effect.promise(() =>
    new Promise<void>((resolve) => {
      const until = Date.now() + 2000
      const check = () => (done() || Date.now() > until ? resolve() : setImmediate(check))
      check()
    })
  )

it.live("the embedded app serves HTTP and a line protocol; closing its scope releases ports, flushes the log, leaves nothing running", () =>
  Effect.gen(function*() {
    const accessLog = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-embed-")), "access.log")
    const tracked = track()
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
    yield* turns(() => tracked.live().length === 0)
    tracked.stop()
    assert.deepStrictEqual(tracked.live(), [], "no socket, server or timer of fiberd is left")
  }))

/**
 * Two fiberd instances in one process, on different ports with different
 * access logs: they share nothing (counts, logs, metrics, supervisors).
 */
import { assert, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Metric } from "effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import * as AccessLog from "../../src/actors/AccessLog.ts"
import * as Supervisor from "../../src/actors/Supervisor.ts"
import * as HttpServer from "../../src/protocols/http/Server.ts"
import * as Res from "../../src/protocols/http/Response.ts"

class A extends Context.Service<A, HttpServer.HttpServer>()("test/A") {}
class B extends Context.Service<B, HttpServer.HttpServer>()("test/B") {}

const instance = <I>(tag: Context.Key<I, HttpServer.HttpServer>, name: string, logFile: string) =>
  Layer.unwrap(Effect.gen(function*() {
    const accessLog = yield* AccessLog.AccessLog
    const root = yield* Supervisor.Root
    yield* root.startChild({ id: `${name}-worker`, start: Effect.never })
    return HttpServer.layerAs(tag)(() => Effect.succeed(Res.text(`${name}\n`)), { listen: { name }, http: { accessLog } })
  })).pipe(
    Layer.provideMerge(AccessLog.layer({ path: logFile })),
    Layer.provideMerge(Supervisor.layer({ name: `${name}-root` }, []))
  )

const get = (port: number) =>
  new Promise<string>((resolve, reject) =>
    Http.get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve(body))
    }).on("error", reject))

it.live("two instances share no counts, logs, metrics or supervisors", () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-two-"))
  const logA = Path.join(dir, "a.log")
  const logB = Path.join(dir, "b.log")
  return Effect.gen(function*() {
    yield* Effect.scoped(Effect.gen(function*() {
      const a = yield* A
      const b = yield* B
      const port = (s: HttpServer.HttpServer) => (s.listener.address as { port: number }).port
      assert.notStrictEqual(port(a), port(b))
      for (let i = 0; i < 3; i++) assert.strictEqual(yield* Effect.promise(() => get(port(a))), "alpha\n")
      assert.strictEqual(yield* Effect.promise(() => get(port(b))), "beta\n")
      assert.strictEqual(a.requests(), 3)
      assert.strictEqual(b.requests(), 1)
      assert.strictEqual(a.listener.stats.accepted, 3)
      assert.strictEqual(b.listener.stats.accepted, 1)
      const metrics = yield* Metric.snapshot
      const accepted = (service: string) =>
        (metrics.find((m) => m.id === "fiberd_connections_accepted_total" && m.attributes?.service === service)?.state as { count: number }).count
      assert.strictEqual(accepted("alpha"), 3)
      assert.strictEqual(accepted("beta"), 1)
    }).pipe(Effect.provide(Layer.mergeAll(instance(A, "alpha", logA), instance(B, "beta", logB)))))
    assert.strictEqual(Fs.readFileSync(logA, "utf8").trim().split("\n").length, 3)
    assert.strictEqual(Fs.readFileSync(logB, "utf8").trim().split("\n").length, 1)
  })
})

it.effect("each instance has its own supervisor tree", () =>
  Effect.gen(function*() {
    const one = yield* Supervisor.make({ name: "one" }, [{ id: "x", start: Effect.never }])
    const two = yield* Supervisor.make({ name: "two" }, [])
    assert.deepStrictEqual((yield* one.children).map((c) => c.id), ["x"])
    assert.deepStrictEqual(yield* two.children, [])
  }))

it.live("layerConfig reads every option from Effect's Config (under a prefix, in CONSTANT_CASE): host, port, and the engine's maxBody", () =>
  Effect.gen(function*() {
    const server = yield* HttpServer.Running
    assert.strictEqual(server.listener.address._tag === "tcp" && server.listener.address.host, "127.0.0.1")
    const port = (server.listener.address as { port: number }).port
    assert.isAbove(port, 0)
    assert.strictEqual(yield* Effect.promise(() => get(port)), "configured\n")
    const tooBig = yield* Effect.promise(() =>
      new Promise<number>((resolve, reject) => {
        const req = Http.request({ host: "127.0.0.1", port, path: "/", method: "POST", agent: false }, (res) => {
          res.resume()
          resolve(res.statusCode!)
        })
        req.on("error", reject)
        req.end("more than four bytes")
      })
    )
    assert.strictEqual(tooBig, 413, "WEB_MAX_BODY=4 was read")
  }).pipe(
    Effect.scoped,
    Effect.provide(
      HttpServer.layerConfig(() => Effect.succeed(Res.text("configured\n")), { prefix: "WEB" }).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ WEB_HOST: "127.0.0.1", WEB_PORT: "0", WEB_MAX_BODY: "4" })))
      )
    )
  ))

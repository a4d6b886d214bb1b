/**
 * HTTP/2 on the HTTP engine, with node:http2's own client: the preface
 * sniffing rule (a property), one connection in memory under any split of
 * the client's bytes (a property), and over real sockets the same apps as
 * HTTP/1.1 — JSON bodies and their refusals, 413, failing apps and streams
 * (reset, never the connection), a body that never comes (408), access-log
 * lines, and a drain (GOAWAY, in-flight streams finish).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Schema, Scope, Stream } from "effect"
import * as fc from "fast-check"
import * as NodeHttp2 from "node:http2"
import * as AccessLog from "../../../src/actors/AccessLog.ts"
import * as Http2 from "../../../src/protocols/http/Http2.ts"
import * as Req from "../../../src/protocols/http/Request.ts"
import * as Res from "../../../src/protocols/http/Response.ts"
import * as Router from "../../../src/protocols/http/Router.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import * as HttpServer from "../../../src/protocols/http/Server.ts"
import { Http2Memory, Property } from "../../../src/testkit/index.ts"
import { untilTrue } from "../../support/until.ts"

const User = Schema.Struct({ name: Schema.String })

const app = Router.make([
  Router.get("/hello", () => Effect.succeed(Res.text("hello\n"))),
  Router.get("/later", () => Effect.as(Effect.yieldNow, Res.json({ later: true }))),
  Router.post("/echo", (req) => Effect.map(req.bytes, (b) => Res.bytes(b))),
  Router.post("/users", (req) => Effect.map(Req.decodeJson(req, User), (u) => Res.json({ hello: u.name }, { status: 201 }))),
  Router.get("/die", () => Effect.die(new Error("bug"))),
  Router.get("/stream", () => Effect.succeed(Res.stream(Stream.make(Buffer.from("a"), Buffer.from("bc"))))),
  Router.get("/broken", () =>
    Effect.succeed(Res.stream(Stream.concat(Stream.make(Buffer.from("part")), Stream.fail(new Error("disk gone")))))),
  Router.get("/badhead", () => Effect.succeed(Res.text("x", { headers: [["bad header", "v"]] }))),
  Router.get("/slow", () => Effect.as(Effect.promise(() => new Promise((r) => setTimeout(r, 300))), Res.text("slow\n")))
])

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")

describe("HTTP/2 preface (prior knowledge)", () => {
  it("prefaceOf: h2 for the preface and more, more for a strict prefix of it, http/1.1 for anything else", () =>
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.nat(24).map((n) => PREFACE.subarray(0, n)), fc.uint8Array().map((b) => Buffer.concat([PREFACE, b]))), (bytes) => {
      const seen = Http2.prefaceOf(bytes)
      const isPrefix = Buffer.from(bytes).subarray(0, 24).equals(PREFACE.subarray(0, Math.min(24, bytes.byteLength)))
      if (!isPrefix) return seen === "http/1.1"
      return seen === (bytes.byteLength >= 24 ? "h2" : "more")
    })))
})

describe("HTTP/2 in memory (testkit)", () => {
  const requests: ReadonlyArray<Http2Memory.Http2Request> = [
    { path: "/hello" },
    { path: "/later" },
    { path: "/echo", method: "POST", body: Buffer.from("x".repeat(3000)) },
    { path: "/users", method: "POST", headers: { "content-type": "application/json" }, body: Buffer.from("{\"name\":\"ada\"}") },
    { path: "/nowhere" },
    { path: "/hello", method: "HEAD" }
  ]
  const summary = (answers: ReadonlyArray<Http2Memory.Http2Answer>) =>
    answers.map((a) => (a._tag === "Answer" ? `${a.status} ${a.headers["content-length"] ?? "-"} ${a.body.toString().slice(0, 30)}` : `reset ${a.code}`))

  it.effect("any split of the client's bytes gives the same answers", () =>
    Property.assert([fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 })], (split) =>
      Effect.gen(function*() {
        const http = yield* Serve.make(app, { http2: "prior-knowledge" })
        const answers = yield* Http2Memory.exchange(http.handler, requests, { split })
        assert.deepStrictEqual(summary(answers), [
          "200 6 hello\n",
          "200 14 {\"later\":true}",
          `200 3000 ${"x".repeat(30)}`,
          "201 15 {\"hello\":\"ada\"}",
          "404 14 404 Not Found\n",
          "200 6 "
        ])
      }), { numRuns: 25 }))
})

/** A library server on loopback with HTTP/2 by prior knowledge, and a client session to it. */
const withServer = <A>(http: Serve.ServeOptions, body: (session: NodeHttp2.ClientHttp2Session, server: HttpServer.HttpServer) => Promise<A>) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* HttpServer.listen(app, { listen: { host: "127.0.0.1", port: 0 }, http: { http2: "prior-knowledge", ...http } })
    const port = (server.listener.address as { port: number }).port
    const session = NodeHttp2.connect(`http://127.0.0.1:${port}`)
    session.on("error", () => {})
    yield* Effect.addFinalizer(() => Effect.sync(() => session.destroy()))
    return yield* Effect.promise(() => body(session, server))
  }))

const ask = (session: NodeHttp2.ClientHttp2Session, headers: NodeHttp2.OutgoingHttpHeaders, body?: Uint8Array | "never") =>
  new Promise<{ status: number; body: string } | { reset: string }>((resolve) => {
    const stream = session.request(headers, { endStream: body === undefined })
    let status = 0
    let text = ""
    stream.on("response", (h) => (status = Number(h[":status"])))
    stream.on("data", (d) => (text += d))
    stream.on("end", () => resolve({ status, body: text }))
    stream.on("error", (e: NodeJS.ErrnoException) => resolve({ reset: e.code ?? "?" }))
    if (body !== undefined && body !== "never") stream.end(body)
  })

describe("HTTP/2 over sockets", () => {
  it.effect("the same apps: JSON bodies (201, 415, 422), 413 for a body over maxBody, 500 for a dying app; the connection serves on", () =>
    withServer({ maxBody: 1000 }, async (session) => {
      const json = { ":method": "POST", ":path": "/users", "content-type": "application/json" }
      const results = await Promise.all([
        ask(session, json, Buffer.from("{\"name\":\"ada\"}")),
        ask(session, { ...json, "content-type": "text/plain" }, Buffer.from("{}")),
        ask(session, json, Buffer.from("{\"name\":1}")),
        ask(session, { ":method": "POST", ":path": "/echo" }, Buffer.alloc(5000)),
        ask(session, { ":method": "POST", ":path": "/echo", "content-length": "5000" }, Buffer.alloc(5000)),
        ask(session, { ":path": "/die" })
      ])
      const statuses = results.map((r) => ("status" in r ? r.status : r.reset))
      assert.deepStrictEqual(statuses, [201, 415, 422, 413, 413, 500])
      assert.deepStrictEqual(await ask(session, { ":path": "/hello" }), { status: 200, body: "hello\n" })
    }))

  it.effect("a stream that fails is reset, never the connection: the other streams finish", () =>
    withServer({}, async (session, server) => {
      const [broken, stream, hello, badHead] = await Promise.all([
        ask(session, { ":path": "/broken" }),
        ask(session, { ":path": "/stream" }),
        ask(session, { ":path": "/hello" }),
        ask(session, { ":path": "/badhead" }) // a head node:http2 refuses (a field name with a space)
      ])
      assert.deepStrictEqual(broken, { reset: "ERR_HTTP2_STREAM_ERROR" })
      assert.deepStrictEqual(stream, { status: 200, body: "abc" })
      assert.deepStrictEqual(hello, { status: 200, body: "hello\n" })
      assert.deepStrictEqual(badHead, { reset: "ERR_HTTP2_STREAM_ERROR" })
      assert.strictEqual(server.http2!.resetsByServer, 2)
      assert.deepStrictEqual(await ask(session, { ":path": "/hello" }), { status: 200, body: "hello\n" })
    }))

  it.effect("a body that never comes is answered 408 after requestTimeout; the stream is closed after another", () =>
    withServer({ requestTimeout: 200 }, async (session, server) => {
      const answer = await ask(session, { ":method": "POST", ":path": "/echo" }, "never")
      assert.deepStrictEqual("status" in answer ? answer.status : answer.reset, 408)
      // the client still says nothing: after another requestTimeout the rest of the body is refused (RST_STREAM)
      await untilTrue(() => server.http2!.openStreams === 0, "the stream to be closed")
    }))

  it.effect("a connection with no stream open for keepAliveTimeout gets GOAWAY and is closed; one that never sends a request too", () =>
    withServer({ keepAliveTimeout: 200 }, async (session, server) => {
      const goaway = new Promise<number>((resolve) => session.once("goaway", (code) => resolve(code)))
      const closed = new Promise<void>((resolve) => session.once("close", () => resolve()))
      assert.deepStrictEqual(await ask(session, { ":path": "/hello" }), { status: 200, body: "hello\n" })
      assert.strictEqual(await goaway, 0)
      await closed
      // a client that opens the connection (preface and SETTINGS) and then says nothing
      const silent = NodeHttp2.connect(`http://127.0.0.1:${(server.listener.address as { port: number }).port}`)
      silent.on("error", () => {})
      await new Promise<void>((resolve) => silent.once("close", () => resolve()))
      await untilTrue(() => server.http2!.openConnections === 0, "the server to let both connections go")
      assert.strictEqual(server.http2!.goawaysSent, 2)
    }))

  it.effect("drain: GOAWAY to the client, the in-flight stream finishes, the connection closes; one access-log line per stream", () =>
    Effect.gen(function*() {
      const log = AccessLog.makeTest()
      const scope = yield* Scope.make()
      const server = yield* HttpServer.listen(app, { listen: { host: "127.0.0.1", port: 0 }, http: { http2: "prior-knowledge", accessLog: log } }).pipe(
        Scope.provide(scope)
      )
      const port = (server.listener.address as { port: number }).port
      const session = NodeHttp2.connect(`http://127.0.0.1:${port}`)
      session.on("error", () => {})
      const goaway = new Promise<number>((resolve) => session.once("goaway", (code) => resolve(code)))
      const closed = new Promise<void>((resolve) => session.once("close", () => resolve()))
      yield* Effect.promise(() => ask(session, { ":path": "/hello" }))
      const slow = ask(session, { ":path": "/slow" })
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 50))) // the slow request is in flight
      const drained = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      assert.strictEqual(yield* Effect.promise(() => goaway), 0)
      assert.deepStrictEqual(yield* Effect.promise(() => slow), { status: 200, body: "slow\n" })
      yield* Fiber.join(drained)
      yield* Effect.promise(() => closed)
      assert.deepStrictEqual(log.lines.map((l) => /"([^"]+)" (\d+)/.exec(l)!.slice(1).join(" ")), ["GET /hello HTTP/2.0 200", "GET /slow HTTP/2.0 200"])
      assert.strictEqual(server.listener.stats.active, 0)
    }))
})

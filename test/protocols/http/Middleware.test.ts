/**
 * HTTP middleware through the engine: CORS preflights and simple requests,
 * basic and bearer guards (401 with a challenge), request logging at debug,
 * and gzip/brotli compression negotiated by Accept-Encoding (round-tripped
 * through node:zlib; small, binary and already-encoded bodies untouched).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, pipe, References, Schema } from "effect"
import * as Zlib from "node:zlib"
import * as Middleware from "../../../src/protocols/http/Middleware.ts"
import * as HttpRequest from "../../../src/protocols/http/Request.ts"
import * as Res from "../../../src/protocols/http/Response.ts"
import * as Router from "../../../src/protocols/http/Router.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import { Script } from "../../../src/testkit/index.ts"
import { type CapturedLog, captureLogs } from "../../support/logs.ts"

const big = "fiberd ".repeat(400)
const routes = Router.make([
  Router.get("/hello", () => Effect.succeed(Res.text("hello\n"))),
  Router.get("/big", () => Effect.succeed(Res.text(big))),
  Router.get("/bin", () => Effect.succeed(Res.bytes(Buffer.alloc(4096, 1)))),
  Router.post("/data", () => Effect.succeed(Res.json({ ok: true })))
])

/** One request through `app`; the raw answer split into head and body bytes. */
const exchange = (app: Serve.App, request: string) =>
  Effect.scoped(Effect.gen(function*() {
    const http = yield* Serve.make(app)
    const r = yield* Script.run(http.handler, [Script.send(request)], { realIo: true })
    const out = Buffer.from(r.output)
    const split = out.indexOf("\r\n\r\n")
    return { head: out.subarray(0, split).toString("latin1"), body: out.subarray(split + 4) }
  }))
const req = (method: string, path: string, headers: Record<string, string> = {}) =>
  `${method} ${path} HTTP/1.1\r\nHost: t\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}Connection: close\r\n\r\n`

describe("CORS", () => {
  const app = pipe(routes, Middleware.cors({ origins: ["https://a.example"], credentials: true, exposeHeaders: ["X-Id"] }))
  it.effect("a preflight from an allowed origin gets 204 with the allowed methods and the asked headers", () =>
    Effect.gen(function*() {
      const r = yield* exchange(app, req("OPTIONS", "/data", { Origin: "https://a.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" }))
      assert.match(r.head, /^HTTP\/1\.1 204 /)
      assert.include(r.head, "Access-Control-Allow-Origin: https://a.example\r\n")
      assert.include(r.head, "Access-Control-Allow-Credentials: true\r\n")
      assert.include(r.head, "Access-Control-Allow-Headers: content-type\r\n")
      assert.include(r.head, "Vary: Origin\r\n")
    }))
  it.effect("a simple request gets the CORS headers; another origin gets none", () =>
    Effect.gen(function*() {
      const ok = yield* exchange(app, req("GET", "/hello", { Origin: "https://a.example" }))
      assert.include(ok.head, "Access-Control-Allow-Origin: https://a.example\r\n")
      assert.include(ok.head, "Access-Control-Expose-Headers: X-Id\r\n")
      const other = yield* exchange(app, req("GET", "/hello", { Origin: "https://evil.example" }))
      assert.notInclude(other.head, "Access-Control-Allow-Origin")
      assert.strictEqual(other.body.toString(), "hello\n")
    }))
})

describe("authentication guards", () => {
  const basic = pipe(routes, Middleware.basicAuth({ realm: "fiberd", check: (user, password) => user === "ada" && password === "s3cret:x" }))
  it.effect("basic: no or wrong credentials get 401 with a challenge; right ones pass (a colon in the password is kept)", () =>
    Effect.gen(function*() {
      const none = yield* exchange(basic, req("GET", "/hello"))
      assert.match(none.head, /^HTTP\/1\.1 401 /)
      assert.include(none.head, `WWW-Authenticate: Basic realm="fiberd", charset="UTF-8"\r\n`)
      const wrong = yield* exchange(basic, req("GET", "/hello", { Authorization: `Basic ${Buffer.from("ada:nope").toString("base64")}` }))
      assert.match(wrong.head, /^HTTP\/1\.1 401 /)
      const right = yield* exchange(basic, req("GET", "/hello", { Authorization: `Basic ${Buffer.from("ada:s3cret:x").toString("base64")}` }))
      assert.match(right.head, /^HTTP\/1\.1 200 /)
    }))
  it.effect("bearer: an effectful check; invalid tokens get error=\"invalid_token\"", () =>
    Effect.gen(function*() {
      const bearer = pipe(routes, Middleware.bearerAuth({ check: (token) => Effect.succeed(token === "t0k3n") }))
      const ok = yield* exchange(bearer, req("GET", "/hello", { Authorization: "Bearer t0k3n" }))
      assert.match(ok.head, /^HTTP\/1\.1 200 /)
      const bad = yield* exchange(bearer, req("GET", "/hello", { Authorization: "Bearer other" }))
      assert.include(bad.head, `WWW-Authenticate: Bearer realm="api", error="invalid_token"\r\n`)
    }))
})

describe("request logging", () => {
  it.effect("each request is logged at debug with method, target and status", () => {
    const logs: Array<CapturedLog> = []
    return Effect.gen(function*() {
      yield* exchange(pipe(routes, Middleware.requestLog), req("GET", "/hello?x=1"))
      assert.isTrue(logs.some((l) => l.level === "Debug" && /^GET \/hello\?x=1 200 [\d.]+ ms$/.test(l.message)), JSON.stringify(logs.map((l) => l.message)))
    }).pipe(Effect.provide(Layer.merge(captureLogs(logs), Layer.succeed(References.MinimumLogLevel, "Debug"))))
  })
})

describe("compression", () => {
  const app = pipe(routes, Middleware.compress())
  it.effect("brotli when accepted (preferred), gzip otherwise; the body round-trips; Vary is set", () =>
    Effect.gen(function*() {
      const br = yield* exchange(app, req("GET", "/big", { "Accept-Encoding": "gzip, br" }))
      assert.include(br.head, "Content-Encoding: br\r\n")
      assert.include(br.head, "Vary: Accept-Encoding\r\n")
      assert.strictEqual(Zlib.brotliDecompressSync(br.body).toString(), big)
      assert.isBelow(br.body.byteLength, big.length / 4)
      const gz = yield* exchange(app, req("GET", "/big", { "Accept-Encoding": "gzip;q=1, br;q=0" }))
      assert.include(gz.head, "Content-Encoding: gzip\r\n")
      assert.strictEqual(Zlib.gunzipSync(gz.body).toString(), big)
      assert.include(gz.head, `Content-Length: ${gz.body.byteLength}\r\n`)
    }))
  it.effect("small bodies, binary types and clients that accept nothing are sent as they are", () =>
    Effect.gen(function*() {
      const small = yield* exchange(app, req("GET", "/hello", { "Accept-Encoding": "gzip" }))
      assert.notInclude(small.head, "Content-Encoding")
      assert.strictEqual(small.body.toString(), "hello\n")
      const bin = yield* exchange(app, req("GET", "/bin", { "Accept-Encoding": "gzip" }))
      assert.notInclude(bin.head, "Content-Encoding")
      const none = yield* exchange(app, req("GET", "/big"))
      assert.notInclude(none.head, "Content-Encoding")
      assert.strictEqual(none.body.toString(), big)
      // compressible, so it varies by Accept-Encoding even when this client gets it plain (a shared cache keeps one copy per coding)
      assert.include(none.head, "Vary: Accept-Encoding\r\n")
      const identity = yield* exchange(app, req("GET", "/big", { "Accept-Encoding": "identity" }))
      assert.include(identity.head, "Vary: Accept-Encoding\r\n")
      // what is never compressed does not vary
      assert.notInclude(small.head, "Vary")
      assert.notInclude(bin.head, "Vary")
    }))
})

describe("JSON bodies decoded with Effect Schema", () => {
  it.effect("errors: json — the engine's own refusals, HttpError and decodeJson's 400/415/422 as RFC 9457 problem details, the schema's issues listed", () =>
    Effect.gen(function*() {
      const User = Schema.Struct({ name: Schema.String, age: Schema.Int })
      const api = Router.make([
        Router.post("/users", (req) => Effect.map(HttpRequest.decodeJson(req, User), (u) => Res.json({ hello: u.name }))),
        Router.get("/teapot", () => Effect.fail(new HttpRequest.HttpError({ status: 418, reason: "short and stout" }))),
        Router.get("/die", () => Effect.die(new Error("bug")))
      ])
      const http = yield* Serve.make(api, { errors: "json", maxBody: 100 })
      const post = (body: string, type = "application/json") =>
        `POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
      const r = yield* Script.run(http.handler, [
        Script.send(post(`{"name":"ada","age":"old"}`)),
        Script.send(post(`{"name":`)),
        Script.send(post(`{}`, "text/plain")),
        Script.send("GET /teapot HTTP/1.1\r\nHost: t\r\n\r\n"),
        Script.send("GET /die HTTP/1.1\r\nHost: t\r\n\r\n"),
        Script.send(post("x".repeat(200)))
      ])
      const answers = r.text.split(/(?=HTTP\/1\.1 )/)
      const bodies = answers.map((a) => {
        assert.include(a, "Content-Type: application/problem+json\r\n")
        return JSON.parse(a.slice(a.indexOf("\r\n\r\n") + 4)) as { status: number; title: string; detail: string; issues?: Array<{ path: Array<string>; message: string }> }
      })
      assert.deepStrictEqual(bodies.map((b) => b.status), [422, 400, 415, 418, 500, 413])
      assert.deepStrictEqual(bodies[0]!.issues, [{ path: ["age"], message: "Expected number" }])
      assert.strictEqual(bodies[0]!.title, "Unprocessable Entity")
      assert.strictEqual(bodies[3]!.detail, "short and stout")
      assert.strictEqual(bodies[5]!.detail, "request body larger than 100 bytes")
    }))

  const User = Schema.Struct({ name: Schema.String, age: Schema.Int })
  const app = Router.make([
    Router.post("/users", (req) => Effect.map(HttpRequest.decodeJson(req, User), (user) => Res.json({ hello: user.name, next: user.age + 1 })))
  ])
  const post = (body: string, type = "application/json") =>
    `POST /users HTTP/1.1\r\nHost: t\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  it.effect("a valid body is decoded; 400 for malformed JSON, 422 with the schema's message for a wrong shape, 415 for another type; the connection goes on", () =>
    Effect.gen(function*() {
      const http = yield* Serve.make(app)
      const r = yield* Script.run(http.handler, [
        Script.send(post(`{"name":"ada","age":36}`)),
        Script.send(post(`{"name":`)),
        Script.send(post(`{"name":"ada","age":"old"}`)),
        Script.send(post(`{"name":"ada","age":1}`, "text/plain")),
        Script.send(post(`{"name":"bo","age":2}`, "application/vnd.api+json; charset=utf-8"))
      ])
      const answers = r.text.split(/(?=HTTP\/1\.1 )/)
      assert.deepStrictEqual(answers.map((a) => Number(a.slice(9, 12))), [200, 400, 422, 415, 200])
      assert.isTrue(answers[0]!.endsWith(`{"hello":"ada","next":37}`))
      assert.include(answers[2]!, "age")
      assert.isFalse(r.serverEnded, "refusals are answers: the connection stays open")
    }).pipe(Effect.scoped))
})

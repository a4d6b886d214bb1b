/**
 * The HTTP connection loop through the testkit: keep-alive, pipelining,
 * timeouts on TestClock, bodies, 100-continue, errors, access log entries,
 * and the smuggling table with the exact status each vector gets.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import * as fc from "fast-check"
import * as AccessLog from "../../../src/actors/AccessLog.ts"
import { type CapturedLog, captureLogs } from "../../support/logs.ts"
import * as Res from "../../../src/protocols/http/Response.ts"
import * as Router from "../../../src/protocols/http/Router.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import { Arbitraries, Property, Script } from "../../../src/testkit/index.ts"

const fakeLog = () => {
  const log = AccessLog.makeTest()
  return { entries: log.entries, log }
}

const app = Router.make([
  Router.get("/hello", () => Effect.succeed(Res.text("hello\n"))),
  Router.get("/n/:n", (req) => Effect.succeed(Res.text(`n=${req.params.n}\n`))),
  Router.get("/slow", () => Effect.sleep("10 seconds").pipe(Effect.as(Res.text("slow\n")))),
  Router.get("/empty", () => Effect.succeed(Res.status(204))),
  Router.get("/fail", () => Effect.fail("boom")),
  Router.get("/die", () => Effect.die(new Error("bug"))),
  Router.post("/echo", (req) => Effect.map(req.bytes, (b) => Res.bytes(b))),
  Router.post("/ignore", () => Effect.succeed(Res.text("ignored\n"))),
  Router.get("/stream", () => Effect.succeed(Res.stream(Stream.make(Buffer.from("a"), Buffer.from("bc")))))
])

const serve = (steps: ReadonlyArray<Script.Step>, options: Serve.ServeOptions = {}, runOptions: Script.RunOptions = {}) =>
  Effect.gen(function*() {
    const http = yield* Serve.make(app, options)
    return yield* Script.run(http.handler, steps, runOptions)
  }).pipe(Effect.scoped)

const responses = (text: string) => text.split(/(?=HTTP\/1\.1 \d{3} )/).filter((r) => r !== "")
const statusOf = (response: string) => Number(response.slice(9, 12))
const GET = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`

describe("RFC 9112 §9 connection management", () => {
  it.effect("RFC 9112 §9.3: HTTP/1.1 keeps the connection; each response has Date and Content-Length", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/hello")), Script.send(GET("/n/2"))])
      const [a, b] = responses(r.text)
      assert.match(a!, /^HTTP\/1\.1 200 OK\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n/)
      assert.include(a!, "Content-Length: 6\r\n")
      assert.isTrue(a!.endsWith("\r\n\r\nhello\n"))
      assert.isTrue(b!.endsWith("n=2\n"))
      assert.isFalse(r.serverEnded)
    }))

  it.effect("RFC 9110 §6.6.1: the Date header comes from a cache refreshed once a second (TestClock)", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/hello")), Script.wait("999 millis"), Script.send(GET("/hello")), Script.wait("2 seconds"), Script.send(GET("/hello"))])
      const dates = responses(r.text).map((x) => /Date: (.+)\r\n/.exec(x)![1])
      assert.strictEqual(dates[0], "Thu, 01 Jan 1970 00:00:00 GMT")
      assert.strictEqual(dates[1], dates[0], "within the same second: the cached value")
      assert.strictEqual(dates[2], "Thu, 01 Jan 1970 00:00:02 GMT", "refreshed by the once-a-second tick")
    }))

  it.effect("RFC 9112 §9.6: Connection: close is honoured: the response says so and the server closes", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/hello", "Connection: close\r\n")), Script.send(GET("/hello"))])
      assert.strictEqual(responses(r.text).length, 1)
      assert.include(r.text, "Connection: close\r\n")
      assert.isTrue(r.serverEnded)
    }))

  it.effect("RFC 9112 §9.3: HTTP/1.0 closes by default, persists with Connection: keep-alive", () =>
    Effect.gen(function*() {
      const closed = yield* serve([Script.send("GET /hello HTTP/1.0\r\n\r\n")])
      assert.isTrue(closed.serverEnded)
      const kept = yield* serve([Script.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")])
      assert.include(kept.text, "Connection: keep-alive\r\n")
      assert.isFalse(kept.serverEnded)
    }))

  it.effect("RFC 9112 §9.3.2: pipelined requests are answered in order, under any chunking, coalesced into few writes", () =>
    Property.assert(
      [fc.array(fc.nat(99), { minLength: 1, maxLength: 12 }).chain((ns) =>
        Arbitraries.chunkings(ns.map((n) => GET(`/n/${n}`)).join("")).map((c) => ({ ns, c }))
      )],
      ({ ns, c }) =>
        serve(c.steps).pipe(Effect.map((r) => {
          const bodies = responses(r.text).map((x) => x.slice(x.indexOf("\r\n\r\n") + 4))
          assert.deepStrictEqual(bodies, ns.map((n) => `n=${n}\n`), `input ${c}`)
        })),
      { numRuns: 150 }
    ))

  it.effect("a maximum number of requests per connection, then close", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/hello").repeat(5))], { maxRequestsPerConnection: 3 })
      assert.strictEqual(responses(r.text).length, 3)
      assert.include(responses(r.text)[2]!, "Connection: close")
      assert.isTrue(r.serverEnded)
    }))

  it.effect("a client that pipelines without reading is back-pressured, not buffered without limit", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/hello").repeat(2000))], { maxPipelineOutput: 1024 }, { bufferSize: 4096, reader: "manual" })
      assert.isUndefined(r.exit, "the server must be blocked on the full connection")
      assert.isBelow(r.output.byteLength, 4096 + 2048)
    }))
})

describe("RFC 9110 §6.4 / §9.3.2 response bodies", () => {
  it.effect("RFC 9110 §9.3.2: HEAD gets the headers (with Content-Length) and no body", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"), Script.send(GET("/hello"))])
      const [head, get] = responses(r.text)
      assert.isTrue(head!.endsWith("Content-Length: 6\r\n\r\n"))
      assert.isTrue(get!.endsWith("hello\n"))
    }))
  it.effect("RFC 9110 §15.3.5: 204 has no body and no Content-Length", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/empty"))])
      assert.notInclude(r.text, "Content-Length")
      assert.isTrue(r.text.startsWith("HTTP/1.1 204 No Content\r\n"))
    }))
  it.effect("RFC 9112 §7.1: a body of unknown length goes out chunked", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/stream"))])
      assert.include(r.text, "Transfer-Encoding: chunked\r\n")
      assert.isTrue(r.text.endsWith("\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n"))
    }))
})

describe("request bodies", () => {
  it.effect("Content-Length and chunked bodies reach the app, however split", () =>
    Property.assert([fc.uint8Array({ maxLength: 100 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 5 })], (body, chunked, cuts) =>
      Effect.gen(function*() {
        const b = Buffer.from(body)
        const wire = chunked
          ? Buffer.concat([Buffer.from("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"), b.length ? Buffer.from(`${b.length.toString(16)}\r\n`) : Buffer.alloc(0), b, b.length ? Buffer.from("\r\n") : Buffer.alloc(0), Buffer.from("0\r\n\r\n")])
          : Buffer.concat([Buffer.from(`POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: ${b.length}\r\n\r\n`), b])
        const r = yield* serve([...Arbitraries.splitAt(wire, cuts).steps, Script.send(GET("/hello"))])
        const out = Buffer.from(r.output)
        const bodyStart = out.indexOf("\r\n\r\n") + 4
        assert.isTrue(out.subarray(bodyStart, bodyStart + b.length).equals(b))
        assert.isTrue(r.text.endsWith("hello\n"), "the next request is framed right")
      })))

  it.effect("RFC 9110 §10.1.1: Expect: 100-continue gets 100 Continue when the app reads the body", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"), Script.send("abc")])
      assert.isTrue(r.text.startsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"))
      assert.isTrue(r.text.endsWith("abc"))
    }))

  it.effect("an unread body is drained, so the next request is never mis-framed", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send("POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789" + GET("/hello"))])
      assert.deepStrictEqual(responses(r.text).map(statusOf), [200, 200])
      assert.isTrue(r.text.endsWith("hello\n"))
    }))

  it.effect("an unread body too big to drain closes the connection after the response", () =>
    Effect.gen(function*() {
      const body = Array.from({ length: 10 }, () => "x".repeat(10_000))
      const r = yield* serve(Script.sendChunks(["POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", ...body]), { maxDrain: 1000 })
      assert.strictEqual(responses(r.text).length, 1)
      assert.isTrue(r.serverEnded)
    }))

  it.effect("a body over maxBody is 413 and the connection closes", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n")], { maxBody: 1000 })
      assert.strictEqual(statusOf(r.text), 413)
      assert.isTrue(r.serverEnded)
    }))
})

describe("timeouts (TestClock)", () => {
  it.effect("slowloris: a head not complete headerTimeout after its first byte gets 408 and a close", () =>
    Effect.gen(function*() {
      const steps = [Script.send("GET /hello HTTP/1.1\r\n"), Script.wait("9 seconds"), Script.send("X: 1\r\n"), Script.wait("2 seconds")]
      const r = yield* serve(steps, { headerTimeout: "10 seconds" })
      assert.strictEqual(statusOf(r.text), 408)
      assert.include(r.text, "Connection: close")
      assert.isTrue(r.serverEnded)
    }))
  it.effect("slowloris on a kept-alive connection: after a first answer, a stalled head still gets 408", () =>
    Effect.gen(function*() {
      const steps = [Script.send(GET("/hello")), Script.send("GET /hello HTTP/1.1\r\n"), Script.wait("11 seconds")]
      const r = yield* serve(steps, { headerTimeout: "10 seconds" })
      assert.deepStrictEqual(responses(r.text).map(statusOf), [200, 408])
      assert.isTrue(r.serverEnded)
    }))

  it.effect("an idle keep-alive connection is closed after keepAliveTimeout, silently", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/hello")), Script.wait("6 seconds")], { keepAliveTimeout: "5 seconds" })
      assert.strictEqual(responses(r.text).length, 1)
      assert.isTrue(r.serverEnded)
      const early = yield* serve([Script.send(GET("/hello")), Script.wait("4 seconds")], { keepAliveTimeout: "5 seconds" })
      assert.isFalse(early.serverEnded)
    }))
  it.effect("a body that does not arrive within requestTimeout gets 408", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"), Script.wait("31 seconds")], { requestTimeout: "30 seconds" })
      assert.strictEqual(statusOf(r.text), 408)
      assert.isTrue(r.serverEnded)
    }))
})

describe("drain: a connection with no request in progress is idle", () => {
  it.effect("a connection that never sent a byte ends when the drain starts (after the short drain grace)", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.drain, Script.wait("1 second")])
      assert.isTrue(r.exit !== undefined, Script.describe(r))
      assert.isTrue(r.serverEnded, "closed politely (FIN), not reset")
      assert.isFalse(r.reset)
      assert.strictEqual(r.text, "", "no 408 for a connection closed by the drain")
    }))

  it.effect("a kept-alive connection between requests ends after the drain grace; a half-sent head is answered first", () =>
    Effect.gen(function*() {
      const idle = yield* serve([Script.send(GET("/hello")), Script.drain, Script.wait("1 second")])
      assert.strictEqual(responses(idle.text).length, 1)
      assert.isTrue(idle.serverEnded)
      const busy = yield* serve([Script.send("GET /hello HTTP/1.1\r\nHo"), Script.drain, Script.send("st: t\r\n\r\n")])
      assert.strictEqual(responses(busy.text).map(statusOf)[0], 200, "the request in progress is served")
    }))

  it.effect("a request that arrives within the drain grace is answered, with Connection: close (no reset race for keep-alive clients)", () =>
    Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/hello")), Script.drain, Script.wait("100 millis"), Script.send(GET("/n/2"))])
      const [first, second] = responses(r.text)
      assert.notInclude(first!, "Connection: close")
      assert.include(second!, "Connection: close\r\n")
      assert.isTrue(second!.endsWith("n=2\n"))
      assert.isTrue(r.serverEnded)
    }))
})

describe("errors and the access log", () => {
  it.effect("an app failure or defect answers 500, is logged, and the connection goes on", () => {
    const logs: Array<CapturedLog> = []
    return Effect.gen(function*() {
      const r = yield* serve([Script.send(GET("/fail") + GET("/die") + GET("/hello"))])
      assert.deepStrictEqual(responses(r.text).map(statusOf), [500, 500, 200])
      const errors = logs.filter((l) => l.level === "Error")
      assert.deepStrictEqual(errors.map((l) => l.message), ["app failed on GET /fail", "app failed on GET /die"])
      assert.include(errors[0]!.cause, "boom")
      assert.include(errors[1]!.cause, "bug")
    }).pipe(Effect.provide(captureLogs(logs)))
  })

  it.effect("every response is logged, errors included; a client gone mid-request is 499", () =>
    Effect.gen(function*() {
      const { entries, log } = fakeLog()
      yield* serve([Script.send(GET("/hello", "User-Agent: t/1\r\nReferer: http://r/\r\n")), Script.send(GET("/nope")), Script.send("BAD\r\n\r\n")], { accessLog: log })
      assert.deepStrictEqual(entries.map((e) => e.status), [200, 404, 400])
      assert.strictEqual(entries[0]!.requestLine, "GET /hello HTTP/1.1")
      assert.strictEqual(entries[0]!.userAgent, "t/1")
      assert.strictEqual(entries[0]!.referer, "http://r/")
      assert.strictEqual(entries[0]!.bytes, 6)
      const gone = fakeLog()
      const r = yield* serve([Script.send(GET("/slow")), Script.reset], { accessLog: gone.log })
      assert.deepStrictEqual(gone.entries.map((e) => e.status), [499])
      assert.isTrue(r.exit !== undefined && !Exit.isSuccess(r.exit), "the request's fiber is stopped")
    }))
})

/** Request smuggling and framing vectors, with the exact status each must get (then the connection closes). */
const malicious: ReadonlyArray<readonly [string, string, number]> = [
  ["CL.TE", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400],
  ["TE.CL", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400],
  ["TE.TE obfuscated (xchunked)", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n", 400],
  ["TE obfuscated (chunked, identity)", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400],
  ["TE obfuscated (folded)", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400],
  ["TE obfuscated (space before colon)", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n", 400],
  ["TE gzip then chunked", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501],
  ["duplicate Content-Length, different", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400],
  ["Content-Length with sign", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", 400],
  ["oversize chunk size", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400],
  ["chunk size over the body limit", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n", 413],
  ["negative chunk size", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400],
  ["NUL in header", "GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400],
  ["bare LF", "GET / HTTP/1.1\nHost: t\n\n", 400],
  ["HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505],
  ["long request line", `GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: t\r\n\r\n`, 414],
  ["huge header", `GET / HTTP/1.1\r\nHost: t\r\nX: ${"a".repeat(20000)}\r\n\r\n`, 431]
]

describe("malicious input: the exact status, and the connection closes", () => {
  for (const [name, wire, expected] of malicious) {
    it.effect(`${name} → ${expected}`, () =>
      Effect.gen(function*() {
        const r = yield* serve([Script.send(wire)], { maxBody: 1 << 20 })
        const all = responses(r.text)
        assert.strictEqual(all.length, 1, r.text)
        assert.strictEqual(statusOf(all[0]!), expected, all[0])
        assert.include(all[0]!, "Connection: close")
        assert.isTrue(r.serverEnded)
      }))
  }
})

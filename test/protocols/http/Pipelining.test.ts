/**
 * RFC 9112 §9.3.2 pipelining: every complete request is answered before the
 * connection waits for more bytes, however the pipeline is chunked and
 * whatever the last, incomplete request is (a head cut short, or a body the
 * app never reads).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import * as Res from "../../../src/protocols/http/Response.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import { Arbitraries, Property, Script } from "../../../src/testkit/index.ts"

/** Answers `<method> <path>` without reading any body; `/async/...` answers after a scheduler turn. */
const app: Serve.App = (req) => {
  const response = Res.text(`${req.method} ${req.path}\n`)
  return req.path.startsWith("/async/") ? Effect.yieldNow.pipe(Effect.as(response)) : Effect.succeed(response)
}

interface Spec {
  readonly method: "GET" | "POST" | "PUT"
  readonly async: boolean
  readonly body: string | undefined
  readonly chunked: boolean
}

const spec: fc.Arbitrary<Spec> = fc.record({
  method: fc.constantFrom("GET" as const, "POST" as const, "PUT" as const),
  async: fc.boolean(),
  body: fc.option(fc.string({ unit: fc.constantFrom("a", "b", "\r", "\n", "0"), minLength: 1, maxLength: 40 }), { nil: undefined }),
  chunked: fc.boolean()
})

/** The request's bytes and where its head ends. */
const render = (s: Spec, i: number): { readonly bytes: string; readonly headEnd: number } => {
  const path = `${s.async ? "/async" : "/sync"}/${i}`
  let framing = ""
  let body = ""
  if (s.body !== undefined && s.method !== "GET") {
    if (s.chunked) {
      framing = "Transfer-Encoding: chunked\r\n"
      body = `${s.body.length.toString(16)}\r\n${s.body}\r\n0\r\n\r\n`
    } else {
      framing = `Content-Length: ${s.body.length}\r\n`
      body = s.body
    }
  }
  const head = `${s.method} ${path} HTTP/1.1\r\nHost: t\r\n${framing}\r\n`
  return { bytes: head + body, headEnd: head.length }
}

const pipeline = fc.tuple(fc.array(spec, { minLength: 1, maxLength: 6 }), spec, fc.nat()).chain(([complete, last, cut]) => {
  const whole = complete.map(render)
  const tail = render(last, complete.length)
  // the last request is cut somewhere strictly inside it (1 byte .. all but its last byte)
  const keep = 1 + (cut % (tail.bytes.length - 1))
  const bytes = whole.map((r) => r.bytes).join("") + tail.bytes.slice(0, keep)
  // a request whose head is complete is answered at once (the app reads no body)
  const answered = whole.length + (keep >= tail.headEnd ? 1 : 0)
  return Arbitraries.chunkings(bytes).map((chunks) => ({ chunks, answered, complete }))
})

describe("RFC 9112 §9.3.2 pipelining", () => {
  it.effect("every complete request is answered before the connection waits for more bytes", () =>
    Property.assert([pipeline], ({ chunks, answered }) =>
      Effect.gen(function*() {
        const http = yield* Serve.make(app)
        const r = yield* Script.run(http.handler, chunks.steps)
        const statuses = r.text.match(/^HTTP\/1\.1 \d{3}/gm) ?? []
        assert.strictEqual(statuses.length, answered, Script.describe(r))
        assert.isTrue(statuses.every((s) => s === "HTTP/1.1 200"), r.text)
        assert.isUndefined(r.exit, "the connection still waits for the rest of the last request")
      }), { numRuns: 300 }))

  it.effect("answers queued by the fast path go out before a slow (asynchronous) app runs", () =>
    Effect.gen(function*() {
      const slow: Serve.App = (req) =>
        req.path === "/slow" ? Effect.never : Effect.succeed(Res.text("fast\n"))
      const http = yield* Serve.make(slow)
      const r = yield* Script.run(http.handler, [
        Script.send("GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
      ])
      assert.include(r.text, "fast\n")
    }).pipe(Effect.scoped))
})

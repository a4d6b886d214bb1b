/**
 * RFC 9112 §3 / §5 limits: a parse verdict never depends on how the bytes
 * arrive. For each limit (request line 414, header section 431, header count
 * 431), a head at the limit is accepted and one byte (or one field) more is
 * refused, in one read, at every single split point, a byte at a time, and
 * under arbitrary chunkings, fed to the parser the way the connection loop
 * feeds it (resuming its scan) and to the connection loop itself.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { type HeadLimits, type HeadResult, newScan, parseHead } from "../../../src/protocols/http/Parser.ts"
import * as Res from "../../../src/protocols/http/Response.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import { Arbitraries, Property, Script } from "../../../src/testkit/index.ts"

const limits: HeadLimits = { maxRequestLine: 40, maxHeadBytes: 120, maxHeaders: 4 }

/** A request line of exactly `length` bytes (without its CRLF). */
const line = (length: number) => {
  const prefix = "GET /"
  const suffix = " HTTP/1.1"
  return prefix + "a".repeat(length - prefix.length - suffix.length) + suffix
}
/** A head of exactly `length` bytes, CRLF CRLF included. */
const headOf = (length: number) => {
  const base = `${line(20)}\r\nHost: t\r\nX-Pad: \r\n\r\n`
  return base.replace("X-Pad: ", "X-Pad: " + "p".repeat(length - base.length))
}
const fields = (n: number) => `${line(20)}\r\nHost: t\r\n${Array.from({ length: n - 1 }, (_, i) => `X-${i}: v\r\n`).join("")}\r\n`

const cases: ReadonlyArray<readonly [string, string, "Head" | 414 | 431]> = [
  ["request line at the limit", `${line(40)}\r\nHost: t\r\n\r\n`, "Head"],
  ["request line one byte over", `${line(41)}\r\nHost: t\r\n\r\n`, 414],
  ["head at the limit", headOf(120), "Head"],
  ["head one byte over", headOf(121), 431],
  ["header count at the limit", fields(4), "Head"],
  ["header count one over", fields(5), 431]
]

const verdict = (r: HeadResult): string => (r._tag === "Error" ? String(r.status) : r._tag)

/** Feeds chunks as the connection loop does: append, parse from the same start, resume the scan. */
const feed = (parts: ReadonlyArray<Uint8Array>): string => {
  const scan = newScan()
  let buffer = Buffer.alloc(0)
  for (const part of parts) {
    buffer = Buffer.concat([buffer, part])
    const r = parseHead(buffer, 0, buffer.length, limits, scan)
    if (r._tag !== "Incomplete") return verdict(r)
  }
  return "Incomplete"
}

describe("RFC 9112 limits: the verdict does not depend on the split", () => {
  for (const [name, text, expected] of cases) {
    const bytes = Buffer.from(text, "latin1")
    it(`${name}: ${expected} in one read, at every single split, and a byte at a time`, () => {
      assert.strictEqual(verdict(parseHead(bytes, 0, bytes.length, limits)), String(expected))
      for (let cut = 1; cut < bytes.length; cut++) {
        assert.strictEqual(feed([bytes.subarray(0, cut), bytes.subarray(cut)]), String(expected), `split at ${cut}`)
      }
      assert.strictEqual(feed(Arbitraries.bytewise(bytes).parts), String(expected))
    })
    it(`${name}: ${expected} under arbitrary chunkings`, () => {
      fc.assert(fc.property(Arbitraries.chunkings(bytes), (chunks) => feed(chunks.parts) === String(expected)), { numRuns: 200 })
    })
  }

  it("the verdict on arbitrary bytes is the same whole and split (first problem first)", () => {
    const byte = fc.constantFrom(0x0d, 0x0a, 0x20, 0x3a, 0x61, 0x47, 0x2f, 0x00)
    const input = fc.array(byte, { minLength: 1, maxLength: 160 }).chain((raw) => {
      const mapped = Buffer.concat([Buffer.from("GET / HTTP/1.1\r\nHost: t\r\n"), Buffer.from(raw)])
      return fc.tuple(fc.constant(mapped), Arbitraries.chunkings(mapped))
    })
    fc.assert(fc.property(input, ([whole, chunks]) => {
      const once = parseHead(whole, 0, whole.length, limits)
      const split = feed(chunks.parts)
      // a split parse may still wait where the whole parse waits too; otherwise they agree
      return split === verdict(once)
    }), { numRuns: 500 })
  })
})

describe("RFC 9112 §3: the connection loop gives the same answer under every chunking", () => {
  const app: Serve.App = () => Effect.succeed(Res.text("ok\n"))
  for (const [name, text, expected] of cases) {
    it.effect(`${name}: ${expected === "Head" ? 200 : expected} whatever the reads`, () =>
      Property.assert([Arbitraries.chunkings(text)], (chunks) =>
        Effect.gen(function*() {
          const http = yield* Serve.make(app, { ...limits })
          const r = yield* Script.run(http.handler, chunks.steps)
          assert.strictEqual(r.text.slice(9, 12), expected === "Head" ? "200" : String(expected), Script.describe(r))
        }), { numRuns: 60 }))
  }

  it.effect("a request line of exactly the limit, read ending right after its CR, is accepted", () =>
    Effect.gen(function*() {
      const http = yield* Serve.make(app, { ...limits })
      const l = line(40)
      const r = yield* Script.run(http.handler, [Script.send(`${l}\r`), Script.send("\nHost: t\r\n\r\n")])
      assert.strictEqual(r.text.slice(0, 15), "HTTP/1.1 200 OK")
    }).pipe(Effect.scoped))
})

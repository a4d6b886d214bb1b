/**
 * Body decoders (RFC 9112 §6.3, §7.1): chunked bodies round-trip under any
 * chunk sizes, extensions, trailers and input splits; malformed chunk lines
 * are 400; oversize bodies 413.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { ChunkedDecoder, ContentLengthDecoder, type BodyDecoder } from "../../../src/protocols/http/Body.ts"

const run = (decoder: BodyDecoder, input: Buffer, cuts: ReadonlyArray<number> = []) => {
  const at = [...new Set(cuts.map((c) => c % (input.length + 1))), input.length].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let buffered = Buffer.alloc(0)
  let from = 0
  for (const cut of at) {
    buffered = Buffer.concat([buffered, input.subarray(from, cut)])
    from = cut
    const step = decoder.decode(buffered, 0, buffered.length)
    out.push(...step.data.map((d) => Buffer.from(d)))
    buffered = buffered.subarray(step.consumed)
    if (step.error) return { error: step.error.status, body: Buffer.concat(out), rest: buffered }
    if (step.done) return { done: true, body: Buffer.concat(out), rest: Buffer.concat([buffered, input.subarray(from)]) }
  }
  return { done: false, body: Buffer.concat(out), rest: buffered }
}

const encodeChunked = (body: Buffer, sizes: ReadonlyArray<number>, ext: string, trailer: string) => {
  const parts: Array<Buffer> = []
  let at = 0
  for (const size of sizes) {
    if (at >= body.length) break
    const piece = body.subarray(at, at + Math.max(1, size))
    parts.push(Buffer.from(`${piece.length.toString(16)}${ext}\r\n`), piece, Buffer.from("\r\n"))
    at += piece.length
  }
  if (at < body.length) parts.push(Buffer.from(`${(body.length - at).toString(16)}\r\n`), body.subarray(at), Buffer.from("\r\n"))
  parts.push(Buffer.from(`0${ext}\r\n${trailer}\r\n`))
  return Buffer.concat(parts)
}

describe("RFC 9112 §7.1 chunked transfer coding", () => {
  it("RFC 9112 §7.1: any body, any chunk sizes, extensions and trailers, split anywhere, decodes to the body; the next request is untouched", () => {
    fc.assert(fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 10 }),
      fc.constantFrom("", ";a", ";a=b", " ; name=\"quoted \\\" value\"", ";x;y=1"),
      fc.constantFrom("", "Expires: never\r\n", "A: 1\r\nB: 2\r\n"),
      fc.array(fc.nat(), { maxLength: 8 }),
      (body, sizes, ext, trailer, cuts) => {
        const input = Buffer.concat([encodeChunked(Buffer.from(body), sizes, ext, trailer), Buffer.from("GET /next")])
        const r = run(new ChunkedDecoder({ maxBody: 1 << 20 }), input, cuts)
        assert.isTrue(r.done, JSON.stringify(r))
        assert.isTrue(r.body.equals(Buffer.from(body)))
        assert.strictEqual(r.rest.toString(), "GET /next")
      }), { numRuns: 500 })
  })

  it("RFC 9112 §7.1: chunk sizes are hex digits only: no sign, no 0x, no overflow, not empty (400)", () => {
    for (const line of ["-5", "+5", "0x5", " 5", "", "g", "5 5", "11111111111111111", "5\n", "5 ", "5\t", "5 \t "]) {
      const r = run(new ChunkedDecoder({ maxBody: 1 << 20 }), Buffer.from(`${line}\r\nhello\r\n0\r\n\r\n`))
      assert.strictEqual(r.error, 400, JSON.stringify(line))
    }
  })

  it("RFC 9112 §7.1.1: chunk extensions are parsed and bounded (400 when malformed or too long)", () => {
    for (const ext of [";", ";=v", "; a b", ";a=\"open", `;${"x".repeat(5000)}`]) {
      const r = run(new ChunkedDecoder({ maxBody: 1 << 20 }), Buffer.from(`5${ext}\r\nhello\r\n0\r\n\r\n`))
      assert.strictEqual(r.error, 400, ext.slice(0, 20))
    }
  })

  it("RFC 9112 §7.1: chunk data must be followed by CRLF (400)", () => {
    assert.strictEqual(run(new ChunkedDecoder({ maxBody: 100 }), Buffer.from("5\r\nhelloX0\r\n\r\n")).error, 400)
  })

  it("RFC 9112 §7.1.2: trailer sections are bounded and may not fold (400)", () => {
    assert.strictEqual(run(new ChunkedDecoder({ maxBody: 100 }), Buffer.from(`0\r\nX: ${"a".repeat(9000)}\r\n\r\n`)).error, 400)
    assert.strictEqual(run(new ChunkedDecoder({ maxBody: 100 }), Buffer.from("0\r\nX: a\r\n b\r\n\r\n")).error, 400)
  })

  it("RFC 9112 §7.1.2 / RFC 9110 §5: a trailer line must be a field line (token, colon, value without controls): 400 as soon as a byte shows it is not", () => {
    for (const line of ["\x8d", "no colon", ": empty name", "Bad Name: x", "X\x8d: y", "X: a\x01b", "X: a\x7fb"]) {
      // no blank line after it: the error must not wait for the end of the trailer section
      const r = run(new ChunkedDecoder({ maxBody: 100 }), Buffer.from(`5\r\nhello\r\n0\r\n${line}\r\n`, "latin1"))
      assert.strictEqual(r.error, 400, JSON.stringify(line))
    }
    for (const line of ["X-A: \x8d obs-text is allowed", "X:", "X:\tv", "Server-Timing: a;dur=1"]) {
      const r = run(new ChunkedDecoder({ maxBody: 100 }), Buffer.from(`5\r\nhello\r\n0\r\n${line}\r\n\r\n`, "latin1"))
      assert.isTrue(r.done, JSON.stringify(line))
    }
  })

  it("a chunked body over the limit is 413, even when its chunk size is announced before the data", () => {
    assert.strictEqual(run(new ChunkedDecoder({ maxBody: 10 }), Buffer.from("ffffffff\r\n")).error, 413)
    assert.strictEqual(run(new ChunkedDecoder({ maxBody: 10 }), Buffer.from("6\r\nhello!\r\n6\r\nhello!\r\n0\r\n\r\n")).error, 413)
  })
})

describe("RFC 9112 §6.3 Content-Length bodies", () => {
  it("RFC 9112 §6.3: exactly Content-Length bytes, however split; the rest belongs to the next request", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 5 }), (body, cuts) => {
      const input = Buffer.concat([Buffer.from(body), Buffer.from("NEXT")])
      const r = run(new ContentLengthDecoder(body.length), input, cuts)
      if (body.length > 0) assert.isTrue(r.done)
      assert.isTrue(r.body.equals(Buffer.from(body)))
    }))
  })
})

/**
 * The WebSocket frame decoder against hostile clients (RFC 6455 §5 and the
 * limits fiberd adds): any chunking, down to one byte at a time, gives the
 * same events as the whole input; what the decoder holds never passes
 * `maxMessage` plus a control frame, and the bytes it copies again while a
 * message grows stay linear in the message; empty and excess fragments and
 * over-long declared lengths are refused as soon as a header shows them.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { EMPTY_FRAGMENTS_ALLOWED, encodeMasked, FrameDecoder, Opcode, type Decoded } from "../../../src/protocols/websocket/Frame.ts"
import { Arbitraries } from "../../../src/testkit/index.ts"

const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d])

const show = (d: Decoded): string =>
  d._tag === "Error"
    ? `error ${d.error.code}`
    : d._tag === "Message"
    ? `${d.binary ? "binary" : "text"} ${Buffer.from(d.payload).toString("hex")}`
    : `control ${d.opcode} ${Buffer.from(d.payload).toString("hex")}`

/** Feeds `chunks` and collects events up to the first error; checks the retained-bytes bound after every step. */
const decodeAll = (chunks: ReadonlyArray<Uint8Array>, maxMessage = 1 << 16, maxFragments = 1024) => {
  const decoder = new FrameDecoder({ maxMessage, maxFragments })
  const events: Array<string> = []
  let maxRetained = 0
  for (const chunk of chunks) {
    decoder.push(chunk)
    for (let d = decoder.next(); d !== undefined; d = decoder.next()) {
      events.push(show(d))
      if (d._tag === "Error") return { events, maxRetained, decoder }
    }
    maxRetained = Math.max(maxRetained, decoder.retained)
  }
  return { events, maxRetained, decoder }
}

/** One frame of a hostile sequence: data frames of any size and FIN (including empty ones), and interleaved controls. */
const hostileFrame = fc.oneof(
  fc.record({ opcode: fc.constantFrom(Opcode.Text, Opcode.Binary, Opcode.Continuation), fin: fc.boolean(), payload: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ opcode: fc.constant(Opcode.Continuation), fin: fc.constant(false), payload: fc.constant(new Uint8Array(0)) }),
  fc.record({ opcode: fc.constantFrom(Opcode.Ping, Opcode.Pong), fin: fc.constant(true), payload: fc.uint8Array({ maxLength: 125 }) })
)

describe("FrameDecoder", () => {
  it("any chunking (down to one byte at a time) of any frame sequence, valid or not, gives the same events as the whole input", () => {
    fc.assert(
      fc.property(fc.array(hostileFrame, { maxLength: 30 }), fc.array(fc.nat(4000), { maxLength: 40 }), fc.boolean(), (frames, cuts, byteAtATime) => {
        const wire = Buffer.concat(frames.map((f) => encodeMasked(f.opcode, f.payload, mask, f.fin)))
        const whole = decodeAll([wire], 200, 8)
        const chunks = byteAtATime ? [...wire].map((b) => Buffer.from([b])) : Arbitraries.splitAt(wire, cuts.map((c) => c % (wire.byteLength + 1))).parts
        const split = decodeAll(chunks, 200, 8)
        assert.deepStrictEqual(split.events, whole.events)
        // never more than the message limit plus one control frame
        assert.isAtMost(split.maxRetained, 200 + 125)
      }),
      { numRuns: 400 }
    )
  })

  it("a message dribbled one byte at a time in one frame, or in one-byte fragments: linear copying, exact result, bounded memory", () => {
    const size = 20_000
    const body = Buffer.alloc(size, 0x61)
    const oneFrame = encodeMasked(Opcode.Binary, body, mask)
    const dribbled = decodeAll([...oneFrame].map((b) => Buffer.from([b])), size)
    assert.deepStrictEqual(dribbled.events, [`binary ${body.toString("hex")}`])
    assert.isAtMost(dribbled.decoder.regrownBytes, 2 * size)
    const fragments = Buffer.concat([...body].map((b, i) => encodeMasked(i === 0 ? Opcode.Binary : Opcode.Continuation, Buffer.from([b]), mask, i === size - 1)))
    const fragmented = decodeAll([fragments], size, size)
    assert.deepStrictEqual(fragmented.events, [`binary ${body.toString("hex")}`])
    assert.isAtMost(fragmented.decoder.regrownBytes, 2 * size)
    assert.isAtMost(fragmented.maxRetained, size)
  })

  it("empty fragments: a few are fine, more than the allowance is 1008 (they used to pile up until the heap ran out)", () => {
    const empties = (n: number) =>
      Buffer.concat([
        encodeMasked(Opcode.Text, Buffer.alloc(0), mask, false),
        ...Array.from({ length: n - 1 }, () => encodeMasked(Opcode.Continuation, Buffer.alloc(0), mask, false)),
        encodeMasked(Opcode.Continuation, Buffer.from("ok"), mask, true)
      ])
    assert.deepStrictEqual(decodeAll([empties(EMPTY_FRAGMENTS_ALLOWED)]).events, ["text 6f6b"])
    assert.deepStrictEqual(decodeAll([empties(EMPTY_FRAGMENTS_ALLOWED + 1)]).events, ["error 1008"])
    // a million empty continuation frames in one go: refused early, holding nothing
    const flood = Buffer.concat([encodeMasked(Opcode.Text, Buffer.from("x"), mask, false), Buffer.concat(Array.from({ length: 100_000 }, () => encodeMasked(Opcode.Continuation, Buffer.alloc(0), mask, false)))])
    const flooded = decodeAll([flood])
    assert.deepStrictEqual(flooded.events, ["error 1008"])
    assert.isAtMost(flooded.maxRetained, 1)
  })

  it("more fragments than maxFragments is 1009; a declared length over maxMessage is 1009 as soon as the header is read", () => {
    const frames = (n: number) =>
      Buffer.concat(Array.from({ length: n }, (_, i) => encodeMasked(i === 0 ? Opcode.Binary : Opcode.Continuation, Buffer.from([i]), mask, i === n - 1)))
    assert.strictEqual(decodeAll([frames(10)], 1000, 10).events.length, 1)
    assert.deepStrictEqual(decodeAll([frames(11)], 1000, 10).events, ["error 1009"])
    // only the 14-byte header of a frame that declares 2 GiB: refused before any payload
    const header = encodeMasked(Opcode.Binary, Buffer.alloc(70_000), mask).subarray(0, 14)
    header[1] = 0x80 | 127
    header.writeUInt32BE(0, 2)
    header.writeUInt32BE(2 ** 31, 6)
    const huge = decodeAll([header], 1 << 20)
    assert.deepStrictEqual(huge.events, ["error 1009"])
    assert.strictEqual(huge.maxRetained, 0)
    // fragments whose total passes the limit: refused at the header of the one that would pass it
    const over = Buffer.concat([encodeMasked(Opcode.Binary, Buffer.alloc(600), mask, false), encodeMasked(Opcode.Continuation, Buffer.alloc(600), mask).subarray(0, 8)])
    assert.deepStrictEqual(decodeAll([over], 1000).events, ["error 1009"])
  })

  it("protocol errors: unmasked 1002, a reserved bit 1002, an unknown opcode 1002, a fragmented control frame 1002, a stray continuation 1002", () => {
    const cases: Array<Buffer> = [
      Buffer.from([0x81, 0x01, 0x61]),
      Buffer.from([0xc1, 0x80, 0, 0, 0, 0]),
      Buffer.from([0x83, 0x80, 0, 0, 0, 0]),
      Buffer.from([0x09, 0x80, 0, 0, 0, 0]),
      encodeMasked(Opcode.Continuation, Buffer.from("x"), mask)
    ]
    for (const wire of cases) assert.deepStrictEqual(decodeAll([wire]).events, ["error 1002"], wire.toString("hex"))
  })
})

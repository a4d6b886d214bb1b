/**
 * Framing codecs: whatever the chunking (the testkit's chunkings, down to a
 * byte at a time), the decoders return exactly the frames that were encoded;
 * limits give one clear error; UTF-8 split across reads stays intact; and the
 * Connection reader ends at EOF after a last unterminated frame, and at a
 * drain between frames.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import * as fc from "fast-check"
import * as Codec from "../../../src/protocols/codecs/Codec.ts"
import * as Delimited from "../../../src/protocols/codecs/Delimited.ts"
import * as LengthPrefixed from "../../../src/protocols/codecs/LengthPrefixed.ts"
import * as Lines from "../../../src/protocols/codecs/Lines.ts"
import { Arbitraries, MemoryConnection } from "../../../src/testkit/index.ts"

const decodeAll = <F>(decoder: Codec.FrameDecoder<F>, parts: ReadonlyArray<Uint8Array>): Array<F> => [
  ...parts.flatMap((p) => decoder.push(p)),
  ...decoder.end()
]
const text = (b: Uint8Array) => Buffer.from(b).toString("latin1")

describe("Delimited", () => {
  for (const delimiter of ["\0", "||"]) {
    it(`frames separated by ${JSON.stringify(delimiter)} come back exactly under any chunking; over-long ones once as TooLong`, () => {
      const frame = fc.string({ unit: fc.constantFrom("a", "b", "|", "\0", "x"), maxLength: 12 }).filter((f) => !f.includes(delimiter) && !(delimiter === "||" && f.endsWith("|")))
      fc.assert(fc.property(fc.array(frame, { maxLength: 8 }).chain((frames) => {
        const wire = frames.map((f) => f + delimiter).join("")
        return fc.tuple(fc.constant(frames), Arbitraries.chunkings(Buffer.from(wire, "latin1")))
      }), ([frames, chunks]) => {
        const out = decodeAll(new Delimited.Decoder({ delimiter, maxLength: 8 }), chunks.parts)
        const expected = frames.map((f) => (f.length > 8 ? "TooLong" : f))
        assert.deepStrictEqual(out.map((f) => (f._tag === "TooLong" ? "TooLong" : text(f.bytes))), expected)
      }), { numRuns: 300 })
    })
  }

  it("a last frame without its delimiter is returned at the end; nothing is returned twice", () => {
    const d = new Delimited.Decoder({ delimiter: "\0", maxLength: 10 })
    assert.deepStrictEqual(d.push(Buffer.from("ab\0c")).map((f) => f._tag === "Frame" && text(f.bytes)), ["ab"])
    assert.isTrue(d.partial)
    assert.deepStrictEqual(d.end().map((f) => f._tag === "Frame" && text(f.bytes)), ["c"])
    assert.deepStrictEqual(d.end(), [])
  })
})

describe("Lines", () => {
  it("LF and CRLF lines of any Unicode text come back exactly under any chunking (characters split across reads stay whole)", () => {
    const line = fc.string({ unit: "grapheme", maxLength: 10 }).filter((l) => !l.includes("\n") && !l.endsWith("\r"))
    fc.assert(fc.property(fc.array(fc.tuple(line, fc.boolean()), { maxLength: 8 }).chain((lines) => {
      const wire = Buffer.from(lines.map(([l, crlf]) => l + (crlf ? "\r\n" : "\n")).join(""), "utf8")
      return fc.tuple(fc.constant(lines.map(([l]) => l)), Arbitraries.chunkings(wire))
    }), ([lines, chunks]) => {
      const out = decodeAll(new Lines.Decoder({ maxLength: 64 }), chunks.parts)
      assert.deepStrictEqual(out.map((l) => (l._tag === "Line" ? l.text : "TooLong")), lines.map((l) => Buffer.byteLength(l) > 64 ? "TooLong" : l))
    }), { numRuns: 300 })
  })

  it("maxLength counts the line's bytes without its line end: at the limit accepted, one over is TooLong (once), and the next line is fine", () => {
    const d = new Lines.Decoder({ maxLength: 4 })
    const out = decodeAll(d, Arbitraries.bytewise("abcd\r\nabcde\r\nok\n").parts)
    assert.deepStrictEqual(out, [{ _tag: "Line", text: "abcd" }, { _tag: "TooLong", maxLength: 4 }, { _tag: "Line", text: "ok" }])
  })
})

describe("LengthPrefixed", () => {
  for (const prefix of [1, 2, 4] as const) {
    it(`${prefix}-byte big-endian prefixes: payloads come back exactly under any chunking`, () => {
      fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }).chain((payloads) => {
        const wire = Buffer.concat(payloads.map((p) => LengthPrefixed.encode(p, prefix)))
        return fc.tuple(fc.constant(payloads), Arbitraries.chunkings(wire))
      }), ([payloads, chunks]) => {
        const out = decodeAll(new LengthPrefixed.Decoder({ prefix, maxSize: 64 }), chunks.parts)
        assert.deepStrictEqual(out.map((f) => (f._tag === "Frame" ? Buffer.from(f.bytes).toString("hex") : f._tag)), payloads.map((p) => Buffer.from(p).toString("hex")))
      }), { numRuns: 200 })
    })
  }

  it("a size over maxSize is reported once (TooLarge) and the decoder stops; a cut frame is Truncated at the end", () => {
    const big = new LengthPrefixed.Decoder({ prefix: 2, maxSize: 3 })
    assert.deepStrictEqual(big.push(Buffer.from([0, 2, 1, 2, 0, 9, 1])), [
      { _tag: "Frame", bytes: new Uint8Array([1, 2]) },
      { _tag: "TooLarge", size: 9, maxSize: 3 }
    ])
    assert.deepStrictEqual(big.push(Buffer.from([0, 1, 7])), [])
    const cut = new LengthPrefixed.Decoder({ prefix: 4, maxSize: 100 })
    assert.deepStrictEqual(cut.push(Buffer.from([0, 0, 0, 5, 1, 2])), [])
    assert.deepStrictEqual(cut.end(), [{ _tag: "Truncated", missing: 3 }])
    assert.throws(() => LengthPrefixed.encode(new Uint8Array(256), 1), RangeError)
  })
})

describe("Codec.reader over a Connection", () => {
  it.effect("lines arrive whole in any chunking; a last line without its end comes at EOF; then None", () =>
    Effect.gen(function*() {
      const { client, server } = MemoryConnection.makePair()
      // the reader's type has a name, for a function that takes one
      const next: Codec.Reader<Lines.Line> = Codec.reader(server, new Lines.Decoder({ maxLength: 100 }))
      const collected = yield* Effect.forkChild(Effect.gen(function*() {
        const out: Array<string> = []
        while (true) {
          const line = yield* next
          if (Option.isNone(line)) return out
          if (line.value._tag === "Line") out.push(line.value.text)
        }
      }), { startImmediately: true })
      for (const part of Arbitraries.splitAt("héllo\r\nwör", [2, 3, 8]).parts) yield* client.write(part)
      yield* client.write(Buffer.from("ld"))
      yield* client.endWrite
      assert.deepStrictEqual(yield* Fiber.join(collected), ["héllo", "wörld"])
    }))

  it.effect("between frames a drain ends the stream; inside a frame it does not", () =>
    Effect.gen(function*() {
      const { client, server } = MemoryConnection.makePair()
      const next = Codec.reader(server, new Lines.Decoder({ maxLength: 100 }))
      yield* client.write(Buffer.from("one\ntw"))
      assert.deepStrictEqual(yield* next, Option.some({ _tag: "Line", text: "one" } as Lines.Line))
      const pending = yield* Effect.forkChild(next, { startImmediately: true })
      server.drain()
      yield* client.write(Buffer.from("o\n"))
      assert.deepStrictEqual(yield* Fiber.join(pending), Option.some({ _tag: "Line", text: "two" } as Lines.Line))
      assert.isTrue(Option.isNone(yield* next), "idle now and draining: the stream ends")
    }))
})

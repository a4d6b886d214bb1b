/**
 * fast-check arbitraries for the things real networks do to protocol input:
 * arbitrary chunking of a byte string (down to one byte at a time),
 * interleavings of several clients, slow readers, and resets at arbitrary
 * points. Values print readably in counterexamples (see `Show`).
 */
import * as fc from "fast-check"
import * as Script from "./Script.ts"
import * as Show from "./Show.ts"

const encode = (data: string | Uint8Array): Uint8Array =>
  typeof data === "string" ? Buffer.from(data, "utf8") : data

/** A byte string split into chunks; prints as `"ab" | "c"`. */
export class Chunks {
  readonly parts: ReadonlyArray<Uint8Array>
  constructor(parts: ReadonlyArray<Uint8Array>) {
    this.parts = parts
  }
  /** The whole byte string. */
  get bytes(): Uint8Array {
    return Buffer.concat(this.parts)
  }
  /** The chunks as strings (latin1), handy for assertions. */
  get strings(): Array<string> {
    return this.parts.map((p) => Buffer.from(p).toString("latin1"))
  }
  /** One Send step per chunk. */
  get steps(): Array<Script.Step> {
    return this.parts.map((p) => Script.send(p))
  }
  [fc.toStringMethod](): string {
    return Show.chunks(this.parts)
  }
  toString(): string {
    return Show.chunks(this.parts)
  }
}

/** Splits `data` at the given cut positions (any order, duplicates ignored). */
export const splitAt = (data: string | Uint8Array, cuts: ReadonlyArray<number>): Chunks => {
  const bytes = encode(data)
  const at = [...new Set(cuts)].filter((c) => c > 0 && c < bytes.byteLength).sort((a, b) => a - b)
  const parts: Array<Uint8Array> = []
  let from = 0
  for (const cut of at) {
    parts.push(bytes.subarray(from, cut))
    from = cut
  }
  parts.push(bytes.subarray(from))
  return new Chunks(bytes.byteLength === 0 ? [] : parts)
}

/**
 * Every chunking of `data`: any set of cut points, from none to every byte
 * (one byte at a time comes up about once in `data.length` runs). Shrinks
 * toward fewer cuts at earlier positions, so a failure shrinks to the minimal
 * split.
 */
export const chunkings = (data: string | Uint8Array): fc.Arbitrary<Chunks> => {
  const bytes = encode(data)
  if (bytes.byteLength <= 1) return fc.constant(new Chunks(bytes.byteLength === 0 ? [] : [bytes]))
  const positions = bytes.byteLength - 1
  return fc.uniqueArray(fc.integer({ min: 1, max: positions }), { maxLength: positions, size: "max" })
    .map((cuts) => splitAt(bytes, cuts))
}

/** `data` one byte at a time: the chunking that breaks the most parsers. */
export const bytewise = (data: string | Uint8Array): Chunks => {
  const bytes = encode(data)
  return splitAt(bytes, Array.from({ length: bytes.byteLength }, (_, i) => i))
}

/** An arbitrary byte string (from `bytes`), then an arbitrary chunking of it. */
export const chunked = (bytes: fc.Arbitrary<string | Uint8Array>): fc.Arbitrary<Chunks> => bytes.chain(chunkings)

/** One item of an interleaving: which client, and its next item. */
export interface Turn<A> {
  readonly client: number
  readonly item: A
}

/**
 * Every interleaving of several clients' sequences that keeps each client's
 * own order: the order in which a server sees their chunks arrive.
 */
export const interleavings = <A>(sequences: ReadonlyArray<ReadonlyArray<A>>): fc.Arbitrary<Array<Turn<A>>> => {
  const slots = sequences.flatMap((seq, client) => seq.map(() => client))
  return fc.shuffledSubarray(slots, { minLength: slots.length, maxLength: slots.length }).map((order) => {
    const next = sequences.map(() => 0)
    return order.map((client) => ({ client, item: sequences[client]![next[client]!++]! }))
  })
}

/**
 * A slow reader: the script's steps with `Read(n)` steps (n in 1..maxRead)
 * between them, for a run with `reader: "manual"` and a small buffer.
 */
export const withSlowReads = (
  steps: ReadonlyArray<Script.Step>,
  maxRead = 16
): fc.Arbitrary<Array<Script.Step>> =>
  fc.array(fc.integer({ min: 1, max: maxRead }), { minLength: steps.length + 1, maxLength: steps.length + 1 }).map(
    (reads) => [Script.read(reads[0]!), ...steps.flatMap((step, i) => [step, Script.read(reads[i + 1]!)])]
  )

/** The script's steps with a `Reset` inserted at an arbitrary point (possibly before everything). */
export const withResetAt = (steps: ReadonlyArray<Script.Step>): fc.Arbitrary<Array<Script.Step>> =>
  fc.integer({ min: 0, max: steps.length }).map((at) => [...steps.slice(0, at), Script.reset, ...steps.slice(at)])

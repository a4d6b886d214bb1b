/**
 * Line framing: lines ended by LF or CRLF, decoded as UTF-8 only once a whole
 * line is there (so a character split across two reads is never corrupted),
 * each at most `maxLength` bytes (without its line end); a longer line gives
 * one `TooLong` and its rest is discarded. Pure and incremental, built on
 * the delimiter decoder.
 */
import * as Delimited from "./Delimited.ts"

/** What a line decoder produces. */
export type Line =
  | { readonly _tag: "Line"; readonly text: string }
  | { readonly _tag: "TooLong"; readonly maxLength: number }

const decoder = new TextDecoder("utf-8")

const toLine = (maxLength: number) => (frame: Delimited.Frame): Line => {
  if (frame._tag === "TooLong") return { _tag: "TooLong", maxLength }
  const bytes = frame.bytes
  const end = bytes.byteLength > 0 && bytes[bytes.byteLength - 1] === 0x0d ? bytes.byteLength - 1 : bytes.byteLength
  if (end > maxLength) return { _tag: "TooLong", maxLength }
  return { _tag: "Line", text: decoder.decode(bytes.subarray(0, end)) }
}

/** A decoder of LF / CRLF lines of at most `maxLength` bytes. */
export class Decoder {
  private readonly inner: Delimited.Decoder
  private readonly convert: (frame: Delimited.Frame) => Line
  constructor(options: { readonly maxLength: number }) {
    // one more byte for a CR before the LF
    this.inner = new Delimited.Decoder({ delimiter: "\n", maxLength: options.maxLength + 1 })
    this.convert = toLine(options.maxLength)
  }
  get partial(): boolean {
    return this.inner.partial
  }
  push(chunk: Uint8Array): Array<Line> {
    return this.inner.push(chunk).map(this.convert)
  }
  end(): Array<Line> {
    return this.inner.end().map(this.convert)
  }
}

/** Encodes lines as UTF-8 with CRLF line ends (one buffer). */
export const encode = (lines: ReadonlyArray<string>): Uint8Array => Buffer.from(lines.map((l) => l + "\r\n").join(""), "utf8")

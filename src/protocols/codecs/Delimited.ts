/**
 * Delimiter framing (the general case of lines, NUL-terminated records...):
 * a pure, incremental decoder. Feed it chunks as they arrive, in any split;
 * it returns the complete frames (the bytes before each delimiter), and one
 * `TooLong` for a frame over `maxLength` (whose bytes are then discarded up
 * to the next delimiter). No I/O; `Codec.reader` runs it over a Connection.
 */

/** What a delimiter decoder produces. */
export type Frame =
  | { readonly _tag: "Frame"; readonly bytes: Uint8Array }
  | { readonly _tag: "TooLong"; readonly maxLength: number }

/** A copy of `bytes[from, to)` that holds no reference to the chunk it came from. */
const copy = (bytes: Uint8Array, from: number, to: number): Uint8Array => Uint8Array.prototype.slice.call(bytes, from, to)

/** A decoder for frames ended by `delimiter` (one or more bytes). */
export class Decoder {
  private pending: Uint8Array = new Uint8Array(0)
  private discarding = false
  readonly delimiter: Uint8Array
  readonly maxLength: number

  constructor(options: { readonly delimiter: Uint8Array | string; readonly maxLength: number }) {
    this.delimiter = typeof options.delimiter === "string" ? Buffer.from(options.delimiter, "latin1") : options.delimiter
    if (this.delimiter.byteLength === 0) throw new Error("the delimiter must not be empty")
    this.maxLength = options.maxLength
  }

  /** True while bytes of an unfinished frame are held (the connection is inside a message). */
  get partial(): boolean {
    return this.pending.byteLength > 0 || this.discarding
  }

  /** Adds a chunk; returns the frames it completes, in order. */
  push(chunk: Uint8Array): Array<Frame> {
    const out: Array<Frame> = []
    let data = this.pending.byteLength === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.pending, chunk])
    let at = data.indexOf(this.delimiter)
    while (at !== -1) {
      if (this.discarding) this.discarding = false
      else if (at > this.maxLength) out.push({ _tag: "TooLong", maxLength: this.maxLength })
      else out.push({ _tag: "Frame", bytes: copy(data, 0, at) })
      data = data.subarray(at + this.delimiter.byteLength)
      at = data.indexOf(this.delimiter)
    }
    // a frame already over the limit is reported now (its end may never come) and its rest dropped;
    // keep the last delimiter.length - 1 bytes, which may begin a delimiter split across chunks
    if (!this.discarding && data.byteLength > this.maxLength + this.delimiter.byteLength - 1) {
      out.push({ _tag: "TooLong", maxLength: this.maxLength })
      this.discarding = true
    }
    this.pending = copy(data, this.discarding ? Math.max(0, data.byteLength - (this.delimiter.byteLength - 1)) : 0, data.byteLength)
    return out
  }

  /** The end of input: a last frame without its delimiter, if any bytes are left. */
  end(): Array<Frame> {
    const rest = this.pending
    const discarding = this.discarding
    this.pending = new Uint8Array(0)
    this.discarding = false
    if (discarding || rest.byteLength === 0) return []
    return [rest.byteLength > this.maxLength ? { _tag: "TooLong", maxLength: this.maxLength } : { _tag: "Frame", bytes: rest }]
  }
}

/**
 * Length-prefixed framing: each frame is a big-endian unsigned length (1, 2
 * or 4 bytes) followed by that many bytes. A length over `maxSize` cannot be
 * skipped safely (the stream has no other boundary), so the decoder reports
 * `TooLarge` once and stops: the protocol should close the connection. Pure
 * and incremental.
 */

/** What a length-prefixed decoder produces. */
export type Frame =
  | { readonly _tag: "Frame"; readonly bytes: Uint8Array }
  | { readonly _tag: "TooLarge"; readonly size: number; readonly maxSize: number }
  | { readonly _tag: "Truncated"; readonly missing: number }

/** Bytes of the length prefix. */
export type PrefixSize = 1 | 2 | 4

const readLength = (data: Uint8Array, at: number, prefix: PrefixSize): number =>
  prefix === 1 ? data[at]! : prefix === 2 ? (data[at]! << 8) | data[at + 1]! : ((data[at]! << 24) >>> 0) + (data[at + 1]! << 16) + (data[at + 2]! << 8) + data[at + 3]!

/** A decoder of `prefix`-byte big-endian length-prefixed frames of at most `maxSize` bytes. */
export class Decoder {
  private pending: Uint8Array = new Uint8Array(0)
  private failed = false
  readonly prefix: PrefixSize
  readonly maxSize: number
  constructor(options: { readonly prefix: PrefixSize; readonly maxSize: number }) {
    this.prefix = options.prefix
    this.maxSize = options.maxSize
  }
  get partial(): boolean {
    return this.pending.byteLength > 0
  }
  push(chunk: Uint8Array): Array<Frame> {
    if (this.failed) return []
    const data = this.pending.byteLength === 0 ? chunk : Buffer.concat([this.pending, chunk])
    const out: Array<Frame> = []
    let at = 0
    while (data.byteLength - at >= this.prefix) {
      const size = readLength(data, at, this.prefix)
      if (size > this.maxSize) {
        this.failed = true
        this.pending = new Uint8Array(0)
        out.push({ _tag: "TooLarge", size, maxSize: this.maxSize })
        return out
      }
      if (data.byteLength - at - this.prefix < size) break
      out.push({ _tag: "Frame", bytes: data.slice(at + this.prefix, at + this.prefix + size) })
      at += this.prefix + size
    }
    this.pending = data.slice(at)
    return out
  }
  end(): Array<Frame> {
    if (this.failed || this.pending.byteLength === 0) return []
    const rest = this.pending
    this.pending = new Uint8Array(0)
    const need = rest.byteLength < this.prefix ? this.prefix - rest.byteLength : readLength(rest, 0, this.prefix) - (rest.byteLength - this.prefix)
    return [{ _tag: "Truncated", missing: need }]
  }
}

/** Encodes one frame with its `prefix`-byte big-endian length. */
export const encode = (payload: Uint8Array, prefix: PrefixSize): Uint8Array => {
  const max = prefix === 1 ? 0xff : prefix === 2 ? 0xffff : 0xffffffff
  if (payload.byteLength > max) throw new RangeError(`a ${prefix}-byte prefix cannot carry ${payload.byteLength} bytes`)
  const out = Buffer.allocUnsafe(prefix + payload.byteLength)
  if (prefix === 1) out.writeUInt8(payload.byteLength, 0)
  else if (prefix === 2) out.writeUInt16BE(payload.byteLength, 0)
  else out.writeUInt32BE(payload.byteLength, 0)
  out.set(payload, prefix)
  return out
}

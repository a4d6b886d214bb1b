/**
 * Request body decoders: pure state machines over byte ranges.
 *
 * `decode(buffer, start, end)` consumes what it can and returns the body
 * bytes found (subarrays, no copies), how much it consumed, whether the body
 * is complete, or an error status. Content-Length bodies just count; chunked
 * bodies (RFC 9112 §7.1) validate chunk sizes (hex digits only, no sign, no
 * overflow), bound chunk extensions and trailer sections, and require the
 * CRLF after every chunk.
 */

/** What one decode step produced. */
export interface DecodeStep {
  /** Body bytes found, in order (views into the input). */
  readonly data: Array<Uint8Array>
  /** Input bytes consumed. */
  readonly consumed: number
  /** The body is complete (everything after `consumed` belongs to the next request). */
  readonly done: boolean
  /** A framing error: 400, or 413 when the body exceeds its limit. */
  readonly error?: { readonly status: 400 | 413; readonly reason: string }
}

/** A body decoder. */
export interface BodyDecoder {
  decode(buffer: Uint8Array, start: number, end: number): DecodeStep
  /** Body bytes decoded so far. */
  readonly received: number
}

/** Limits on a chunked body. */
export interface ChunkedLimits {
  /** Largest body, in bytes (larger: 413). */
  readonly maxBody: number
  /** Longest chunk-size line including extensions. Default 4096. */
  readonly maxChunkLine?: number
  /** Largest trailer section. Default 8192. */
  readonly maxTrailerBytes?: number
}

/** A body of exactly `length` bytes. */
export class ContentLengthDecoder implements BodyDecoder {
  received = 0
  private readonly length: number
  constructor(length: number) {
    this.length = length
  }
  decode(buffer: Uint8Array, start: number, end: number): DecodeStep {
    const take = Math.min(end - start, this.length - this.received)
    this.received += take
    return {
      data: take > 0 ? [buffer.subarray(start, start + take)] : [],
      consumed: take,
      done: this.received === this.length
    }
  }
}

const enum_ = {
  Size: 0,
  Line: 1,
  Data: 2,
  DataCr: 3,
  DataLf: 4,
  Trailer: 5,
  Done: 6
} as const
type State = typeof enum_[keyof typeof enum_]

const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+"
/** chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 §7.1.1): whitespace only before a ";" */
const CHUNK_EXT = new RegExp(`^(?:[ \\t]*;[ \\t]*${TOKEN}(?:[ \\t]*=[ \\t]*(?:${TOKEN}|"(?:[^"\\\\]|\\\\.)*"))?)*$`)

/** tchar (RFC 9110 §5.6.2): the bytes a field name is made of. */
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1

const hexValue = (c: number): number =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1

/** A chunked body (RFC 9112 §7.1): sizes, extensions, data, trailers. */
export class ChunkedDecoder implements BodyDecoder {
  received = 0
  private state: State = enum_.Size
  private size = 0
  private digits = 0
  private lineBytes = 0
  private ext = ""
  private remaining = 0
  private trailerBytes = 0
  private trailerLineStart = true
  /** In a trailer line, past its colon (in the value). */
  private trailerValue = false
  private prevCr = false
  private readonly maxBody: number
  private readonly maxChunkLine: number
  private readonly maxTrailerBytes: number

  constructor(limits: ChunkedLimits) {
    this.maxBody = limits.maxBody
    this.maxChunkLine = limits.maxChunkLine ?? 4096
    this.maxTrailerBytes = limits.maxTrailerBytes ?? 8192
  }

  decode(buffer: Uint8Array, start: number, end: number): DecodeStep {
    const data: Array<Uint8Array> = []
    let i = start
    const fail = (status: 400 | 413, reason: string): DecodeStep => ({ data, consumed: i - start, done: false, error: { status, reason } })
    while (i < end) {
      const c = buffer[i]!
      switch (this.state) {
        case enum_.Size: {
          const h = hexValue(c)
          if (h !== -1) {
            if (++this.digits > 16) return fail(400, "chunk size too long")
            this.size = this.size * 16 + h
            if (this.size > Number.MAX_SAFE_INTEGER) return fail(400, "chunk size overflows")
            this.lineBytes++
            i++
            break
          }
          if (this.digits === 0) return fail(400, "chunk size must start with a hex digit")
          this.state = enum_.Line
          this.ext = ""
          break // re-examine c in Line
        }
        case enum_.Line: {
          // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), then CRLF
          if (++this.lineBytes > this.maxChunkLine) return fail(400, "chunk extensions too long")
          i++
          if (c === 0x0d) {
            this.prevCr = true
            break
          }
          if (c === 0x0a) {
            if (!this.prevCr) return fail(400, "bare LF after chunk size")
            this.prevCr = false
            if (this.ext !== "" && !CHUNK_EXT.test(this.ext)) return fail(400, "malformed chunk extension")
            if (this.received + this.size > this.maxBody) return fail(413, "request body too large")
            if (this.size === 0) {
              this.state = enum_.Trailer
              this.trailerLineStart = true
            } else {
              this.remaining = this.size
              this.state = enum_.Data
            }
            break
          }
          if (this.prevCr) return fail(400, "bare CR in chunk line")
          if ((c < 0x20 && c !== 0x09) || c === 0x7f) return fail(400, "control character in chunk extension")
          if (this.ext === "" && c !== 0x3b && c !== 0x20 && c !== 0x09) return fail(400, "invalid chunk size")
          this.ext += String.fromCharCode(c)
          break
        }
        case enum_.Data: {
          const take = Math.min(end - i, this.remaining)
          data.push(buffer.subarray(i, i + take))
          i += take
          this.remaining -= take
          this.received += take
          if (this.remaining === 0) this.state = enum_.DataCr
          break
        }
        case enum_.DataCr:
          if (c !== 0x0d) return fail(400, "chunk data not followed by CRLF")
          this.state = enum_.DataLf
          i++
          break
        case enum_.DataLf:
          if (c !== 0x0a) return fail(400, "chunk data not followed by CRLF")
          this.state = enum_.Size
          this.size = 0
          this.digits = 0
          this.lineBytes = 0
          i++
          break
        case enum_.Trailer: {
          // trailer-section = *( field-line CRLF ) CRLF ; bounded, validated loosely, discarded
          if (++this.trailerBytes > this.maxTrailerBytes) return fail(400, "trailer section too large")
          i++
          if (c === 0x0d) {
            if (this.prevCr) return fail(400, "bare CR in trailer")
            this.prevCr = true
            break
          }
          if (c === 0x0a) {
            if (!this.prevCr) return fail(400, "bare LF in trailer")
            this.prevCr = false
            if (this.trailerLineStart) {
              this.state = enum_.Done
              return { data, consumed: i - start, done: true }
            }
            if (!this.trailerValue) return fail(400, "a trailer line without a colon")
            this.trailerLineStart = true
            this.trailerValue = false
            break
          }
          if (this.prevCr) return fail(400, "bare CR in trailer")
          if (this.trailerLineStart && (c === 0x20 || c === 0x09)) return fail(400, "obsolete line folding in trailer")
          // field-line = field-name ":" OWS field-value OWS; a value is VCHAR, obs-text, SP and HTAB
          if (this.trailerValue) {
            if ((c < 0x20 && c !== 0x09) || c === 0x7f) return fail(400, "control character in trailer")
          } else if (c === 0x3a) {
            if (this.trailerLineStart) return fail(400, "a trailer field with an empty name")
            this.trailerValue = true
          } else if (TCHAR[c] !== 1) return fail(400, "invalid character in a trailer field name")
          this.trailerLineStart = false
          break
        }
        case enum_.Done:
          return { data, consumed: i - start, done: true }
      }
    }
    return { data, consumed: i - start, done: this.state === enum_.Done }
  }
}

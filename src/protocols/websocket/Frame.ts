/**
 * WebSocket frames (RFC 6455 §5): the incremental decoder of client frames
 * (over arbitrary chunks; masked, as clients must), which reassembles
 * messages within their limits, and the encoder for server frames (never
 * masked). The one extension is permessage-deflate's RSV1 on a message's
 * first frame, when negotiated; any other reserved bit is a protocol error.
 * Control frames carry at most 125 bytes and are never fragmented.
 */

/** Opcodes (RFC 6455 §5.2). */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa
} as const

/** A frame that breaks the protocol or a limit: the close code to answer with and why. */
export interface FrameError {
  /** 1002 protocol error, 1008 policy (empty fragments), 1009 too big (bytes or fragments). */
  readonly code: 1002 | 1008 | 1009
  readonly reason: string
}

/** What the decoder found next: a whole message, a control frame, or an error (the session must close). */
export type Decoded =
  | { readonly _tag: "Message"; readonly binary: boolean; readonly payload: Uint8Array; readonly compressed: boolean }
  | { readonly _tag: "Control"; readonly opcode: 0x8 | 0x9 | 0xa; readonly payload: Uint8Array }
  | { readonly _tag: "Error"; readonly error: FrameError }

/** The decoder's limits. */
export interface DecoderLimits {
  /** Largest message after reassembly, in bytes; a frame header that would pass it is refused (1009) before its bytes arrive. */
  readonly maxMessage: number
  /** Most frames one message may come in; more is 1009. */
  readonly maxFragments: number
  /** permessage-deflate was negotiated: RSV1 on a message's first frame marks it compressed. */
  readonly deflate?: boolean
}

/** Empty non-final data frames allowed in one message; more is 1008 (they cost work and carry nothing). */
export const EMPTY_FRAGMENTS_ALLOWED = 16

const EMPTY = new Uint8Array(0)
const isControl = (opcode: number) => opcode >= 0x8
const known = (opcode: number) => opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa)
const error = (code: 1002 | 1008 | 1009, reason: string): Decoded => ({ _tag: "Error", error: { code, reason } })

/**
 * The incremental decoder of client frames (RFC 6455 §5), fed chunk by chunk
 * (`push`), read event by event (`next`). It keeps no partial frame by
 * re-copying input: a header is collected in a 14-byte scratch, and payload
 * bytes are unmasked straight into the message they belong to, which grows
 * geometrically (so a client that sends a byte at a time costs linear time),
 * within `maxMessage`, and in a message's last frame never past its declared
 * end (an unfragmented message is handed out without a final copy).
 * Fragments share that one buffer: no object per fragment. A control frame (at most 125 bytes) has
 * a buffer of its own, so it may arrive between fragments. Memory per
 * decoder: the message so far (at most `maxMessage`) plus one header.
 *
 * @example
 * const decoder = new WebSocketFrame.FrameDecoder({ maxMessage: 1 << 20, maxFragments: 1024 })
 * decoder.push(WebSocketFrame.encodeMasked(WebSocketFrame.Opcode.Text, Buffer.from("hi"), Buffer.from([1, 2, 3, 4])))
 * for (let next = decoder.next(); next !== undefined; next = decoder.next()) {
 *   if (next._tag === "Message") console.log(Buffer.from(next.payload).toString()) // "hi"
 * }
 */
export class FrameDecoder {
  private readonly limits: DecoderLimits
  private chunk: Uint8Array = EMPTY
  private pos = 0
  // the frame being read: its header so far, then its payload
  private readonly header = new Uint8Array(14)
  private headerLength = 0
  private inPayload = false
  private opcode = 0
  private fin = false
  private remaining = 0
  private mask0 = 0
  private mask1 = 0
  private mask2 = 0
  private mask3 = 0
  /** Payload bytes of this frame unmasked so far (the mask's phase). */
  private offset = 0
  // the message being reassembled
  private messageOpcode = -1
  private message: Buffer | undefined = undefined
  private messageLength = 0
  private fragments = 0
  private emptyFragments = 0
  private compressed = false
  // the control frame being read
  private control: Buffer | undefined = undefined
  /** Bytes copied again when the message buffer grew (linear in the message: at most its size). */
  regrownBytes = 0

  constructor(limits: DecoderLimits) {
    this.limits = limits
  }

  /** Bytes the decoder holds of its own: the message so far (its buffer) and a control frame's. */
  get retained(): number {
    return (this.message?.byteLength ?? 0) + (this.control?.byteLength ?? 0)
  }

  /** Adds the next chunk; call only once `next` returned undefined (the previous chunk is used up). */
  push(chunk: Uint8Array): void {
    this.chunk = chunk
    this.pos = 0
  }

  /** The next message, control frame or error; undefined when the input so far holds no more. */
  next(): Decoded | undefined {
    for (;;) {
      if (!this.inPayload) {
        const problem = this.readHeader()
        if (problem !== undefined) return problem
        if (!this.inPayload) return undefined
      }
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, this.chunk.byteLength - this.pos)
        if (take === 0) return undefined
        this.unmask(take)
        if (this.remaining > 0) return undefined
      }
      this.inPayload = false
      this.headerLength = 0
      if (isControl(this.opcode)) {
        const payload = this.control ?? EMPTY
        this.control = undefined
        return { _tag: "Control", opcode: this.opcode as 0x8 | 0x9 | 0xa, payload }
      }
      if (this.fin) {
        const message = this.message
        // a fragmented message may have grown past its end: one final copy to its size
        const payload = message === undefined ? EMPTY : message.byteLength === this.messageLength ? message : Buffer.from(message.subarray(0, this.messageLength))
        const binary = this.messageOpcode === 0x2
        const compressed = this.compressed
        this.compressed = false
        this.message = undefined
        this.messageLength = 0
        this.messageOpcode = -1
        this.fragments = 0
        this.emptyFragments = 0
        return { _tag: "Message", binary, payload, compressed }
      }
    }
  }

  /** Collects header bytes; starts the payload once the header is whole. An error as soon as the bytes show it. */
  private readHeader(): Decoded | undefined {
    const chunk = this.chunk
    while (this.headerLength < 2) {
      if (this.pos >= chunk.byteLength) return undefined
      this.header[this.headerLength++] = chunk[this.pos++]!
    }
    const b0 = this.header[0]!
    const b1 = this.header[1]!
    const opcode = b0 & 0x0f
    const fin = (b0 & 0x80) !== 0
    const rsv1 = (b0 & 0x40) !== 0
    if ((b0 & 0x30) !== 0 || (rsv1 && this.limits.deflate !== true)) return error(1002, "reserved bits set (no extension was negotiated)")
    if (rsv1 && (opcode === 0x0 || isControl(opcode))) return error(1002, "RSV1 on a continuation or control frame")
    if (!known(opcode)) return error(1002, `unknown opcode ${opcode}`)
    if ((b1 & 0x80) === 0) return error(1002, "client frames must be masked")
    const short = b1 & 0x7f
    if (isControl(opcode)) {
      if (!fin) return error(1002, "control frames cannot be fragmented")
      if (short > 125) return error(1002, "control frames carry at most 125 bytes")
    }
    const lengthBytes = short === 126 ? 2 : short === 127 ? 8 : 0
    const need = 2 + lengthBytes + 4
    while (this.headerLength < need) {
      if (this.pos >= chunk.byteLength) return undefined
      this.header[this.headerLength++] = chunk[this.pos++]!
    }
    const h = this.header
    let length = short
    if (short === 126) length = (h[2]! << 8) | h[3]!
    else if (short === 127) {
      const high = ((h[2]! << 24) | (h[3]! << 16) | (h[4]! << 8) | h[5]!) >>> 0
      const low = ((h[6]! << 24) | (h[7]! << 16) | (h[8]! << 8) | h[9]!) >>> 0
      if (high >= 0x80000000) return error(1002, "the most significant bit of a 64-bit length must be 0")
      length = high * 2 ** 32 + low
    }
    const m = 2 + lengthBytes
    this.mask0 = h[m]!
    this.mask1 = h[m + 1]!
    this.mask2 = h[m + 2]!
    this.mask3 = h[m + 3]!
    this.opcode = opcode
    this.fin = fin
    this.remaining = length
    this.offset = 0
    if (isControl(opcode)) {
      if (length > 0) this.control = Buffer.allocUnsafe(length)
    } else {
      if (opcode === 0x0) {
        if (this.messageOpcode === -1) return error(1002, "a continuation frame without a message")
      } else if (this.messageOpcode !== -1) {
        return error(1002, "a new message before the previous one was finished")
      } else {
        this.messageOpcode = opcode
        this.compressed = rsv1
      }
      const max = this.limits.maxMessage
      if (this.messageLength + length > max) return error(1009, `a message over ${max} bytes`)
      if (++this.fragments > this.limits.maxFragments) return error(1009, `a message in more than ${this.limits.maxFragments} frames`)
      if (length === 0 && !fin && ++this.emptyFragments > EMPTY_FRAGMENTS_ALLOWED) {
        return error(1008, `more than ${EMPTY_FRAGMENTS_ALLOWED} empty fragments in one message`)
      }
    }
    this.inPayload = true
    return undefined
  }

  /** Unmasks `take` payload bytes from the chunk into the control frame or the message. */
  private unmask(take: number): void {
    let target: Buffer
    let at: number
    if (isControl(this.opcode)) {
      target = this.control!
      at = this.offset
    } else {
      at = this.messageLength
      const need = at + take
      const capacity = this.message?.byteLength ?? 0
      if (need > capacity) {
        // grow geometrically; in a message's last frame never past its end, so it usually fits exactly
        const limit = this.fin ? at + this.remaining : this.limits.maxMessage
        const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(need, capacity * 2)))
        if (this.message !== undefined && at > 0) {
          this.message.copy(grown, 0, 0, at)
          this.regrownBytes += at
        }
        this.message = grown
      }
      target = this.message!
      this.messageLength = need
    }
    const chunk = this.chunk
    const from = this.pos
    let phase = this.offset
    const m0 = this.mask0, m1 = this.mask1, m2 = this.mask2, m3 = this.mask3
    for (let i = 0; i < take; i++, phase++) {
      const k = phase & 3
      target[at + i] = chunk[from + i]! ^ (k === 0 ? m0 : k === 1 ? m1 : k === 2 ? m2 : m3)
    }
    this.offset = phase
    this.pos = from + take
    this.remaining -= take
  }
}

/** A server frame (unmasked), FIN set unless `fin` is false; `compressed` sets RSV1 (permessage-deflate). */
export const encode = (opcode: number, payload: Uint8Array, fin = true, compressed = false): Buffer => {
  const length = payload.byteLength
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = (fin ? 0x80 : 0) | (compressed ? 0x40 : 0) | opcode
  if (length < 126) frame[1] = length
  else if (length < 0x10000) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.set(payload, headerLength)
  return frame
}

/** The payload of a close frame: the code (2 bytes) and a UTF-8 reason cut to fit 123 bytes. */
export const closePayload = (code: number, reason: string): Buffer => {
  let text = Buffer.from(reason, "utf8")
  if (text.byteLength > 123) {
    let cut = 123
    while (cut > 0 && (text[cut]! & 0xc0) === 0x80) cut-- // not inside a character
    text = text.subarray(0, cut)
  }
  const payload = Buffer.allocUnsafe(2 + text.byteLength)
  payload.writeUInt16BE(code, 0)
  payload.set(text, 2)
  return payload
}

/** Close codes a peer may send (RFC 6455 §7.4.1; 1004-1006 and 1015 are never sent). */
export const isValidCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)

/** A client frame (masked), for tests and clients. */
export const encodeMasked = (opcode: number, payload: Uint8Array, mask: Uint8Array, fin = true, compressed = false): Buffer => {
  const plain = encode(opcode, payload, fin, compressed)
  const headerLength = plain.byteLength - payload.byteLength
  const out = Buffer.allocUnsafe(plain.byteLength + 4)
  plain.copy(out, 0, 0, headerLength)
  out[1] = out[1]! | 0x80
  out.set(mask.subarray(0, 4), headerLength)
  for (let i = 0; i < payload.byteLength; i++) out[headerLength + 4 + i] = payload[i]! ^ mask[i & 3]!
  return out
}

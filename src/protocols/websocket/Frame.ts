/**
 * WebSocket frames (RFC 6455 §5): an incremental parser for client frames
 * (over arbitrary chunks; masked, as clients must) and the encoder for
 * server frames (never masked). No extensions: a reserved bit set is a
 * protocol error. Control frames carry at most 125 bytes and are never
 * fragmented.
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

/** One frame from a client, its payload unmasked. */
export interface Frame {
  readonly fin: boolean
  readonly opcode: number
  readonly payload: Uint8Array
}

/** A frame that breaks the protocol: the close code to answer with (1002 protocol error, 1009 too big) and why. */
export interface FrameError {
  readonly code: 1002 | 1009
  readonly reason: string
}

/** What the parser found at the start of the buffer. */
export type Parsed =
  | { readonly _tag: "Frame"; readonly frame: Frame; readonly end: number }
  | { readonly _tag: "Incomplete" }
  | { readonly _tag: "Error"; readonly error: FrameError }

const INCOMPLETE: Parsed = { _tag: "Incomplete" }
const fail = (code: 1002 | 1009, reason: string): Parsed => ({ _tag: "Error", error: { code, reason } })

const isControl = (opcode: number) => opcode >= 0x8
const known = (opcode: number) => opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa)

/**
 * Parses one client frame from `buffer[start, end)`. A frame whose payload
 * would exceed `maxPayload` is refused (1009) as soon as its header is read,
 * before its bytes arrive.
 */
export const parse = (buffer: Uint8Array, start: number, end: number, maxPayload: number): Parsed => {
  if (end - start < 2) return INCOMPLETE
  const b0 = buffer[start]!
  const b1 = buffer[start + 1]!
  const fin = (b0 & 0x80) !== 0
  const opcode = b0 & 0x0f
  if ((b0 & 0x70) !== 0) return fail(1002, "reserved bits set (no extension was negotiated)")
  if (!known(opcode)) return fail(1002, `unknown opcode ${opcode}`)
  if ((b1 & 0x80) === 0) return fail(1002, "client frames must be masked")
  let length = b1 & 0x7f
  let at = start + 2
  if (isControl(opcode)) {
    if (!fin) return fail(1002, "control frames cannot be fragmented")
    if (length > 125) return fail(1002, "control frames carry at most 125 bytes")
  }
  if (length === 126) {
    if (end - at < 2) return INCOMPLETE
    length = (buffer[at]! << 8) | buffer[at + 1]!
    at += 2
  } else if (length === 127) {
    if (end - at < 8) return INCOMPLETE
    const high = (buffer[at]! << 24 | buffer[at + 1]! << 16 | buffer[at + 2]! << 8 | buffer[at + 3]!) >>> 0
    const low = (buffer[at + 4]! << 24 | buffer[at + 5]! << 16 | buffer[at + 6]! << 8 | buffer[at + 7]!) >>> 0
    if (high >= 0x80000000) return fail(1002, "the most significant bit of a 64-bit length must be 0")
    length = high * 2 ** 32 + low
    at += 8
  }
  if (length > maxPayload) return fail(1009, `a frame of ${length} bytes is over the limit of ${maxPayload}`)
  if (end - at < 4 + length) return INCOMPLETE
  const mask0 = buffer[at]!
  const mask1 = buffer[at + 1]!
  const mask2 = buffer[at + 2]!
  const mask3 = buffer[at + 3]!
  at += 4
  const payload = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) {
    const m = (i & 3) === 0 ? mask0 : (i & 3) === 1 ? mask1 : (i & 3) === 2 ? mask2 : mask3
    payload[i] = buffer[at + i]! ^ m
  }
  return { _tag: "Frame", frame: { fin, opcode, payload }, end: at + length }
}

/** A server frame (unmasked), FIN set unless `fin` is false. */
export const encode = (opcode: number, payload: Uint8Array, fin = true): Buffer => {
  const length = payload.byteLength
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = (fin ? 0x80 : 0) | opcode
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
export const encodeMasked = (opcode: number, payload: Uint8Array, mask: Uint8Array, fin = true): Buffer => {
  const plain = encode(opcode, payload, fin)
  const headerLength = plain.byteLength - payload.byteLength
  const out = Buffer.allocUnsafe(plain.byteLength + 4)
  plain.copy(out, 0, 0, headerLength)
  out[1] = out[1]! | 0x80
  out.set(mask.subarray(0, 4), headerLength)
  for (let i = 0; i < payload.byteLength; i++) out[headerLength + 4 + i] = payload[i]! ^ mask[i & 3]!
  return out
}

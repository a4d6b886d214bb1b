/**
 * permessage-deflate (RFC 7692), the compression browsers offer on every
 * WebSocket. fiberd accepts it without context takeover in either direction:
 * every message is compressed and inflated on its own, so a connection keeps
 * no compression state between messages (no zlib window per idle socket),
 * and inflating is bounded by `maxMessage` — a compressed message that would
 * inflate past it is refused (1009) after at most that many bytes of work,
 * so a small frame cannot become a decompression bomb. Corrupt data is 1007
 * (as `ws` answers).
 */
import * as Zlib from "node:zlib"

/** What was agreed: the window the server compresses with (the client asked for at most this). */
export interface Agreed {
  /** The `Sec-WebSocket-Extensions` value of the 101 answer. */
  readonly header: string
  /** zlib window bits for the server's compression (9 to 15). */
  readonly windowBits: number
}

const bits = (value: string | undefined): number | undefined => {
  if (value === undefined || !/^[0-9]{1,2}$/.test(value)) return undefined
  const n = Number(value)
  return n >= 8 && n <= 15 ? n : undefined
}

/** One offer's parameters, or undefined when it cannot be accepted as it is (unknown, repeated or bad parameter). */
const accept = (params: ReadonlyArray<string>): Agreed | undefined => {
  const seen = new Set<string>()
  let windowBits = 15
  let askedServerBits = false
  for (const raw of params) {
    const [name = "", value] = raw.split("=").map((s) => s.trim().replace(/^"(.*)"$/, "$1"))
    const key = name.toLowerCase()
    if (seen.has(key)) return undefined
    seen.add(key)
    if (key === "server_no_context_takeover" || key === "client_no_context_takeover") {
      if (value !== undefined) return undefined
    } else if (key === "server_max_window_bits") {
      const n = bits(value)
      // zlib cannot make a raw stream with an 8-bit window; such an offer is declined (the next may do)
      if (n === undefined || n === 8) return undefined
      windowBits = n
      askedServerBits = true
    } else if (key === "client_max_window_bits") {
      if (value !== undefined && bits(value) === undefined) return undefined
    } else return undefined
  }
  const header = "permessage-deflate; server_no_context_takeover; client_no_context_takeover" +
    (askedServerBits ? `; server_max_window_bits=${windowBits}` : "")
  return { header, windowBits }
}

/** The first permessage-deflate offer of a `Sec-WebSocket-Extensions` header that can be accepted, if any. */
export const negotiate = (offers: string | undefined): Agreed | undefined => {
  if (offers === undefined) return undefined
  for (const offer of offers.split(",")) {
    const [name = "", ...params] = offer.split(";").map((s) => s.trim())
    if (name.toLowerCase() !== "permessage-deflate") continue
    const agreed = accept(params.filter((p) => p !== ""))
    if (agreed !== undefined) return agreed
  }
  return undefined
}

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

/** Inflates one message, at most `maxMessage` bytes of it: the bytes, or the close code and why. */
export const inflate = (payload: Uint8Array, maxMessage: number): Uint8Array | { readonly code: 1007 | 1009; readonly reason: string } => {
  try {
    return Zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: Zlib.constants.Z_SYNC_FLUSH, maxOutputLength: Math.max(1, maxMessage) })
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE"
      ? { code: 1009, reason: `a message over ${maxMessage} bytes once inflated` }
      : { code: 1007, reason: "a compressed message that does not inflate" }
  }
}

/** Compresses one message (its deflate stream, the final 00 00 FF FF removed, RFC 7692 §7.2.1). */
export const deflate = (message: Uint8Array, windowBits: number): Buffer => {
  const out = Zlib.deflateRawSync(message, { finishFlush: Zlib.constants.Z_SYNC_FLUSH, windowBits, memLevel: 8 })
  return out.subarray(0, out.byteLength - 4)
}

/**
 * WebSocket helpers for tests: an echo route, and the server's frames read
 * by hand from raw bytes (server frames are unmasked; the library's decoder
 * is for masked client frames).
 */
import { Effect, Option } from "effect"
import type * as WS from "../../src/protocols/websocket/WebSocket.ts"

/** A route that sends every message back until the client closes. */
export const echo = (socket: WS.WebSocket) =>
  Effect.gen(function*() {
    while (true) {
      const message = yield* socket.receive
      if (Option.isNone(message)) return
      yield* socket.send(message.value)
    }
  })

/** One server frame: its opcode, whether RSV1 (compressed) is set, its payload. */
export interface ServerFrame {
  readonly opcode: number
  readonly compressed: boolean
  readonly payload: Buffer
}

/** The whole server frames in `bytes` from `at` on (a frame cut short at the end is left out). */
export const readServerFrames = (bytes: Buffer, at: number): Array<ServerFrame> => {
  const frames: Array<ServerFrame> = []
  while (at + 2 <= bytes.byteLength) {
    let length = bytes[at + 1]! & 0x7f
    let from = at + 2
    if (length === 126) {
      length = bytes.readUInt16BE(from)
      from += 2
    }
    if (from + length > bytes.byteLength) break
    frames.push({ opcode: bytes[at]! & 0x0f, compressed: (bytes[at]! & 0x40) !== 0, payload: bytes.subarray(from, from + length) })
    at = from + length
  }
  return frames
}

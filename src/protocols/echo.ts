/**
 * Echo (RFC 862, TCP): every byte received is sent back, until the client
 * ends its side; then the server ends its side too. Every read is at a
 * message boundary, so a drain ends an idle echo connection at once.
 */
import { Effect, Option } from "effect"
import type { Connection, ConnectionError } from "../io/Connection.ts"

/** The echo protocol handler: reads a chunk, writes it back, until EOF (or the server drains). */
export const handler = (conn: Connection): Effect.Effect<void, ConnectionError> =>
  Effect.gen(function*() {
    while (true) {
      const chunk = yield* conn.readIdle
      if (Option.isNone(chunk)) return yield* conn.endWrite
      yield* conn.write(chunk.value)
    }
  })

/** Echo over UDP (RFC 862 §2): each datagram is sent back to its sender. */
export const datagram = (d: { readonly data: Uint8Array }, reply: (data: Uint8Array) => Effect.Effect<void>): Effect.Effect<void> =>
  reply(d.data)

/**
 * Echo (RFC 862, TCP): every byte received is sent back, until the client
 * ends its side; then the server ends its side too. Every read is at a
 * message boundary, so a drain ends an idle echo connection at once.
 */
import { Effect } from "effect"
import type { Connection, ConnectionError } from "../io/Connection.ts"

/**
 * The echo protocol handler: every chunk is written back as it arrives, from
 * the socket's event (push mode: no fiber resume per chunk); the fiber wakes
 * only when the client reads too slowly (it waits until the written bytes
 * drain: backpressure), at EOF, or when the server drains.
 */
export const handler = (conn: Connection): Effect.Effect<void, ConnectionError> =>
  Effect.gen(function*() {
    const echo = (chunk: Uint8Array) => conn.writeUnsafe(chunk)
    const read = conn.readWith(echo)
    while (!conn.isDraining()) {
      const outcome = yield* read
      if (outcome !== "yield") break // EOF, or the server drains: every read is at a message boundary
      yield* conn.write(NOTHING) // the client reads slowly: wait until what was echoed drains
    }
    return yield* conn.endWrite
  })

const NOTHING: ReadonlyArray<Uint8Array> = []

/** Echo over UDP (RFC 862 §2): each datagram is sent back to its sender. */
export const datagram = (d: { readonly data: Uint8Array }, reply: (data: Uint8Array) => Effect.Effect<void>): Effect.Effect<void> =>
  reply(d.data)

/**
 * Writing response bodies that are not in memory: a file range read from
 * disk in 64 KiB chunks, and a Stream (chunked or close-delimited). Each
 * write waits for the connection to drain, so a slow client holds back the
 * reading and server memory stays flat.
 */
import { Effect, Stream } from "effect"
import * as Fs from "node:fs"
import { type Connection, isConnectionError } from "../../io/Connection.ts"
import type * as Res from "./Response.ts"

const CRLF = Buffer.from("\r\n", "latin1")
const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1")

/** Sends bytes `[start, end)` of a file; returns the bytes sent. */
export const file = (conn: Connection, body: Extract<Res.Body, { _tag: "File" }>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => Fs.promises.open(body.path, "r")),
    (handle) =>
      Effect.gen(function*() {
        let position = body.start
        while (position < body.end) {
          const want = Math.min(64 * 1024, body.end - position)
          const { bytesRead, buffer } = yield* Effect.promise(() => handle.read(Buffer.allocUnsafe(want), 0, want, position))
          if (bytesRead === 0) return yield* Effect.die(new Error(`${body.path} shrank while it was being sent`))
          yield* conn.write(bytesRead === want ? buffer : buffer.subarray(0, bytesRead))
          position += bytesRead
        }
        return body.end - body.start
      }),
    (handle) => Effect.promise(() => handle.close())
  )

/** Sends a stream, in chunked coding when `chunked`; returns the body bytes sent. */
export const stream = (conn: Connection, body: Stream.Stream<Uint8Array, unknown>, chunked: boolean) =>
  Effect.gen(function*() {
    let sent = 0
    yield* Stream.runForEach(body, (chunk) => {
      if (chunk.byteLength === 0) return Effect.void
      sent += chunk.byteLength
      return chunked
        ? conn.write([Buffer.from(chunk.byteLength.toString(16) + "\r\n", "latin1"), chunk, CRLF])
        : conn.write(chunk)
    }).pipe(
      // the status line is out: a failing body can only end the connection (logged as a defect)
      Effect.catch((e) => isConnectionError(e) ? Effect.fail(e) : Effect.die(e))
    )
    if (chunked) yield* conn.write(LAST_CHUNK)
    return sent
  })

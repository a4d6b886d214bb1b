/**
 * Writing response bodies that are not in memory: a file range read from
 * disk in 64 KiB chunks, and a Stream (chunked or close-delimited). Each
 * write waits for the connection to drain, so a slow client holds back the
 * reading and server memory stays flat.
 *
 * A file is opened before its response head is written (`openFile`), so a
 * file that cannot be opened (EMFILE, removed meanwhile) still gets an
 * honest status instead of a `200` followed by a reset.
 */
import { Data, Effect, Stream } from "effect"
import * as Fs from "node:fs"
import { type Connection, type ConnectionError, isConnectionError } from "../../io/Connection.ts"
import type * as Res from "./Response.ts"

const CRLF = Buffer.from("\r\n", "latin1")
const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1")

/** A file of a response could not be opened, read or closed. */
export class FileError extends Data.TaggedError("FileError")<{
  readonly path: string
  readonly operation: "open" | "read" | "stat"
  readonly code: string
}> {
  override get message() {
    return `cannot ${this.operation} ${this.path} (${this.code})`
  }
}

const fileError = (path: string, operation: FileError["operation"]) => (error: unknown) =>
  new FileError({ path, operation, code: (error as NodeJS.ErrnoException).code ?? String(error) })

/** The status to answer when a file cannot be opened: 503 when the server is out of descriptors, 404 when it is gone. */
export const statusForFileError = (error: FileError): 404 | 500 | 503 =>
  error.code === "EMFILE" || error.code === "ENFILE" || error.code === "ENOMEM"
    ? 503
    : error.code === "ENOENT" || error.code === "ENOTDIR"
    ? 404
    : 500

/** Opens a file for reading; the handle is closed when the current scope closes. */
export const openFile = (path: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => Fs.promises.open(path, "r"), catch: fileError(path, "open") }),
    (handle) => Effect.tryPromise(() => handle.close()).pipe(Effect.ignore)
  )

/** Sends bytes `[start, end)` of an open file; `progress.streamed` counts what was written. */
export const file = (
  conn: Connection,
  handle: Fs.promises.FileHandle,
  body: Extract<Res.Body, { _tag: "File" }>,
  progress: { streamed: number }
): Effect.Effect<void, FileError | ConnectionError> =>
  Effect.gen(function*() {
    let position = body.start
    while (position < body.end) {
      const want = Math.min(64 * 1024, body.end - position)
      const { bytesRead, buffer } = yield* Effect.tryPromise({
        try: () => handle.read(Buffer.allocUnsafe(want), 0, want, position),
        catch: fileError(body.path, "read")
      })
      if (bytesRead === 0) return yield* new FileError({ path: body.path, operation: "read", code: "file shrank while it was sent" })
      yield* conn.write(bytesRead === want ? buffer : buffer.subarray(0, bytesRead))
      position += bytesRead
      progress.streamed += bytesRead
    }
  })

/** Sends a stream, in chunked coding when `chunked`; `progress.streamed` counts the body bytes sent. */
export const stream = (conn: Connection, body: Stream.Stream<Uint8Array, unknown>, chunked: boolean, progress: { streamed: number }) =>
  Effect.gen(function*() {
    yield* Stream.runForEach(body, (chunk) => {
      if (chunk.byteLength === 0) return Effect.void
      progress.streamed += chunk.byteLength
      return chunked
        ? conn.write([Buffer.from(chunk.byteLength.toString(16) + "\r\n", "latin1"), chunk, CRLF])
        : conn.write(chunk)
    }).pipe(
      // the status line is out: a failing body can only end the connection (logged as a defect)
      Effect.catch((e) => isConnectionError(e) ? Effect.fail(e) : Effect.die(e))
    )
    if (chunked) yield* conn.write(LAST_CHUNK)
  })

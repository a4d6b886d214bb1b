/**
 * Running a framing decoder over a Connection: `reader(conn, decoder)` gives
 * an Effect that pulls the next frame (`None` at the end of input, after any
 * last unterminated frame). Between frames the connection is idle, so it
 * reads with `readIdle`: a server drain ends the stream there; inside a frame
 * it reads with `read` and the frame is finished first.
 *
 * @example
 * const shout = (conn: Connection) => Effect.gen(function*() {
 *   const next = Codec.reader(conn, new Lines.Decoder({ maxLength: 1024 }))
 *   while (true) {
 *     const line = yield* next
 *     if (Option.isNone(line)) return yield* conn.endWrite
 *     if (line.value._tag === "Line") yield* conn.write(Lines.encode([line.value.text.toUpperCase()]))
 *   }
 * })
 */
import { Effect, Option } from "effect"
import type { Connection, ConnectionError } from "../../io/Connection.ts"

/** What every framing decoder offers. */
export interface FrameDecoder<F> {
  /** Adds a chunk; returns the frames it completes. */
  push(chunk: Uint8Array): Array<F>
  /** The end of input: what is left, as frames (or an error frame). */
  end(): Array<F>
  /** True while an unfinished frame is held. */
  readonly partial: boolean
}

/** What `reader` returns: each run pulls the next frame; `None` once the input has ended (or the server drains between frames). */
export type Reader<F> = Effect.Effect<Option.Option<F>, ConnectionError>

/** The next frame from `conn` through `decoder`; `None` once the input has ended (or the server drains between frames). */
export const reader = <F>(conn: Connection, decoder: FrameDecoder<F>): Reader<F> => {
  const ready: Array<F> = []
  let ended = false
  return Effect.gen(function*() {
    while (ready.length === 0) {
      if (ended) return Option.none()
      const chunk = yield* (decoder.partial ? conn.read : conn.readIdle)
      if (Option.isNone(chunk)) {
        ended = true
        ready.push(...decoder.end())
      } else ready.push(...decoder.push(chunk.value))
    }
    return Option.some(ready.shift()!)
  })
}

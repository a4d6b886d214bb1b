/**
 * Lines from a Connection: LF or CRLF terminated, UTF-8, bounded in length.
 * A line longer than the limit is reported once and its rest discarded.
 * Between lines the reader is idle: a drain ends it as at EOF.
 */
import { Effect, Option } from "effect"
import type { Connection, ConnectionError } from "../../io/Connection.ts"

/** What the reader produced. */
export type LineEvent =
  | { readonly _tag: "Line"; readonly text: string }
  | { readonly _tag: "TooLong" }
  | { readonly _tag: "End" }

/** A line reader bound to a connection. */
export const reader = (conn: Connection, maxLength: number) => {
  let pending: Buffer = Buffer.alloc(0)
  let discarding = false
  const ready: Array<LineEvent> = []
  let ended = false

  const split = (chunk: Uint8Array) => {
    let data = pending.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([pending, chunk])
    let nl = data.indexOf(0x0a)
    while (nl !== -1) {
      if (discarding) discarding = false
      else {
        const end = nl > 0 && data[nl - 1] === 0x0d ? nl - 1 : nl
        if (end > maxLength) ready.push({ _tag: "TooLong" })
        else ready.push({ _tag: "Line", text: data.subarray(0, end).toString("utf8") })
      }
      data = data.subarray(nl + 1)
      nl = data.indexOf(0x0a)
    }
    if (!discarding && data.length > maxLength) {
      ready.push({ _tag: "TooLong" })
      discarding = true
    }
    pending = discarding ? Buffer.alloc(0) : Buffer.from(data)
  }

  /** The next line, a too-long report, or the end of input. */
  const next: Effect.Effect<LineEvent, ConnectionError> = Effect.gen(function*() {
    while (ready.length === 0) {
      if (ended) return { _tag: "End" } as const
      // between lines the connection is idle: a drain ends it (a half line waits for its end)
      const chunk = yield* (pending.length === 0 && !discarding ? conn.readIdle : conn.read)
      if (Option.isNone(chunk)) {
        ended = true
        if (pending.length > 0 && !discarding) {
          ready.push({ _tag: "Line", text: pending.toString("utf8").replace(/\r$/, "") })
          pending = Buffer.alloc(0)
        }
      } else split(chunk.value)
    }
    return ready.shift()!
  })
  return next
}

/**
 * Daytime (RFC 867, TCP): on connect the server sends the current date and
 * time as one human-readable ASCII line and closes; input is ignored.
 */
import { Clock, Effect } from "effect"
import type { Connection, ConnectionError } from "../io/Connection.ts"

const days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
const months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
  "November", "December"]
const two = (n: number) => (n < 10 ? `0${n}` : `${n}`)

/**
 * Formats a time the way RFC 867's example does, in UTC:
 * `Weekday, Month Day, Year HH:MM:SS-UTC`.
 */
export const format = (millis: number): string => {
  const d = new Date(millis)
  return `${days[d.getUTCDay()]}, ${months[d.getUTCMonth()]} ${d.getUTCDate()}, ${d.getUTCFullYear()} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}-UTC`
}

/** The daytime line for a time, CRLF-terminated, as bytes. */
export const line = (millis: number): Uint8Array => Buffer.from(`${format(millis)}\r\n`, "latin1")

/** The daytime protocol handler: one line from the Clock, then close. */
export const handler = (conn: Connection): Effect.Effect<void, ConnectionError> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    yield* conn.write(line(now))
    yield* conn.close
  })

/** Daytime over UDP (RFC 867): any datagram is answered with the daytime line. */
export const datagram = (_: unknown, reply: (data: Uint8Array) => Effect.Effect<void>): Effect.Effect<void> =>
  Clock.currentTimeMillis.pipe(Effect.flatMap((now) => reply(line(now))))

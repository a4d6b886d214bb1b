/**
 * The chat service: line-based (UTF-8, LF or CRLF), with rooms.
 *
 * Commands: `/nick NAME`, `/join ROOM`, `/part`, `/who`, `/quit`; any other
 * line is a message to the current room. The rooms live in a `RoomDirectory`
 * (`Rooms.ts`): in this process by default, or as effect/cluster entities
 * (`ClusterRooms.ts`). Each member has a bounded outbox drained by its own
 * writer fiber: a member whose outbox overflows (a stalled reader) is
 * disconnected with a reason line, and never slows the room.
 */
import { Cause, Deferred, type Duration, Effect, Exit, Fiber, Option, Queue, type Scope } from "effect"
import type * as Supervisor from "../../actors/Supervisor.ts"
import type { Connection, ConnectionError } from "../../io/Connection.ts"
import * as Options from "../../core/Options.ts"
import * as Codec from "../codecs/Codec.ts"
import * as Lines from "../codecs/Lines.ts"
import type * as WebSocket from "../websocket/WebSocket.ts"
import * as Rooms from "./Rooms.ts"

const { option } = Options

/** Chat options, declared once (a service table's chat entry takes the same keys). */
export const options = Options.declare({
  maxLineLength: option(Options.PositiveInt, "the longest line accepted, in bytes", 1024),
  outboxSize: option(Options.PositiveInt, "lines a member may have waiting before it is disconnected as too slow", 256),
  maxRooms: option(Options.PositiveInt, "rooms at once; a join that would open one more is refused with an error line", 10_000),
  kickGrace: option(Options.Duration, "how long a member disconnected for not reading has to take its notice line before its socket is closed", "2 seconds")
})

/** Chat options: `options`, and where the rooms live. */
export type ChatOptions = typeof options.schema.Type & {
  /** Where the rooms live. Default: in this process (`Rooms.local`, with `maxRooms`); `ClusterRooms` for several nodes. */
  readonly rooms?: Rooms.RoomDirectory
}

export type { Member } from "./Rooms.ts"

/** Waits for the next turn of the event loop, after its I/O phase (a scheduler yield stays before it). */
const yieldToIo = Effect.callback<void>((resume) => {
  setImmediate(() => resume(Effect.void))
})

const validName = /^[A-Za-z0-9_-]{1,24}$/

/** A running chat service. */
/** How a member's client is reached: lines in, lines out (a TCP connection, or a WebSocket). */
interface Transport {
  /** A unique id within the chat (members of every transport share rooms). */
  readonly id: number
  /** The next line (or a line too long); None at the end of input or when the server drains. */
  readonly next: Effect.Effect<Option.Option<Lines.Line>, ConnectionError>
  /** Writes lines, each without its end of line, in one go. */
  readonly write: (lines: ReadonlyArray<string>) => Effect.Effect<void, ConnectionError>
  readonly close: Effect.Effect<void>
  /** True once the server drains (the member is told why it is closed). */
  readonly isDraining: () => boolean
}

export interface ChatServer {
  readonly handler: (conn: Connection) => Effect.Effect<void>
  /**
   * A chat member over a WebSocket: one text message is one line, either way,
   * with the same commands and rooms as the TCP members.
   */
  readonly websocket: (socket: WebSocket.WebSocket) => Effect.Effect<void>
  /** Room names. */
  readonly rooms: () => ReadonlyArray<string>
  /** The rooms as children of the chat's supervisor (state, restarts), when they are supervised here. */
  readonly children?: Effect.Effect<ReadonlyArray<Supervisor.ChildInfo>>
}

/**
 * Starts the chat service (its rooms live in the scope).
 *
 * @example
 * const chat = yield* Chat.make({ outboxSize: 64 })
 * yield* Listener.make({ name: "chat", port: 7070 }, chat.handler)
 */
export const make = (given: ChatOptions = {}): Effect.Effect<ChatServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const o = options.resolve(given)
    const maxLine = o.maxLineLength
    const outboxSize = o.outboxSize
    const kickGrace = Options.toDuration(o.kickGrace)
    const directory = given.rooms ?? (yield* Rooms.local({ maxRooms: o.maxRooms }))

    let nextMember = 0
    const handler = (conn: Connection): Effect.Effect<void> =>
      serve({
        id: ++nextMember,
        // lines through the framing codec: UTF-8 decoded whole, a drain ends the stream between lines
        next: Codec.reader(conn, new Lines.Decoder({ maxLength: maxLine })),
        write: (lines) => conn.write(Buffer.from(lines.join("\r\n") + "\r\n", "utf8")),
        close: conn.close,
        isDraining: () => conn.isDraining()
      })

    const websocket = (socket: WebSocket.WebSocket): Effect.Effect<void> =>
      serve({
        id: ++nextMember,
        next: Effect.map(socket.receive, Option.map((message): Lines.Line => {
          if (typeof message !== "string") return { _tag: "Line", text: "" } // binary: not a chat line, ignored
          if (Buffer.byteLength(message) > maxLine) return { _tag: "TooLong", maxLength: maxLine }
          return { _tag: "Line", text: message.replace(/\r?\n$/, "") }
        })),
        write: (lines) => Effect.forEach(lines, (line) => socket.send(line), { discard: true }),
        close: socket.close(1000),
        isDraining: () => false // the socket closes itself with 1001 (going away) on a drain
      })

    const serve = (conn: Transport): Effect.Effect<void> =>
      Effect.gen(function*() {
        const outbox = yield* Queue.unbounded<string | { readonly kick: string | undefined }>()
        let kicked = false
        // true while the writer waits for the connection to drain: the client is not reading
        let blocked = false
        const member: Rooms.Member = {
          id: conn.id,
          nick: `guest${conn.id}`,
          // a full outbox means "too slow" only when the client really is not reading; a writer that has
          // merely not run yet (a burst) gets slack, up to a hard cap
          send: (line) => {
            if (kicked) return false
            const size = Queue.sizeUnsafe(outbox)
            if (size >= outboxSize && (blocked || size >= outboxSize * 16)) return false
            return Queue.offerUnsafe(outbox, line)
          },
          kick: (reason) => {
            if (kicked) return
            kicked = true
            Queue.offerUnsafe(outbox, { kick: reason })
            Deferred.doneUnsafe(kickedAt, Exit.void)
          }
        }
        // a member kicked for not reading gets its notice if it reads within the grace time, and is closed
        // either way then: its socket and buffered output do not wait for the idle timeout
        const kickedAt = yield* Deferred.make<void>()
        yield* Effect.forkScoped(Deferred.await(kickedAt).pipe(Effect.andThen(Effect.sleep(kickGrace)), Effect.andThen(conn.close)))
        // the writer: drains the outbox into the connection, everything waiting in one write; a kick ends it
        const writer = yield* Effect.forkChild(
          Effect.gen(function*() {
            while (true) {
              const items = yield* Queue.takeAll(outbox)
              const lines: Array<string> = []
              let end: { readonly kick: string | undefined } | undefined
              for (const item of items) {
                if (typeof item === "string") lines.push(item)
                else {
                  end = item
                  break
                }
              }
              if (end?.kick !== undefined) lines.push(`*** disconnected: ${end.kick}`)
              if (lines.length > 0) {
                blocked = true
                yield* conn.write(lines)
                blocked = false
              }
              if (end !== undefined) return yield* conn.close
            }
          }).pipe(Effect.ignore),
          { startImmediately: true }
        )
        const say = (line: string) => Effect.sync(() => member.send(line))
        let current: Rooms.RoomSession | undefined
        const leave = (quit: boolean) =>
          Effect.suspend(() => {
            const left = current
            current = undefined
            return left === undefined ? Effect.void : left.leave(quit)
          })
        yield* say(`*** welcome to fiberd chat, ${member.nick}. Commands: /nick NAME, /join ROOM, /part, /who, /quit`)
        const next = conn.next
        let burst = 0
        const loop: Effect.Effect<void, ConnectionError, Scope.Scope> = Effect.gen(function*() {
          while (!kicked) {
            // fairness: a client that sent a flood is served 32 lines per turn of the event loop,
            // so other members' sockets get written (and read) in between
            if (++burst % 32 === 0) yield* yieldToIo
            const received = yield* next
            if (Option.isNone(received)) {
              yield* leave(true)
              if (conn.isDraining()) yield* say("*** server shutting down")
              return
            }
            const event = received.value
            if (event._tag === "TooLong") {
              yield* say(`*** error: line too long (max ${maxLine} bytes), ignored`)
              continue
            }
            const line = event.text
            if (!line.startsWith("/")) {
              if (line.trim() === "") continue
              if (current === undefined) yield* say("*** join a room first: /join ROOM")
              else yield* current.say(line)
              continue
            }
            const [command, ...rest] = line.slice(1).split(" ")
            const arg = rest.join(" ").trim()
            switch (command) {
              case "nick": {
                if (!validName.test(arg)) {
                  yield* say("*** error: a nick is 1 to 24 letters, digits, _ or -")
                  break
                }
                if (current !== undefined) yield* current.nick(arg)
                else {
                  member.nick = arg
                  yield* say(`*** you are now ${arg}`)
                }
                break
              }
              case "join": {
                const name = arg.replace(/^#/, "")
                if (!validName.test(name)) {
                  yield* say("*** error: a room name is 1 to 24 letters, digits, _ or -")
                  break
                }
                if (current?.name === name) break
                yield* leave(false)
                const joined = yield* directory.join(member, name)
                if (joined._tag === "Joined") current = joined.session
                else yield* say(`*** error: ${joined.reason}`)
                break
              }
              case "part":
                if (current === undefined) yield* say("*** you are not in a room")
                else yield* leave(false)
                break
              case "who":
                if (current === undefined) yield* say("*** you are not in a room")
                else yield* current.who
                break
              case "quit":
                yield* leave(true)
                yield* say("*** bye")
                return
              default:
                yield* say(`*** error: unknown command /${command}`)
            }
          }
        })
        yield* loop.pipe(Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : leave(true)))
        // let the writer send what is queued (bye, last messages), then close
        if (!kicked) {
          kicked = true
          yield* Queue.offer(outbox, { kick: undefined }).pipe(Effect.ignore)
        }
        yield* Fiber.await(writer)
      }).pipe(Effect.scoped) as Effect.Effect<void>

    return { handler, websocket, rooms: directory.names, ...(directory.supervised !== undefined ? { children: directory.supervised } : {}) }
  })

/**
 * WebSocket (RFC 6455) on fiberd's model: a route is a fiber over messages.
 * `Router.ws(path, handler)` checks the opening handshake (400/426 with a
 * reason when it is not a valid one), the HTTP engine answers 101 and hands
 * the connection to the session: `receive` pulls the next message (text as a
 * string, binary as bytes, fragments reassembled up to `maxMessage`; `None`
 * once closed), `send` writes one, `close` closes with a code. Pings are
 * answered; a protocol error closes with 1002, invalid UTF-8 with 1007, a
 * message over the limit (bytes or fragments, inflated or not) with 1009, a
 * flood of control frames or of empty fragments with 1008, the server's drain
 * with 1001. permessage-deflate is agreed when the client offers it
 * (`PerMessageDeflate`).
 */
import { Cause, Effect, Option, Schema } from "effect"
import * as Crypto from "node:crypto"
import * as Options from "../../core/Options.ts"
import { RateBudget } from "../../core/RateBudget.ts"
import type { Connection, ConnectionError, ReadWithOutcome } from "../../io/Connection.ts"
import type { Request } from "../http/Request.ts"
import * as Res from "../http/Response.ts"
import { closePayload, type Decoded, encode, FrameDecoder, isValidCloseCode, Opcode } from "./Frame.ts"
import * as PerMessageDeflate from "./PerMessageDeflate.ts"

/** One message. */
export type Message = string | Uint8Array

/** A WebSocket as its route's fiber sees it. */
export interface WebSocket {
  /** The request that opened it (path, query, headers). */
  readonly request: Request
  /** The next message; `None` once the connection is closed (by the peer, an error or the server's drain). */
  readonly receive: Effect.Effect<Option.Option<Message>, ConnectionError>
  /** Sends a text (string) or binary message. */
  readonly send: (message: Message) => Effect.Effect<void, ConnectionError>
  /** Starts the closing handshake (default 1000) and ends the session. */
  readonly close: (code?: number, reason?: string) => Effect.Effect<void>
}

/** WebSocket route options, declared once. */
export const options = Options.declare({
  maxMessage: Options.option(Options.PositiveInt, "the largest message after reassembly, in bytes; more closes with 1009 (as soon as a frame header declares it)", 1024 * 1024),
  idleTimeout: Options.option(
    Options.Duration,
    "a client silent for this long (checked once per period) is pinged; silent for another period, the session closes with 1001",
    "60 seconds"
  ),
  maxFragments: Options.option(Options.PositiveInt, "the most frames one message may arrive in; more closes with 1009 (more than 16 empty ones: 1008)", 1024),
  controlFramesPerSecond: Options.option(
    Options.PositiveInt,
    "pings and pongs a client may send per second (bursts of as many); more closes with 1008, so a ping flood cannot take the loop",
    50
  ),
  compression: Options.option(
    Schema.Boolean,
    "permessage-deflate (RFC 7692) when the client offers it, each message on its own (no context takeover: no compression state kept per connection); `maxMessage` bounds the inflated size",
    true
  ),
  compressionThreshold: Options.option(Options.NonNegativeInt, "messages the server sends smaller than this, in bytes, go uncompressed", 1024)
})

/** WebSocket route options (see `options`). */
export type WebSocketOptions = typeof options.schema.Type

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/** `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2). */
export const acceptKey = (key: string): string => Crypto.createHash("sha1").update(key + GUID).digest("base64")

const hasToken = (value: string | undefined, token: string) =>
  value !== undefined && value.split(",").some((t) => t.trim().toLowerCase() === token)

/** Why a request is not a valid opening handshake (status and reason), or undefined when it is. */
export const handshakeProblem = (request: Request): { readonly status: 400 | 426; readonly reason: string } | undefined => {
  const h = request.headers
  if (!hasToken(h.get("upgrade"), "websocket")) return { status: 426, reason: "this resource speaks WebSocket: send Upgrade: websocket" }
  if (request.method !== "GET") return { status: 400, reason: "a WebSocket handshake is a GET" }
  if (!hasToken(h.get("connection"), "upgrade")) return { status: 400, reason: "Connection: Upgrade is missing" }
  if (h.get("sec-websocket-version") !== "13") return { status: 426, reason: "only WebSocket version 13 is supported" }
  const key = h.get("sec-websocket-key")
  if (key === undefined || Buffer.from(key, "base64").byteLength !== 16 || !/^[A-Za-z0-9+/]{22}==$/.test(key)) {
    return { status: 400, reason: "Sec-WebSocket-Key must be 16 random bytes in base64" }
  }
  return undefined
}

const NEED_VERSION: ReadonlyArray<readonly [string, string]> = [["Sec-WebSocket-Version", "13"], ["Upgrade", "websocket"]]

/**
 * The app of a WebSocket route: answers the opening handshake with an
 * upgrade that runs `handler` on the connection, or 400/426 with a reason.
 */
export const route = <E, R>(handler: (socket: WebSocket) => Effect.Effect<void, E, R>, given: WebSocketOptions = {}) => {
  const resolved = options.resolve(given)
  return (request: Request): Effect.Effect<Res.Response, never, R> => {
    const problem = handshakeProblem(request)
    if (problem !== undefined) {
      return Effect.succeed(Res.text(`${problem.status} ${Res.reasonPhrase(problem.status)}: ${problem.reason}\n`, {
        status: problem.status,
        ...(problem.status === 426 ? { headers: NEED_VERSION } : {})
      }))
  }
    const accept = acceptKey(request.headers.get("sec-websocket-key")!)
    const deflate = resolved.compression ? PerMessageDeflate.negotiate(request.headers.get("sec-websocket-extensions")) : undefined
    const headers: Array<readonly [string, string]> = [["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Accept", accept]]
    if (deflate !== undefined) headers.push(["Sec-WebSocket-Extensions", deflate.header])
    return Effect.map(Effect.context<R>(), (context) =>
      Res.upgrade(headers, (conn, buffered) =>
        session(conn, buffered, request, resolved, deflate, (socket) => Effect.provide(handler(socket), context))))
  }
}

/** Runs a session on an upgraded connection until the handler ends and the closing handshake is done. */
const session = (
  conn: Connection,
  buffered: Uint8Array,
  request: Request,
  o: Options.Resolved<typeof options.schema.fields>,
  deflate: PerMessageDeflate.Agreed | undefined,
  handler: (socket: WebSocket) => Effect.Effect<void, unknown>
): Effect.Effect<void, ConnectionError> => Effect.clockWith((clock) => {
  const decoder = new FrameDecoder({ maxMessage: o.maxMessage, maxFragments: o.maxFragments, deflate: deflate !== undefined })
  decoder.push(buffered)
  const budget = new RateBudget(o.controlFramesPerSecond)
  const idle = Options.toDuration(o.idleTimeout)
  /** Bytes arrived since the idle watch last looked; the watch pinged and waits for an answer; the client was silent too long. */
  let heard = false
  let pinged = false
  let silent = false
  let closeSent = false
  let closed = false
  const utf8 = new TextDecoder("utf-8", { fatal: true })

  const sendClose = (code: number, reason: string) =>
    Effect.suspend(() => {
      if (closeSent) return Effect.void
      closeSent = true
      return Effect.ignore(conn.write(encode(Opcode.Close, code === 1005 ? new Uint8Array(0) : closePayload(code, reason))))
    })

  /** Ends the session with `code`: our close frame, then the connection ends. */
  const fail = (code: number, reason: string) =>
    Effect.as(Effect.andThen(sendClose(code, reason), Effect.sync(() => (closed = true))), Option.none<Message>())

  /** What the consumer found for the fiber: a message, an error, or a close frame. */
  let ready: Decoded | undefined = undefined

  /**
   * Decodes what the decoder holds, answering pings and taking pongs right here (within the control
   * frame budget); stops at what the fiber must see. True when nothing is left for it.
   */
  const scan = (): boolean => {
    for (let next = decoder.next(); next !== undefined; next = decoder.next()) {
      if (next._tag === "Control" && next.opcode !== Opcode.Close) {
        if (!budget.take(clock.currentTimeMillisUnsafe())) {
          ready = { _tag: "Error", error: { code: 1008, reason: "too many control frames" } }
          return false
        }
        if (next.opcode === Opcode.Ping) conn.writeUnsafe(encode(Opcode.Pong, next.payload))
        continue
      }
      ready = next
      return false
    }
    return true
  }

  /**
   * The push path (the HTTP engine's): each chunk is decoded in the connection's data event, control
   * frames are answered there, and the fiber wakes only for a whole message, an error or a close.
   */
  const consume = (chunk: Uint8Array): boolean => {
    heard = true
    decoder.push(chunk)
    return scan()
  }
  const readMore = conn.readWith(consume)

  /** `readMore`, where a read ended by the idle watch's close counts as the end. */
  const readMoreUnlessSilenced = Effect.catchIf(readMore, () => silent, () => Effect.succeed<ReadWithOutcome>("eof"))

  /**
   * The idle watch, one timer per session (never one per read): a client silent for `idleTimeout` is
   * pinged; silent for another, it gets a 1001 close and its connection closes (the pending read ends).
   */
  const watch = Effect.forever(Effect.andThen(Effect.sleep(idle), Effect.suspend(() => {
    if (heard) {
      heard = false
      pinged = false
      return Effect.void
    }
    if (!pinged) {
      pinged = true
      return Effect.ignore(conn.write(encode(Opcode.Ping, new Uint8Array(0))))
    }
    silent = true
    return Effect.andThen(sendClose(1001, "idle: no answer to a ping"), Effect.andThen(Effect.sync(() => (closed = true)), conn.close))
  })))

  const receive: Effect.Effect<Option.Option<Message>, ConnectionError> = Effect.suspend(function loop(): Effect.Effect<Option.Option<Message>, ConnectionError> {
    if (closed) return Effect.succeed(Option.none())
    if (ready === undefined) scan()
    const next = ready
    ready = undefined
    if (next !== undefined) {
      if (next._tag === "Error") return fail(next.error.code, next.error.reason)
      if (next._tag === "Message") {
        let payload = next.payload
        if (next.compressed) {
          const inflated = PerMessageDeflate.inflate(payload, o.maxMessage)
          if (!(inflated instanceof Uint8Array)) return fail(inflated.code, inflated.reason)
          payload = inflated
        }
        if (next.binary) return Effect.succeed(Option.some(payload))
        try {
          return Effect.succeed(Option.some(utf8.decode(payload)))
        } catch {
          return fail(1007, "a text message that is not UTF-8")
        }
      }
      // a close frame: answer with the same code (the closing handshake), and the session ends
      const payload = next.payload
      const code = payload.byteLength >= 2 ? payload[0]! * 256 + payload[1]! : 1005
      // an explicit code must be one a peer may send (1005, 1006 and 1015 never are); no payload means no code (1005)
      if (payload.byteLength === 1 || (payload.byteLength >= 2 && !isValidCloseCode(code))) return fail(1002, "an invalid close frame")
      if (payload.byteLength > 2) {
        try {
          utf8.decode(payload.subarray(2)) // the reason is UTF-8 text (RFC 6455 §5.5.1)
        } catch {
          return fail(1007, "a close reason that is not UTF-8")
        }
      }
      return fail(code, "")
    }
    if (conn.isDraining()) return fail(1001, "the server is shutting down")
    // between messages the read is idle: a drain that begins while it waits ends it too (then 1001)
    return Effect.flatMap(readMoreUnlessSilenced, (outcome) =>
      outcome === "yield"
        ? Effect.suspend(loop)
        : outcome === "drain" || conn.isDraining()
        ? fail(1001, "the server is shutting down")
        : Effect.as(Effect.sync(() => (closed = true)), Option.none<Message>()))
  })

  const socket: WebSocket = {
    request,
    receive,
    send: (message) =>
      Effect.suspend(() => {
        if (closeSent) return Effect.void
        const opcode = typeof message === "string" ? Opcode.Text : Opcode.Binary
        const bytes = typeof message === "string" ? Buffer.from(message, "utf8") : message
        // compressed when agreed and worth it (small messages cost more to compress than they save)
        return conn.write(
          deflate !== undefined && bytes.byteLength >= o.compressionThreshold
            ? encode(opcode, PerMessageDeflate.deflate(bytes, deflate.windowBits), true, true)
            : encode(opcode, bytes)
        )
      }),
    close: (code = 1000, reason = "") => Effect.andThen(sendClose(code, reason), Effect.sync(() => (closed = true)))
  }
  // the route's end closes with 1000; a route that fails is logged and closes with 1011 (internal error)
  const run = handler(socket).pipe(
    Effect.andThen(sendClose(1000, "")),
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause as Cause.Cause<never>)
        : Effect.logError(`websocket ${request.path}: the route failed`, cause).pipe(Effect.andThen(sendClose(1011, "internal error")))
    )
  )
  return Effect.scoped(Effect.andThen(Effect.forkScoped(watch), run))
})

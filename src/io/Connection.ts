/**
 * The Connection contract: the only thing a protocol handler sees.
 *
 * A connection is a byte stream in both directions with pull-based reads
 * (nothing is read from the peer until the handler asks), writes that push
 * back when the peer is slow, half-close and close. `NodeConnection` (TCP and
 * Unix sockets) and the testkit's in-memory pair both implement it, so a
 * handler cannot tell one from the other.
 */
import { Data, Effect as EffectModule } from "effect"
import type { Effect, Option } from "effect"
import type { Duplex } from "node:stream"
import type { TlsInfo } from "./Tls.ts"

/** Where the peer of a connection is. `port` is 0 for Unix domain sockets. */
export interface RemoteAddress {
  readonly address: string
  readonly port: number
  readonly family: "IPv4" | "IPv6" | "unix" | "memory"
}

/** The peer reset the connection (ECONNRESET, EPIPE) or went away abruptly. */
export class ConnectionReset extends Data.TaggedError("ConnectionReset")<{
  readonly connectionId: number
  readonly code: string
}> {
  override get message() {
    return `connection ${this.connectionId} reset by peer (${this.code})`
  }
}

/** The connection was idle (no bytes either way) for longer than its idle timeout. */
export class ConnectionTimeout extends Data.TaggedError("ConnectionTimeout")<{
  readonly connectionId: number
}> {
  override get message() {
    return `connection ${this.connectionId} timed out`
  }
}

/** Read or write on a connection that was already closed (locally, or its write side ended). */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly connectionId: number
}> {
  override get message() {
    return `connection ${this.connectionId} is closed`
  }
}

/** Any other socket error, with the system error code. */
export class ConnectionFailed extends Data.TaggedError("ConnectionFailed")<{
  readonly connectionId: number
  readonly code: string
  readonly reason: string
}> {
  override get message() {
    return `connection ${this.connectionId} failed: ${this.code} ${this.reason}`
  }
}

/** Every way a read or write can fail. */
export type ConnectionError = ConnectionReset | ConnectionTimeout | ConnectionClosed | ConnectionFailed

/**
 * A full-duplex byte connection owned by one fiber.
 *
 * @example
 * const echo = (conn: Connection) => Effect.gen(function*() {
 *   while (true) {
 *     const chunk = yield* conn.read
 *     if (Option.isNone(chunk)) return
 *     yield* conn.write(chunk.value)
 *   }
 * })
 */
export interface Connection {
  /** Unique per listener (or per in-memory pair), increasing. */
  readonly id: number
  /** The peer's address. */
  readonly remote: RemoteAddress
  /** TLS details (protocol, ALPN, SNI name, client certificate); undefined on a plain connection. */
  readonly tls?: TlsInfo | undefined
  /** The next chunk of bytes from the peer; `None` once the peer has ended its write side (EOF). */
  readonly read: Effect.Effect<Option.Option<Uint8Array>, ConnectionError>
  /**
   * Writes one buffer or several (several go out in one writev). Completes at
   * once while the outgoing buffer is below its high-water mark; otherwise
   * waits until it drains, so a slow peer slows the writer down. `write([])`
   * writes nothing and only waits for that (after `writeUnsafe` said false).
   */
  readonly write: (data: Uint8Array | ReadonlyArray<Uint8Array>) => Effect.Effect<void, ConnectionError>
  /**
   * Push-mode reading, for protocols whose per-chunk work is plain
   * synchronous code (the HTTP engine's parse → app → coalesced write):
   * while the fiber waits, every chunk is handed to `consume` as it arrives
   * (buffered chunks first), without resuming the fiber, for as long as
   * `consume` returns true. Completes with `"yield"` once `consume` returns
   * false (it took that chunk and wants its fiber back), `"eof"` at the end
   * of input, or `"drain"` when the server begins to drain while it waits.
   * A `consume` that throws fails the read with that defect. Backpressure
   * is the consumer's: it writes with `writeUnsafe` and yields when told to
   * wait.
   */
  readonly readWith: (consume: (chunk: Uint8Array) => boolean) => Effect.Effect<ReadWithOutcome, ConnectionError>
  /**
   * Writes without waiting, for code running in `readWith`'s consumer: true
   * while the outgoing buffer is below its high-water mark; false when the
   * writer must wait (`write([])`) before writing more, or the connection is
   * closed (then that `write` fails with why).
   */
  readonly writeUnsafe: (data: Uint8Array | ReadonlyArray<Uint8Array>) => boolean
  /** Half-close: sends FIN after pending writes. Reading may go on. */
  readonly endWrite: Effect.Effect<void>
  /**
   * Closes the connection: pending writes are flushed, then FIN; input the
   * peer still sends is read and discarded for a short linger period so the
   * peer receives everything that was written (no RST over unread data).
   */
  readonly close: Effect.Effect<void>
  /**
   * Completes when the server begins to shut down (drain). A protocol that
   * wants to say goodbye waits on it (e.g. forks a fiber that tells the
   * client); it never completes on a server that keeps running.
   */
  readonly draining: Effect.Effect<void>
  /** True once the server is draining. */
  readonly isDraining: () => boolean
  /**
   * `read` at a message boundary, where the connection is idle: the same,
   * except that it returns `None` (as at EOF) when the server is draining,
   * at once if nothing is buffered or as soon as a drain begins while it
   * waits. A protocol that reads with it between messages lets shutdown
   * close idle clients at once instead of waiting for `drainTimeout`.
   */
  readonly readIdle: Effect.Effect<Option.Option<Uint8Array>, ConnectionError>
  /**
   * Hands the connection's bytes to a framing layer written for Node streams
   * (node:http2): a Duplex that reads `buffered` (bytes the protocol read but
   * did not use) and what the peer has sent or will send, and writes to the
   * peer. The Connection's own reads and writes are not used after it; the
   * listener still owns the connection, and `close` ends it.
   */
  readonly detach: (buffered: Uint8Array) => Duplex
}

/** How a `readWith` ended: the consumer asked for its fiber, end of input, or the server began to drain. */
export type ReadWithOutcome = "yield" | "eof" | "drain"

const YIELDED: Effect.Effect<ReadWithOutcome> = EffectModule.succeed("yield")

/**
 * For implementations of `readWith`: runs its consumer on one chunk.
 * Undefined while the consumer goes on; otherwise what ends the read (its
 * "yield", or the defect it threw).
 */
export const consumeChunk = (
  consume: (chunk: Uint8Array) => boolean,
  chunk: Uint8Array
): Effect.Effect<ReadWithOutcome> | undefined => {
  try {
    return consume(chunk) ? undefined : YIELDED
  } catch (defect) {
    return EffectModule.die(defect)
  }
}

/**
 * The drain signal a listener shares with its connections: `start` once,
 * when shutdown begins; connections waiting in `readIdle` are woken by the
 * listener, and `draining` completes for everyone.
 */
export class DrainSignal {
  started = false
  private readonly waiters: Array<() => void> = []
  /** Completes when the drain starts. */
  readonly draining: Effect.Effect<void> = EffectModule.callback<void>((resume) => {
    if (this.started) return resume(EffectModule.void)
    const wake = () => resume(EffectModule.void)
    this.waiters.push(wake)
    return EffectModule.sync(() => {
      const i = this.waiters.indexOf(wake)
      if (i >= 0) this.waiters.splice(i, 1)
    })
  })
  /** Starts the drain (idempotent). */
  start(): void {
    if (this.started) return
    this.started = true
    for (const wake of this.waiters.splice(0)) wake()
  }
}

const connectionErrorTags = new Set(["ConnectionReset", "ConnectionTimeout", "ConnectionClosed", "ConnectionFailed"])

/** True for the errors a Connection's reads and writes fail with. */
export const isConnectionError = (u: unknown): u is ConnectionError =>
  typeof u === "object" && u !== null && connectionErrorTags.has((u as { _tag?: unknown })._tag as string)

/** A protocol: what runs in the fiber of each accepted connection. */
export type Handler<E = never, R = never> = (conn: Connection) => Effect.Effect<void, E, R>

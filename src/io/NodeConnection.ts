/**
 * `Connection` over a `node:net` socket (TCP or Unix domain).
 *
 * The socket starts paused and its listeners are attached once. The first
 * `read` lets it flow; a chunk that arrives while the fiber waits is handed
 * to it directly from the 'data' event (the resume runs the fiber
 * synchronously, no scheduler hop). Chunks that arrive while nobody reads are
 * queued, and once the queue holds `maxBuffered` bytes the socket is paused,
 * so Node stops reading from the kernel and the peer is pushed back; it flows
 * again when the reader has taken the queue below that. In push mode
 * (`readWith`) the 'data' event calls the consumer itself and the fiber is
 * resumed only when the consumer asks. `write` does not wait for the write
 * callback: it suspends only when `write()` says the buffer is full, until
 * 'drain'; `writeUnsafe` never suspends. A TLS socket is the same socket
 * after its handshake (`tls` then describes it). The read side's rules are
 * `ReadSide`'s, shared with the in-memory connection.
 */
import { Effect, Option } from "effect"
import type { Fiber } from "effect"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import {
  ConnectionClosed,
  type DrainSignal,
  type ConnectionError,
  ConnectionFailed,
  ConnectionReset,
  ConnectionTimeout,
  type Connection,
  type ReadWithOutcome,
  type RemoteAddress
} from "./Connection.ts"
import type { Timed, TimeoutManager } from "../core/Timeouts.ts"
import { ReadSide, type ReadTransport } from "./ReadSide.ts"
import type { TurnBudget } from "./TurnBudget.ts"
import { infoOf, type TlsInfo } from "./Tls.ts"

/** Counters a connection adds to as data moves (shared per listener). */
export interface ByteCounters {
  bytesIn: number
  bytesOut: number
  /** Times a socket was paused because its reader fell `maxBuffered` bytes behind (backpressure). */
  readPauses: number
  /** Connections closed because a write made no progress for the send timeout. */
  sendTimeouts: number
}

/** The deadline of a write waiting for 'drain': no progress for the send timeout closes the connection. */
class SendDeadline implements Timed {
  lastActive = 0
  readonly timeoutTicks: number
  readonly conn: NodeConnection
  constructor(conn: NodeConnection, ticks: number) {
    this.conn = conn
    this.timeoutTicks = ticks
  }
  onTimeout(): void {
    this.conn.onSendTimeout()
  }
}

type Resume<A> = (effect: Effect.Effect<A, ConnectionError>) => void

/** Bytes queued for a reader that is not reading before the socket is paused. */
const MAX_BUFFERED = 64 * 1024
const resetCodes = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE"])

/** Describes the peer of a socket. */
export const remoteOf = (socket: Net.Socket, unixPath: string | undefined): RemoteAddress =>
  unixPath !== undefined || socket.remoteAddress === undefined
    ? { address: unixPath ?? "unknown", port: 0, family: "unix" }
    : {
      address: socket.remoteAddress,
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily === "IPv6" ? "IPv6" : "IPv4"
    }

/** What the listener does when a connection times out or its socket closes (shared by all its connections). */
export interface ConnectionOwner {
  readonly onIdle: (conn: NodeConnection) => void
  readonly onClosed: (conn: NodeConnection) => void
}

const kConnection = Symbol.for("fiberd/NodeConnection")
type OwnedSocket = Net.Socket & { [kConnection]: NodeConnection }

// One set of listener functions for every socket (no closures per connection).
function onSocketData(this: OwnedSocket, chunk: Buffer) {
  this[kConnection].onData(chunk)
}
function onSocketEnd(this: OwnedSocket) {
  this[kConnection].onEnd()
}
function onSocketDrain(this: OwnedSocket) {
  this[kConnection].onDrain()
}
function onSocketError(this: OwnedSocket, error: NodeJS.ErrnoException) {
  this[kConnection].onError(error)
}
function onSocketClose(this: OwnedSocket) {
  this[kConnection].onClose()
}

/** The socket-backed Connection; the listener also drives its lifetime through it. */
export class NodeConnection implements Connection, Timed, ReadTransport {
  readonly id: number
  readonly remote: RemoteAddress
  readonly tls: TlsInfo | undefined
  readonly socket: Net.Socket
  lastActive = 0
  timeoutTicks: number
  /** When the connection was made (ms since the epoch): the live status shows the oldest. */
  readonly openedAt = Date.now()
  /** The fiber running the handler, while it runs. */
  fiber: Fiber.Fiber<void, unknown> | undefined = undefined
  private readonly timeouts: TimeoutManager
  private readonly counters: ByteCounters
  private readonly owner: ConnectionOwner
  private readonly reads: ReadSide
  private drainWaiter: Resume<void> | undefined = undefined
  private paused = true
  private failure: ConnectionError | undefined = undefined
  private lingering = false
  private readonly lingerTicks: number
  /** Bytes still allowed to be discarded while lingering. */
  private lingerBudget: number
  private drainEffect: Effect.Effect<void, ConnectionError> | undefined = undefined
  private readonly sendTicks: number
  private sendDeadline: SendDeadline | undefined = undefined
  private readonly drainSignal: DrainSignal
  /** The socket's byte counts when it was handed to another framing layer (`detach`), which counts nothing itself. */
  private detachedAt: { readonly read: number; readonly written: number } | undefined = undefined

  constructor(options: {
    readonly id: number
    readonly socket: Net.Socket
    readonly remote: RemoteAddress
    readonly counters: ByteCounters
    readonly timeouts: TimeoutManager
    readonly owner: ConnectionOwner
    readonly idleTimeoutMillis: number
    readonly lingerMillis: number
    /** Unread input discarded at most while lingering; more resets the connection. Default 256 KiB. */
    readonly lingerBytes?: number
    readonly drain: DrainSignal
    /** A write waiting for 'drain' longer than this closes the connection (nginx's send_timeout). Default: never. */
    readonly sendTimeoutMillis?: number
    /** The listener's per-turn budget for push consumers. */
    readonly budget?: TurnBudget
  }) {
    this.sendTicks = Number.isFinite(options.sendTimeoutMillis ?? Infinity) ? options.timeouts.ticksFor(options.sendTimeoutMillis!) : 0
    this.drainSignal = options.drain
    this.id = options.id
    this.socket = options.socket
    this.remote = options.remote
    this.tls = infoOf(options.socket)
    this.counters = options.counters
    this.timeouts = options.timeouts
    this.owner = options.owner
    this.timeoutTicks = options.timeouts.ticksFor(options.idleTimeoutMillis)
    this.lingerTicks = options.timeouts.ticksFor(options.lingerMillis)
    this.lingerBudget = options.lingerBytes ?? 256 * 1024
    this.reads = new ReadSide(options.id, options.drain, this, options.budget)
    const socket = options.socket as OwnedSocket
    socket[kConnection] = this
    socket.on("data", onSocketData)
    socket.on("end", onSocketEnd)
    socket.on("drain", onSocketDrain)
    socket.on("error", onSocketError)
    socket.on("close", onSocketClose)
    if (Number.isFinite(options.idleTimeoutMillis)) this.timeouts.add(this)
  }

  // ---- Connection -------------------------------------------------------

  // built when first used (a connection read in push mode never builds them): memory per idle connection counts
  get read(): Effect.Effect<Option.Option<Uint8Array>, ConnectionError> {
    return this.readEffect ??= Effect.callback((resume) => this.reads.startRead(resume, false))
  }
  private readEffect: Effect.Effect<Option.Option<Uint8Array>, ConnectionError> | undefined = undefined

  get readIdle(): Effect.Effect<Option.Option<Uint8Array>, ConnectionError> {
    return this.readIdleEffect ??= Effect.callback((resume) => this.reads.startRead(resume, true))
  }
  private readIdleEffect: Effect.Effect<Option.Option<Uint8Array>, ConnectionError> | undefined = undefined

  get draining(): Effect.Effect<void> {
    return this.drainSignal.draining
  }

  isDraining(): boolean {
    return this.drainSignal.started
  }

  readWith(consume: (chunk: Uint8Array) => boolean): Effect.Effect<ReadWithOutcome, ConnectionError> {
    return Effect.callback((resume) => this.reads.startPush(consume, resume))
  }

  /** The server started to drain: a `readIdle` waiting now ends as at EOF; a `readWith` says "drain". */
  onDrainStart(): void {
    this.reads.drainStarted()
  }

  // a method, not an arrow function per connection: memory per idle connection counts
  write(data: Uint8Array | ReadonlyArray<Uint8Array>): Effect.Effect<void, ConnectionError> {
    if (this.failure !== undefined) return Effect.fail(this.failure)
    const socket = this.socket
    if (socket.destroyed || socket.writableEnded) return Effect.fail(new ConnectionClosed({ connectionId: this.id }))
    if (this.send(data)) return Effect.void
    return this.drainEffect ??= this.makeWaitDrain()
  }

  writeUnsafe(data: Uint8Array | ReadonlyArray<Uint8Array>): boolean {
    const socket = this.socket
    if (this.failure !== undefined || socket.destroyed || socket.writableEnded) return false
    return this.send(data)
  }

  /** Hands bytes to the socket; true while its outgoing buffer is below the high-water mark. */
  private send(data: Uint8Array | ReadonlyArray<Uint8Array>): boolean {
    const socket = this.socket
    let ok = false
    let bytes = 0
    if (data instanceof Uint8Array) {
      bytes = data.byteLength
      ok = socket.write(data)
    } else if (data.length === 1) {
      const only = data[0]!
      bytes = only.byteLength
      ok = socket.write(only)
    } else if (data.length > 1) {
      socket.cork()
      ok = true
      for (const part of data) {
        bytes += part.byteLength
        ok = socket.write(part)
      }
      socket.uncork()
    }
    if (bytes > 0) {
      this.counters.bytesOut += bytes
      this.lastActive = this.timeouts.epoch
    }
    // write() says false whenever a chunk reaches the high-water mark, even when the kernel took it all
    // at once; wait for 'drain' only if bytes are really still queued in user space
    return ok || socket.writableLength < socket.writableHighWaterMark
  }

  detach(buffered: Uint8Array): Duplex {
    const socket = this.socket
    socket.pause()
    this.paused = true
    socket.removeListener("data", onSocketData)
    socket.removeListener("end", onSocketEnd)
    socket.removeListener("drain", onSocketDrain)
    this.timeouts.remove(this) // the new layer keeps its own timeouts
    socket.allowHalfOpen = false // the peer's FIN ends the connection (framing layers such as node:http2 expect it)
    const queued = this.reads.takeQueued()
    this.reads.fail(undefined)
    const rest = queued.length === 0 ? buffered : Buffer.concat([buffered, ...queued])
    // what was read but not used goes back in front of the socket's input; the new layer reads it first
    if (rest.byteLength > 0) socket.unshift(rest)
    // queued chunks were not counted yet (a chunk is counted when a reader takes it)
    this.detachedAt = { read: socket.bytesRead - (rest.byteLength - buffered.byteLength), written: socket.bytesWritten }
    return socket
  }

  get endWrite(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end()
    })
  }

  get close(): Effect.Effect<void> {
    return Effect.sync(() => this.closeGracefully())
  }

  // ---- lifetime, driven by the listener ---------------------------------

  /**
   * Ends the write side and lingers: input is read and discarded until the
   * peer's FIN (the socket then closes itself), the linger time passes or
   * more than the linger bytes arrived.
   */
  closeGracefully(): void {
    const socket = this.socket
    if (socket.destroyed || this.lingering) return
    if (this.detachedAt !== undefined) return socket.destroySoon() // the layer it was handed to has said goodbye
    this.lingering = true
    this.failPending(undefined)
    if (!socket.writableEnded) socket.end()
    if (this.reads.eof || socket.readableEnded) {
      if (socket.writableFinished) socket.destroy()
      return
    }
    this.timeouts.remove(this)
    this.timeoutTicks = this.lingerTicks
    this.timeouts.add(this)
    this.reads.discard()
    if (this.paused) this.flow()
  }

  /** After a failed or interrupted handler: closes at once, unless a graceful close was already asked for. */
  abort(): void {
    if (!this.lingering) this.destroy()
  }

  /** Closes at once (RST if input is unread). */
  destroy(error?: ConnectionError): void {
    if (error !== undefined && this.failure === undefined) this.failure = error
    this.failPending(this.failure)
    this.socket.destroy()
  }

  /** Called by the shared timeout manager. */
  onTimeout(): void {
    if (this.lingering) {
      this.socket.destroy()
      return
    }
    this.failure ??= new ConnectionTimeout({ connectionId: this.id })
    this.owner.onIdle(this)
  }

  // ---- socket events ----------------------------------------------------

  // ---- the read side's transport (methods, not closures: memory per connection counts) ----

  /** A reader waits: a paused socket flows again. */
  onWait(): void {
    if (this.paused) this.flow()
  }

  /** A chunk goes to the reader: counted. */
  onTake(chunk: Uint8Array): Uint8Array {
    return this.took(chunk as Buffer)
  }

  /** A chunk left the queue: below the limit, a paused socket flows again. */
  onDequeue(queued: number): void {
    if (this.paused && queued < MAX_BUFFERED) this.flow()
  }

  private took(chunk: Buffer): Buffer {
    this.counters.bytesIn += chunk.byteLength
    this.lastActive = this.timeouts.epoch
    return chunk
  }

  private flow(): void {
    this.paused = false
    this.socket.resume()
  }

  onData(chunk: Buffer): void {
    if (this.lingering) {
      // discarding input after the answer: bounded by bytes as well as by time (a peer that keeps sending is reset)
      this.lingerBudget -= chunk.byteLength
      if (this.lingerBudget < 0) this.socket.destroy()
      return
    }
    if (this.reads.push(chunk) >= MAX_BUFFERED && !this.paused) {
      this.paused = true
      this.socket.pause()
      this.counters.readPauses++
    }
  }

  onEnd(): void {
    this.reads.end()
    if (this.lingering && this.socket.writableFinished) this.socket.destroy()
  }

  onDrain(): void {
    if (this.sendDeadline !== undefined) this.timeouts.remove(this.sendDeadline)
    const waiter = this.drainWaiter
    if (waiter !== undefined) {
      this.drainWaiter = undefined
      waiter(Effect.void)
    }
  }

  onError(error: NodeJS.ErrnoException): void {
    const code = error.code ?? "EUNKNOWN"
    this.failure ??= resetCodes.has(code)
      ? new ConnectionReset({ connectionId: this.id, code })
      : new ConnectionFailed({ connectionId: this.id, code, reason: error.message })
    this.failPending(this.failure)
  }

  /** A write waited for 'drain' longer than the send timeout: the peer is not reading; close at once. */
  onSendTimeout(): void {
    if (this.socket.destroyed) return
    this.counters.sendTimeouts++
    this.destroy(new ConnectionTimeout({ connectionId: this.id }))
  }

  onClose(): void {
    if (this.detachedAt !== undefined) {
      this.counters.bytesIn += Math.max(0, this.socket.bytesRead - this.detachedAt.read)
      this.counters.bytesOut += Math.max(0, this.socket.bytesWritten - this.detachedAt.written)
    }
    this.timeouts.remove(this)
    if (this.sendDeadline !== undefined) this.timeouts.remove(this.sendDeadline)
    this.failPending(this.failure)
    this.owner.onClosed(this)
  }

  /** What waits fails: with `error`, or as closed on this side (a waiting reader reads EOF after the peer's FIN). */
  private failPending(error: ConnectionError | undefined): void {
    this.reads.fail(error)
    const drainer = this.drainWaiter
    this.drainWaiter = undefined
    if (drainer !== undefined) drainer(Effect.fail(error ?? new ConnectionClosed({ connectionId: this.id })))
  }

  private makeWaitDrain(): Effect.Effect<void, ConnectionError> {
    return Effect.callback<void, ConnectionError>((resume) => {
      if (this.failure !== undefined) return resume(Effect.fail(this.failure))
      if (this.socket.destroyed) return resume(Effect.fail(new ConnectionClosed({ connectionId: this.id })))
      if (this.socket.writableLength < this.socket.writableHighWaterMark) return resume(Effect.void)
      this.drainWaiter = resume
      if (this.sendTicks > 0) this.timeouts.add(this.sendDeadline ??= new SendDeadline(this, this.sendTicks))
      return Effect.sync(() => {
        this.drainWaiter = undefined
        if (this.sendDeadline !== undefined) this.timeouts.remove(this.sendDeadline)
      })
    })
  }
}

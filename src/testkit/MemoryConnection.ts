/**
 * An in-memory `Connection` pair: the same contract as a socket, no I/O.
 *
 * Each direction is a bounded pipe. Reads are pull-based (a reader that does
 * not read leaves bytes in the pipe), a write is accepted at once while the
 * pipe holds less than `bufferSize` bytes and otherwise waits until the reader
 * drains it below that (backpressure, like a socket's 'drain'). `endWrite`
 * half-closes one direction; `reset` breaks both abruptly. A handler cannot
 * tell a `MemoryEnd` from a `NodeConnection`.
 */
import { Effect, Exit, Option } from "effect"
import { Duplex } from "node:stream"
import {
  ConnectionClosed,
  type ConnectionError,
  ConnectionReset,
  ConnectionTimeout,
  type Connection,
  DrainSignal,
  type ReadWithOutcome,
  type RemoteAddress
} from "../io/Connection.ts"
import { ReadSide } from "../io/ReadSide.ts"

type Resume<A> = (effect: Effect.Effect<A, ConnectionError>) => void

/** One direction of a pair: what one end writes and the other reads (its read side is `ReadSide`'s rules). */
class Pipe {
  /** Set once the reading end is known (its id and drain signal). */
  reads!: ReadSide
  ended = false
  readonly writers: Array<Resume<void>> = []
  readonly capacity: number
  readonly onActivity: () => void

  constructor(capacity: number, onActivity: () => void) {
    this.capacity = capacity
    this.onActivity = onActivity
  }

  /** Reads for the end with this id and drain signal. */
  attach(connectionId: number, drain: DrainSignal): void {
    this.reads = new ReadSide(connectionId, drain, {
      onWait: () => {},
      onTake: (chunk) => chunk,
      onDequeue: (queued) => {
        this.onActivity()
        if (queued < this.capacity) this.wakeWriters(Effect.void)
      }
    })
  }

  get buffered(): number {
    return this.reads.queued
  }

  get failure(): ConnectionError | undefined {
    return this.reads.failure
  }

  push(chunk: Uint8Array): void {
    this.onActivity()
    this.reads.push(chunk)
  }

  end(): void {
    if (this.ended) return
    this.ended = true
    this.onActivity()
    this.reads.end()
  }

  fail(error: ConnectionError): void {
    this.reads.discard()
    this.reads.fail(error)
    this.onActivity()
    this.wakeWriters(Effect.fail(this.reads.failure!))
  }

  /** Drops what is buffered and accepts (discards) future writes: the reading side went away politely. */
  discard(): void {
    this.reads.discard()
    this.wakeWriters(Effect.void)
  }

  wakeWriters(effect: Effect.Effect<void, ConnectionError>): void {
    // wake only the writers waiting now: a woken writer that fills the pipe again waits anew
    for (const writer of this.writers.splice(0)) writer(effect)
  }
}

/** How a pair is built. */
export interface PairOptions {
  /** Bytes a direction holds before writes wait for the reader. Default 64 KiB. */
  readonly bufferSize?: number
  /** The address the server end reports as its peer. Default 127.0.0.1:40000. */
  readonly remote?: RemoteAddress
  /** Connection id of the server end. Default 1. */
  readonly id?: number
}

/** One end of an in-memory pair; a full `Connection`, plus `reset` and inspection for tests. */
export class MemoryEnd implements Connection {
  readonly id: number
  readonly remote: RemoteAddress
  /** Set by the other end; private to the pair. */
  peer!: MemoryEnd
  private readonly inbound: Pipe
  private readonly outbound: Pipe
  private closedLocally = false
  private discarding = false
  /** Called on every byte movement (the testkit uses it for idle timeouts). */
  onActivity: () => void = () => {}

  constructor(id: number, remote: RemoteAddress, inbound: Pipe, outbound: Pipe) {
    this.id = id
    this.remote = remote
    this.inbound = inbound
    this.outbound = outbound
    inbound.attach(id, this.drainSignal)
  }

  readonly read: Effect.Effect<Option.Option<Uint8Array>, ConnectionError> = Effect.callback((resume) => this.inbound.reads.startRead(resume, false))

  readonly readIdle: Effect.Effect<Option.Option<Uint8Array>, ConnectionError> = Effect.callback((resume) => this.inbound.reads.startRead(resume, true))

  /** The drain signal of this end (a test starts it with `drain()`, as a listener does at shutdown). */
  readonly drainSignal = new DrainSignal()

  get draining(): Effect.Effect<void> {
    return this.drainSignal.draining
  }

  readonly isDraining = (): boolean => this.drainSignal.started

  /** Starts the server's drain for this connection: `draining` completes and an idle read ends. */
  drain(): void {
    this.drainSignal.start()
    this.inbound.reads.drainStarted()
  }

  readWith(consume: (chunk: Uint8Array) => boolean): Effect.Effect<ReadWithOutcome, ConnectionError> {
    return Effect.callback((resume) => this.inbound.reads.startPush(consume, resume))
  }

  writeUnsafe(data: Uint8Array | ReadonlyArray<Uint8Array>): boolean {
    const pipe = this.outbound
    if (pipe.failure !== undefined || pipe.ended || this.closedLocally) return false
    if (this.peer.discarding) return true
    const parts = data instanceof Uint8Array ? [data] : data
    if (parts.length > 0) {
      const joined = parts.length === 1 ? parts[0]!.slice() : Buffer.concat(parts)
      if (joined.byteLength > 0) pipe.push(joined)
    }
    return pipe.buffered < pipe.capacity
  }

  readonly write = (data: Uint8Array | ReadonlyArray<Uint8Array>): Effect.Effect<void, ConnectionError> =>
    Effect.callback<void, ConnectionError>((resume) => {
      const pipe = this.outbound
      if (pipe.failure !== undefined) return resume(Effect.fail(pipe.failure))
      if (pipe.ended || this.closedLocally) return resume(Effect.fail(new ConnectionClosed({ connectionId: this.id })))
      if (this.peer.discarding) return resume(Effect.void)
      if (this.writeUnsafe(data)) return resume(Effect.void)
      pipe.writers.push(resume)
      return Effect.sync(() => {
        const i = pipe.writers.indexOf(resume)
        if (i >= 0) pipe.writers.splice(i, 1)
      })
    })

  get endWrite(): Effect.Effect<void> {
    return Effect.sync(() => this.outbound.end())
  }

  get close(): Effect.Effect<void> {
    return Effect.sync(() => this.closeNow())
  }

  /**
   * This end as a Node Duplex (for node:http2 on either side): it reads
   * `buffered`, then what the peer writes, and writes into the pipe, waiting
   * while it is full.
   */
  detach(buffered: Uint8Array): Duplex {
    const out = this.outbound
    const failed = (effect: Effect.Effect<unknown, ConnectionError>): Error | undefined =>
      Exit.isExit(effect) && Exit.isFailure(effect) ? new Error(String(effect.cause)) : undefined
    const duplex = new Duplex({
      read() {},
      write: (chunk: Buffer, _encoding, done) => {
        if (this.writeUnsafe(chunk)) return done()
        if (out.failure !== undefined || out.ended || this.closedLocally) return done(out.failure ?? new Error("closed"))
        out.writers.push((effect) => done(failed(effect)))
      },
      final: (done) => {
        out.end()
        done()
      },
      destroy: (error, done) => {
        this.closeNow()
        done(error)
      }
    })
    if (buffered.byteLength > 0) duplex.push(buffered)
    // every chunk the peer writes goes to the Duplex as it arrives; the end of input or a failure ends it
    this.inbound.reads.startPush((chunk) => duplex.push(chunk) || true, (outcome) => {
      const error = failed(outcome)
      if (error !== undefined) duplex.destroy(error)
      else duplex.push(null)
    })
    return duplex
  }

  /** Breaks the connection abruptly, as a TCP RST: pending and later I/O on both ends fails with ConnectionReset. */
  get reset(): Effect.Effect<void> {
    return Effect.sync(() => this.resetNow("ECONNRESET"))
  }

  /** Closes both directions politely: the peer reads EOF after what was written; its later writes are discarded. */
  closeNow(): void {
    if (this.closedLocally) return
    this.outbound.end()
    this.closedLocally = true
    this.discarding = true
    this.inbound.discard()
    this.inbound.reads.fail(undefined)
  }

  /** True while this end's fiber waits on the connection (a read, or a write on a full buffer). */
  get waiting(): boolean {
    return this.inbound.reads.waiting || this.outbound.writers.length > 0
  }

  /** True once this end closed (close) or timed out. */
  get closed(): boolean {
    return this.closedLocally
  }

  /** Fails both directions (reset or timeout) for both ends. */
  resetNow(code: string): void {
    this.inbound.fail(new ConnectionReset({ connectionId: this.id, code }))
    this.outbound.fail(new ConnectionReset({ connectionId: this.peer.id, code }))
  }

  /** Ends the connection because it was idle too long: this end's I/O fails with ConnectionTimeout, the peer sees a close. */
  timeOut(): void {
    const error = new ConnectionTimeout({ connectionId: this.id })
    this.inbound.fail(error)
    this.outbound.end()
    this.closedLocally = true
    this.inbound.reads.closed = true
  }

  /**
   * Takes up to `max` bytes the peer has written, without waiting (a test's
   * slow reader). Returns an empty array when nothing is buffered.
   */
  readAvailable(max = Number.POSITIVE_INFINITY): Uint8Array {
    const reads = this.inbound.reads
    const taken: Array<Uint8Array> = []
    let room = max
    while (room > 0 && reads.queue.length > 0) {
      const head = reads.queue[0]!
      if (head.byteLength <= room) {
        taken.push(reads.shift())
        room -= head.byteLength
      } else {
        taken.push(head.subarray(0, room))
        reads.queue[0] = head.subarray(room)
        reads.queued -= room
        room = 0
        this.inbound.onActivity()
        if (reads.queued < this.inbound.capacity) this.inbound.wakeWriters(Effect.void)
      }
    }
    return taken.length === 1 ? taken[0]! : Buffer.concat(taken)
  }

  /** Bytes written by the peer that this end has not read yet. */
  get unread(): number {
    return this.inbound.buffered
  }

  /** True once the peer ended its write side (whether or not everything was read). */
  get peerEnded(): boolean {
    return this.inbound.ended
  }

  /** True when this end ended its write side (endWrite or close). */
  get writeEnded(): boolean {
    return this.outbound.ended
  }

  /** The reset or timeout that broke the connection, if any. */
  get failure(): ConnectionError | undefined {
    return this.inbound.failure
  }
}

/** A connected pair: `server` is what the handler gets, `client` is the test's side. */
export interface Pair {
  readonly server: MemoryEnd
  readonly client: MemoryEnd
}

/**
 * Builds a connected in-memory pair.
 *
 * @example
 * const { server, client } = MemoryConnection.makePair({ bufferSize: 16 })
 * yield* Effect.forkChild(Echo.handler(server))
 * yield* client.write(Buffer.from("hi"))
 */
export const makePair = (options: PairOptions = {}): Pair => {
  const capacity = options.bufferSize ?? 64 * 1024
  let activity = () => {}
  const touch = () => activity()
  const toServer = new Pipe(capacity, touch)
  const toClient = new Pipe(capacity, touch)
  const id = options.id ?? 1
  const server = new MemoryEnd(
    id,
    options.remote ?? { address: "127.0.0.1", port: 40000, family: "memory" },
    toServer,
    toClient
  )
  const client = new MemoryEnd(-id, { address: "server", port: 0, family: "memory" }, toClient, toServer)
  server.peer = client
  client.peer = server
  activity = () => server.onActivity()
  return { server, client }
}

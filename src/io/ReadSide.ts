/**
 * The read side of a `Connection`, once, for the socket connection and the
 * in-memory one alike: chunks queued while nobody reads, a pull reader
 * (`read`, `readIdle`) or a push consumer (`readWith`) waiting, the end of
 * input, a failure, a close on this side, and what the server's drain does
 * to readers (an idle read ends as at EOF, a push read says "drain"). The
 * transport pushes chunks in and says when input ended or broke; it hears
 * when a reader starts to wait (a paused socket flows again) and when a chunk
 * leaves the queue (backpressure is released).
 */
import { Effect, Option } from "effect"
import { ConnectionClosed, type ConnectionError, consumeChunk, type DrainSignal, type ReadWithOutcome } from "./Connection.ts"
import type { TurnBudget } from "./TurnBudget.ts"

type Resume<A> = (effect: Effect.Effect<A, ConnectionError>) => void

const EOF: Effect.Effect<Option.Option<Uint8Array>> = Effect.succeed(Option.none())
const ENDED: Effect.Effect<ReadWithOutcome> = Effect.succeed("eof")
const DRAINING: Effect.Effect<ReadWithOutcome> = Effect.succeed("drain")

/** What the transport does for its read side. */
export interface ReadTransport {
  /** A reader starts to wait: input should flow. */
  readonly onWait: () => void
  /** A chunk is handed to the reader (count it); returns it. */
  readonly onTake: (chunk: Uint8Array) => Uint8Array
  /** A chunk left the queue; `queued` bytes remain. */
  readonly onDequeue: (queued: number) => void
}

/** A connection's read side (see the module comment). */
export class ReadSide {
  private readonly connectionId: number
  private readonly drain: DrainSignal
  private readonly transport: ReadTransport
  private chunks: Array<Uint8Array> | undefined = undefined
  /** Bytes queued for a reader that is not reading. */
  queued = 0
  /** Input ended (the peer's FIN). */
  eof = false
  /** Why input broke (a reset, a timeout), if it did. */
  failure: ConnectionError | undefined = undefined
  /** This side was closed: reads fail with ConnectionClosed. */
  closed = false
  private reader: Resume<Option.Option<Uint8Array>> | undefined = undefined
  private idleRead = false
  private consumer: ((chunk: Uint8Array) => boolean) | undefined = undefined
  private pushWaiter: Resume<ReadWithOutcome> | undefined = undefined
  /** Built at the first suspended read, then reused: no allocation per read. */
  private cancelRead: Effect.Effect<void> | undefined = undefined
  private cancelPush: Effect.Effect<void> | undefined = undefined
  /** The listener's per-turn budget for push consumers (none: every chunk is consumed when it arrives). */
  private readonly budget: TurnBudget | undefined
  /** Queued chunks wait for this connection's turn (see TurnBudget). */
  private deferred = false

  constructor(connectionId: number, drain: DrainSignal, transport: ReadTransport, budget?: TurnBudget) {
    this.connectionId = connectionId
    this.drain = drain
    this.transport = transport
    this.budget = budget
  }

  /** A reader or a push consumer waits. */
  get waiting(): boolean {
    return this.reader !== undefined || this.pushWaiter !== undefined
  }

  /** Queued chunks, oldest first (for an in-memory peer that takes bytes without a read). */
  get queue(): Array<Uint8Array> {
    return this.chunks ??= []
  }

  private closedError(): ConnectionError {
    return new ConnectionClosed({ connectionId: this.connectionId })
  }

  /** Takes the oldest queued chunk for the reader. */
  shift(): Uint8Array {
    const chunk = this.chunks!.shift()!
    this.queued -= chunk.byteLength
    this.transport.onDequeue(this.queued)
    return this.transport.onTake(chunk)
  }

  /** The start of a `read` (idle: a `readIdle`, which the drain ends). */
  startRead(resume: Resume<Option.Option<Uint8Array>>, idle: boolean): Effect.Effect<void> | undefined {
    if (this.chunks !== undefined && this.chunks.length > 0) return void resume(Effect.succeed(Option.some(this.shift())))
    if (this.failure !== undefined) return void resume(Effect.fail(this.failure))
    if (this.eof || (idle && this.drain.started)) return void resume(EOF)
    if (this.closed) return void resume(Effect.fail(this.closedError()))
    this.reader = resume
    this.idleRead = idle
    this.transport.onWait()
    return this.cancelRead ??= Effect.sync(() => {
      this.reader = undefined
    })
  }

  /**
   * Queued chunks go to `consume`, then what ended input counts: the outcome a
   * push read ends with, or undefined when it waits for more.
   */
  private pushQueued(consume: (chunk: Uint8Array) => boolean): Effect.Effect<ReadWithOutcome, ConnectionError> | undefined {
    while (this.chunks !== undefined && this.chunks.length > 0) {
      const ended = consumeChunk(consume, this.shift())
      if (ended !== undefined) return ended
    }
    if (this.failure !== undefined) return Effect.fail(this.failure)
    if (this.eof) return ENDED
    if (this.closed) return Effect.fail(this.closedError())
    return undefined
  }

  /** The start of a `readWith`: queued chunks go to the consumer first. */
  startPush(consume: (chunk: Uint8Array) => boolean, resume: Resume<ReadWithOutcome>): Effect.Effect<void> | undefined {
    const outcome = this.pushQueued(consume)
    if (outcome !== undefined) return void resume(outcome)
    this.consumer = consume
    this.pushWaiter = resume
    this.transport.onWait()
    return this.cancelPush ??= Effect.sync(() => {
      this.consumer = undefined
      this.pushWaiter = undefined
    })
  }

  /** A chunk arrived: to the push consumer (now, or in its turn), to the waiting reader, or queued; returns the bytes queued now. */
  push(chunk: Uint8Array): number {
    const consume = this.consumer
    if (consume !== undefined) {
      if (this.budget === undefined || (!this.deferred && this.budget.take())) {
        const ended = consumeChunk(consume, this.transport.onTake(chunk))
        if (ended !== undefined) this.endPush(ended)
        return this.queued
      }
      if (!this.deferred) {
        this.deferred = true
        this.budget.defer(this)
      }
    }
    const reader = this.reader
    if (reader !== undefined) {
      this.reader = undefined
      reader(Effect.succeed(Option.some(this.transport.onTake(chunk))))
      return this.queued
    }
    ;(this.chunks ??= []).push(chunk)
    return this.queued += chunk.byteLength
  }

  /** This connection's turn: its consumer takes what was queued (then the end of input), if it still waits. */
  runDeferred(): void {
    this.deferred = false
    const consume = this.consumer
    if (consume === undefined) return // the fiber reads them itself
    const outcome = this.pushQueued(consume)
    if (outcome !== undefined) this.endPush(outcome)
  }

  /** Ends a waiting `readWith` (no-op when none waits, e.g. it already ended inside its consumer). */
  private endPush(outcome: Effect.Effect<ReadWithOutcome, ConnectionError>): void {
    const waiter = this.pushWaiter
    if (waiter === undefined) return
    this.pushWaiter = undefined
    this.consumer = undefined
    waiter(outcome)
  }

  /** Input ended: a waiting reader reads EOF once nothing is queued. */
  end(): void {
    this.eof = true
    if (this.chunks !== undefined && this.chunks.length > 0) return
    this.endPush(ENDED)
    const reader = this.reader
    if (reader !== undefined) {
      this.reader = undefined
      reader(EOF)
    }
  }

  /** The server started to drain: a `readIdle` waiting now ends as at EOF; a `readWith` says "drain". */
  drainStarted(): void {
    this.endPush(DRAINING)
    const reader = this.reader
    if (reader === undefined || !this.idleRead) return
    this.reader = undefined
    reader(EOF)
  }

  /** Input broke (`error`), or this side closed (no error): what waits fails, or reads EOF after the peer's FIN. */
  fail(error: ConnectionError | undefined): void {
    if (error !== undefined) this.failure ??= error
    else this.closed = true
    const reason = this.failure ?? this.closedError()
    const reader = this.reader
    this.reader = undefined
    this.endPush(this.eof ? ENDED : Effect.fail(reason))
    if (reader !== undefined) reader(this.eof ? EOF : Effect.fail(reason))
  }

  /** Takes every queued chunk, oldest first (the bytes are handed elsewhere: `detach`). */
  takeQueued(): Array<Uint8Array> {
    const chunks = this.chunks ?? []
    this.discard()
    return chunks
  }

  /** Forgets what is queued (the reader will never read it: the connection is lingering or broke). */
  discard(): void {
    this.chunks = undefined
    this.queued = 0
  }
}

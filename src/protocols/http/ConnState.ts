/**
 * The HTTP engine's per-connection state: the input buffer (bytes are parsed
 * where they arrived; copied only when a head spans reads), the coalesced
 * output of pipelined answers, the phase whose timeout is armed, and the two
 * ways bytes move: synchronously from the connection's `readWith` consumer
 * (`writeNow`), or from the fiber (`fill`, `flush`), which waits.
 */
import { Effect, Option } from "effect"
import type { Fiber } from "effect"
import type { Connection, ConnectionError, ReadWithOutcome } from "../../io/Connection.ts"
import type * as Timeouts from "../../core/Timeouts.ts"
import { type HeadResult, newScan, type RequestHead, type ScanState } from "./Parser.ts"
import { type ErrorRenderer, textErrors } from "./Answer.ts"
import * as Req from "./Request.ts"

/** What the connection is waiting for: its timeout ("busy": the app runs, no timeout). */
export type Phase = "idle" | "head" | "body" | "busy"

/**
 * What the fiber must do when the consumer hands the connection back: a
 * request head to serve (or a framing error), a request the consumer began
 * whose app's result the fiber must finish (asynchronous, failed, or a
 * streamed answer), close after the queued answers, or wait until the peer
 * reads what was written.
 */
export type Next = HeadResult | { readonly _tag: "Begun"; readonly result: unknown } | "close" | "writable"

const EMPTY = Buffer.alloc(0)
const NO_BYTES: ReadonlyArray<Uint8Array> = []
const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1")
/** Coalesced output up to this size is copied into one (pooled) buffer; beyond, it goes out as a writev. */
const COALESCE_COPY = 4 * 1024

const httpDate = (millis: number) => new Date(millis).toUTCString()

/** ServerState by all connections of one server. */
export class ServerState {
  date = httpDate(0)
  now = 0
  requests = 0
  draining = false
  /** How the engine words its own error answers. */
  renderError: ErrorRenderer = textErrors
  /** Header lines every answer over TLS carries (Strict-Transport-Security), `Name: value\r\n` each; "" for none. */
  tlsHeaders = ""
  readonly timeouts: Timeouts.TimeoutManager
  /** The engine's synchronous chunk handler (see `ConnState.consume`). */
  consume: (state: ConnState, chunk: Uint8Array) => boolean = () => false
  constructor(timeouts: Timeouts.TimeoutManager) {
    this.timeouts = timeouts
  }
  /** Sets the clock (ms since the epoch) and the Date header it gives. */
  setNow(now: number): void {
    this.now = now
    this.date = httpDate(now)
  }
}

/** One connection's state. */
export class ConnState implements Timeouts.Timed, Req.BodySource {
  buffer: Uint8Array = EMPTY
  start = 0
  end = 0
  /** The buffer is ours (appending into its free tail is allowed), not a chunk from the connection. */
  owned = false
  /** How far the pending head was scanned (the parser resumes there). */
  readonly scan: ScanState = newScan()
  /** Requests begun on this connection. */
  get requests(): number {
    return this.requestCount
  }
  private requestCount = 0
  lastActive = 0
  timeoutTicks = 0
  phase: Phase = "idle"
  timedOut: Phase | undefined = undefined
  registered = false
  /** The current request's response has started (its head is queued or written); reset when it is done. */
  sent = false
  /** The request asked for 100 Continue before its body (HTTP/1.1). */
  get expectContinue(): boolean {
    return this.wantsContinue
  }
  private wantsContinue = false
  /** 100 Continue was sent. */
  get continued(): boolean {
    return this.sentContinue
  }
  private sentContinue = false
  out: Array<Uint8Array> = []
  outBytes = 0
  /** Body bytes of the current streamed response written so far. */
  streamed = 0
  /** `performance.now()` when the current batch of input arrived (durations are measured from it), or -1. */
  arrived = -1
  /** `performance.now()` when the first answer of the current chunk was logged, or -1. */
  answeredAt = -1
  /** Set by the consumer when it hands the connection back to the fiber. */
  next: Next | undefined = undefined
  /** The request in progress (logged if it is cut short), when it arrived, when its time started, its body's reader. */
  get pending(): RequestHead | undefined {
    return this.request
  }
  get pendingTime(): number {
    return this.requestTime
  }
  get pendingStarted(): number {
    return this.requestStarted
  }
  get reader(): Req.BodyReader {
    return this.requestReader
  }
  private request: RequestHead | undefined = undefined
  private requestTime = 0
  private requestStarted = 0
  private requestReader: Req.BodyReader = Req.noBody
  readonly conn: Connection
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly shared: ServerState
  readonly ticks: Readonly<Record<Phase, number>>

  constructor(conn: Connection, fiber: Fiber.Fiber<unknown, unknown>, shared: ServerState, ticks: Readonly<Record<Phase, number>>) {
    this.conn = conn
    this.fiber = fiber
    this.shared = shared
    this.ticks = ticks
  }

  /** Header lines this connection's answers carry beyond the app's (the engine's TLS headers over TLS). */
  get extraHeaders(): string {
    return this.conn.tls === undefined ? "" : this.shared.tlsHeaders
  }

  /** The `readWith` consumer: runs the engine over each chunk as it arrives, in plain JS. */
  readonly consume = (chunk: Uint8Array): boolean => this.shared.consume(this, chunk)

  /** Waits for input with `consume` as the consumer (built once per connection). */
  get readWith(): Effect.Effect<ReadWithOutcome, ConnectionError> {
    return this.readWithEffect ??= this.conn.readWith(this.consume)
  }
  private readWithEffect: Effect.Effect<ReadWithOutcome, ConnectionError> | undefined = undefined

  /** Enters a phase and arms its timeout (the entry stays registered; "busy" has none). */
  setPhase(phase: Phase): void {
    this.phase = phase
    this.timeoutTicks = this.ticks[phase]
    this.lastActive = this.shared.timeouts.epoch
    if (!this.registered) {
      this.shared.timeouts.add(this)
      this.registered = true
    }
  }

  /** The server drains (this engine's drain, or the listener's drain signal). */
  draining(): boolean {
    return this.shared.draining || this.conn.isDraining()
  }

  /**
   * The server drains and this connection has no request in progress: it
   * times out after `ticks` of idleness (from its last activity) instead of
   * its full timeout, and its next answer says Connection: close.
   */
  drainGrace(ticks: number): void {
    this.shared.draining = true
    this.timeoutTicks = Math.min(this.timeoutTicks, ticks)
    if (!this.registered) {
      this.shared.timeouts.add(this)
      this.registered = true
    }
  }

  onTimeout(): void {
    this.registered = false
    this.timedOut = this.phase
    this.fiber.interruptUnsafe()
  }

  /**
   * Reads more bytes into the buffer (a request body's reader uses it).
   * Whatever is queued for output is written first: a connection never waits
   * for input while answers sit in its buffer.
   */
  get fill(): Effect.Effect<boolean, ConnectionError> {
    return this.fillEffect ??= Effect.map(
      Effect.suspend(() => (this.out.length === 0 ? this.conn.read : Effect.andThen(this.flush(), this.conn.read))),
      (chunk) => {
        if (Option.isNone(chunk)) return false
        this.append(chunk.value)
        return true
      }
    )
  }
  // built when a body is first read (most connections never read one): memory per idle connection counts
  private fillEffect: Effect.Effect<boolean, ConnectionError> | undefined = undefined

  /** Everything read was consumed: the last chunk is let go (an idle keep-alive connection holds no input buffer). */
  releaseInput(): void {
    this.buffer = EMPTY
    this.start = 0
    this.end = 0
    this.owned = false
  }

  /**
   * Adds a chunk after the unconsumed bytes. With nothing pending the chunk
   * itself becomes the buffer (no copy); otherwise bytes are appended to a
   * buffer of our own that grows geometrically, so a head that arrives a byte
   * at a time costs linear time, not quadratic.
   */
  append(data: Uint8Array): void {
    const pending = this.end - this.start
    if (pending <= 0) {
      this.buffer = data
      this.start = 0
      this.end = data.byteLength
      this.owned = false
      return
    }
    if (this.owned && this.end + data.byteLength <= this.buffer.byteLength) {
      this.buffer.set(data, this.end)
      this.end += data.byteLength
      return
    }
    const need = pending + data.byteLength
    const grown = Buffer.allocUnsafe(Math.max(need * 2, 4096))
    grown.set(this.buffer.subarray(this.start, this.end), 0)
    grown.set(data, pending)
    this.buffer = grown
    this.start = 0
    this.end = need
    this.owned = true
  }

  /** The head at `start` was consumed: the next one is scanned from scratch. */
  nextHead(end: number): void {
    this.start = end
    this.scan.scanned = 0
    this.scan.lineEnd = -1
  }

  /**
   * A request begins: its head (which ends at `end`) is taken from the buffer and counted, and the
   * request is in progress until `finishRequest` (an answer cut short is logged from here).
   */
  beginRequest(head: RequestHead, end: number, time: number, started: number, reader: Req.BodyReader): void {
    this.nextHead(end)
    this.requestCount++
    this.request = head
    this.requestTime = time
    this.requestStarted = started
    this.requestReader = reader
    this.sent = false
    this.sentContinue = false
    this.wantsContinue = head.expectContinue && head.minor === 1
  }

  /** The request's answer is complete (queued or written). */
  finishRequest(): void {
    this.request = undefined
    this.sent = false
  }

  get continue(): Effect.Effect<void, ConnectionError> {
    return this.continueEffect ??= Effect.suspend(() => {
      if (!this.wantsContinue || this.sentContinue || this.sent) return Effect.void
      this.sentContinue = true
      return this.conn.write(CONTINUE)
    })
  }
  private continueEffect: Effect.Effect<void, ConnectionError> | undefined = undefined

  /**
   * Hands the queued output to the connection now, coalesced: one buffer
   * (small pipelined answers are copied together; one contiguous buffer is
   * cheaper for the kernel than many iovecs) or one writev. False when the
   * writer must wait before writing more (the peer reads slowly).
   */
  writeNow(): boolean {
    const out = this.out
    if (out.length === 0) return true
    const bytes = this.outBytes
    this.out = []
    this.outBytes = 0
    if (out.length === 1) return this.conn.writeUnsafe(out[0]!)
    return this.conn.writeUnsafe(bytes <= COALESCE_COPY ? Buffer.concat(out, bytes) : out)
  }

  /** `writeNow`, then waits while the outgoing buffer is full (fails if the connection is gone). */
  flush(): Effect.Effect<void, ConnectionError> {
    return this.writeNow() ? Effect.void : this.conn.write(NO_BYTES)
  }

  /** Waits until the peer has read enough of what was written (or fails if the connection is gone). */
  get writable(): Effect.Effect<void, ConnectionError> {
    return this.conn.write(NO_BYTES)
  }
}

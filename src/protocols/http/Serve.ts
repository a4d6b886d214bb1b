/**
 * The HTTP/1.1 connection loop: one fiber per connection reads a request
 * head, runs the app, writes the response, and loops while the connection is
 * kept alive.
 *
 * Hot path: bytes are parsed where they arrived (no copy unless a head spans
 * reads); responses found in one read are coalesced into one write (pipelining);
 * writes wait only for 'drain'; the Date header comes from a once-a-second
 * cache. Timeouts (header, request body, keep-alive idle) come from one shared
 * timeout manager that interrupts the fiber; its finalizer answers 408 where
 * the protocol says so. Every response becomes an access-log entry.
 */
import { Cause, Clock, Duration, Effect, Exit, Fiber, Option } from "effect"
import type * as Fs from "node:fs"
import type { Scope } from "effect"
import type { AccessEntry } from "../../actors/AccessLog.ts"
import type { LogWriter } from "../../actors/LogWriter.ts"
import { type Connection, type ConnectionError, isConnectionError } from "../../io/Connection.ts"
import * as Timeouts from "../../core/Timeouts.ts"
import { ChunkedDecoder, ContentLengthDecoder } from "./Body.ts"
import * as BodyWriter from "./BodyWriter.ts"
import * as HttpMetrics from "./HttpMetrics.ts"
import { defaultHeadLimits, type HeadLimits, type HeadResult, newScan, parseHead, type RequestHead, type ScanState } from "./Parser.ts"
import * as Req from "./Request.ts"
import * as Res from "./Response.ts"

/** An HTTP application: a request in, a response out. */
export type App<E = never, R = never> = (request: Req.Request) => Effect.Effect<Res.Response, E, R>

/** HTTP server options; every field has a default. */
export interface ServeOptions {
  /** Request line / head size / header count limits (414 / 431). */
  readonly limits?: Partial<HeadLimits>
  /** Largest request body (413). Default 10 MiB. */
  readonly maxBody?: number
  /** A request head must be complete this long after its first byte (else 408). Default 20 s. */
  readonly headerTimeout?: Duration.Input
  /** A request body must be complete this long after its head (else 408). Default 60 s. */
  readonly requestTimeout?: Duration.Input
  /** An idle keep-alive connection is closed after this long. Default 5 s. */
  readonly keepAliveTimeout?: Duration.Input
  /**
   * When the server drains (shutdown, or a reload handing the service over), a connection with no
   * request in progress is closed once it has been idle this long: a request already on its way
   * (a keep-alive client that just got its previous answer) is still answered, with
   * `Connection: close`, instead of meeting a closed socket. Default 500 ms.
   */
  readonly drainGrace?: Duration.Input
  /** Requests served on one connection before it is closed. Default 10,000. */
  readonly maxRequestsPerConnection?: number
  /** Coalesced pipelined output is written once it reaches this size. Default 64 KiB. */
  readonly maxPipelineOutput?: number
  /** Unread request body the server reads and discards to keep a connection (more: close). Default 64 KiB. */
  readonly maxDrain?: number
  /** Where access-log entries go. */
  readonly accessLog?: LogWriter<AccessEntry>
  /** Publish the HTTP metrics (`HttpMetrics`) with this `service` attribute. Default: not published. */
  readonly metricsName?: string
}

/** A running HTTP engine: the connection handler and a way to drain it. */
export interface HttpServer<R> {
  readonly handler: (conn: Connection) => Effect.Effect<void, never, R>
  /** Closes idle keep-alive connections now and makes busy ones close after their response. */
  readonly drain: Effect.Effect<void>
  /** Requests answered so far. */
  readonly requests: () => number
}

type Phase = "idle" | "head" | "body" | "busy"

const EMPTY = Buffer.alloc(0)
const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1")
const SMALL_BODY = 1024
/** Coalesced output up to this size is copied into one (pooled) buffer; beyond, it goes out as a writev. */
const COALESCE_COPY = 4 * 1024
const INCOMPLETE: HeadResult = { _tag: "Incomplete" }

/** What serializing a response needs to know about its request. */
type Framing = Pick<RequestHead, "method" | "minor">
/** Error responses are framed for an HTTP/1.1 GET (a body, Content-Length). */
const ERROR_FRAMING: Framing = { method: "GET", minor: 1 }

const httpDate = (millis: number) => new Date(millis).toUTCString()

/** Shared by all connections of one server. */
class Shared {
  date = httpDate(0)
  now = 0
  requests = 0
  draining = false
  /** Every open connection (drain closes the idle ones). */
  readonly connections = new Set<ConnState>()
  readonly timeouts: Timeouts.TimeoutManager
  constructor(timeouts: Timeouts.TimeoutManager) {
    this.timeouts = timeouts
  }
}

/** Per-connection state: the input buffer, timers, and what has been sent. */
class ConnState implements Timeouts.Timed, Req.BodySource {
  buffer: Uint8Array = EMPTY
  start = 0
  end = 0
  /** The buffer is ours (appending into its free tail is allowed), not a chunk from the connection. */
  owned = false
  /** How far the pending head was scanned (the parser resumes there). */
  readonly scan: ScanState = newScan()
  requests = 0
  lastActive = 0
  timeoutTicks = 0
  phase: Phase = "idle"
  timedOut: Phase | undefined = undefined
  registered = false
  /** The current request's response has started (its head is queued or written); reset when it is done. */
  sent = false
  expectContinue = false
  continued = false
  out: Array<Uint8Array> = []
  outBytes = 0
  /** Body bytes of the current streamed response written so far. */
  streamed = 0
  /** The entry to log if the request is cut short. */
  pending: { requestLine: string; time: number; started: number; head: RequestHead } | undefined = undefined
  readonly conn: Connection
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly shared: Shared
  readonly ticks: Readonly<Record<Phase, number>>

  constructor(conn: Connection, fiber: Fiber.Fiber<unknown, unknown>, shared: Shared, ticks: Readonly<Record<Phase, number>>) {
    this.conn = conn
    this.fiber = fiber
    this.shared = shared
    this.ticks = ticks
  }

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
   * Reads more bytes into the buffer. Whatever is queued for output is written
   * first: a connection never waits for input while answers sit in its buffer
   * (the client may be waiting for them before it sends more).
   */
  readonly fill: Effect.Effect<boolean, ConnectionError> = this.readMore(false)

  /**
   * `fill` between requests, when no byte of a next head has arrived: the
   * connection is idle, so a drain (shutdown) ends it as at EOF.
   */
  readonly fillIdle: Effect.Effect<boolean, ConnectionError> = this.readMore(true)

  private readMore(idle: boolean): Effect.Effect<boolean, ConnectionError> {
    // built before the constructor body sets `conn`: look it up when run
    return Effect.map(
      Effect.suspend(() => {
        const read = idle ? this.conn.readIdle : this.conn.read
        return this.out.length === 0 ? read : Effect.andThen(this.flush(), read)
      }),
      (chunk) => {
        if (Option.isNone(chunk)) return false
        this.append(chunk.value)
        return true
      }
    )
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

  readonly continue: Effect.Effect<void, ConnectionError> = Effect.suspend(() => {
    if (!this.expectContinue || this.continued || this.sent) return Effect.void
    this.continued = true
    return this.conn.write(CONTINUE)
  })

  flush(): Effect.Effect<void, ConnectionError> {
    const out = this.out
    if (out.length === 0) return Effect.void
    const bytes = this.outBytes
    this.out = []
    this.outBytes = 0
    // pipelined small responses: one contiguous buffer is cheaper for the kernel than many iovecs
    if (out.length === 1) return this.conn.write(out[0]!)
    return this.conn.write(bytes <= COALESCE_COPY ? Buffer.concat(out, bytes) : out)
  }
}

/** A short plain-text error response. */
const errorResponse = (status: number, reason: string, headers?: ReadonlyArray<readonly [string, string]>): Res.Response =>
  Res.text(`${status} ${Res.reasonPhrase(status)}: ${reason}\n`, headers === undefined ? { status } : { status, headers })

const RETRY_AFTER: ReadonlyArray<readonly [string, string]> = [["Retry-After", "1"]]

/** The length of a body when it is known (-1 for a stream of unknown length). */
const bodyLength = (body: Res.Body): number =>
  body._tag === "Bytes" ? body.bytes.byteLength : body._tag === "File" ? body.end - body.start : body._tag === "Stream" ? body.length ?? -1 : 0

/**
 * Builds the HTTP engine for `app` (scoped: its timeout sweep and Date cache
 * live in the scope).
 *
 * @example
 * const http = yield* Serve.make(Router.make([Router.get("/", () => Effect.succeed(Response.text("hi")))]))
 * yield* Listener.make({ port: 8080, onDrain: http.drain }, http.handler)
 */
export const make = <E, R>(app: App<E, R>, options: ServeOptions = {}): Effect.Effect<HttpServer<R>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const limits: HeadLimits = { ...defaultHeadLimits, ...options.limits }
    const maxBody = options.maxBody ?? 10 * 1024 * 1024
    const maxRequests = options.maxRequestsPerConnection ?? 10_000
    const maxPipelineOutput = options.maxPipelineOutput ?? 64 * 1024
    const maxDrain = options.maxDrain ?? 64 * 1024
    const accessLog = options.accessLog
    const headerTimeout = Duration.fromInputUnsafe(options.headerTimeout ?? "20 seconds")
    const requestTimeout = Duration.fromInputUnsafe(options.requestTimeout ?? "60 seconds")
    const keepAliveTimeout = Duration.fromInputUnsafe(options.keepAliveTimeout ?? "5 seconds")
    const drainGrace = Duration.fromInputUnsafe(options.drainGrace ?? "500 millis")
    const shortest = Duration.min(Duration.min(Duration.min(headerTimeout, requestTimeout), keepAliveTimeout), drainGrace)
    const timeouts = yield* Timeouts.make(Timeouts.resolutionFor(shortest))
    const drainGraceTicks = timeouts.ticksFor(Duration.toMillis(drainGrace))
    const shared = new Shared(timeouts)
    const ticks: Record<Phase, number> = {
      idle: timeouts.ticksFor(Duration.toMillis(keepAliveTimeout)),
      head: timeouts.ticksFor(Duration.toMillis(headerTimeout)),
      body: timeouts.ticksFor(Duration.toMillis(requestTimeout)),
      busy: Number.POSITIVE_INFINITY
    }
    // the Date header, refreshed once a second on Effect's clock
    const tick = Clock.currentTimeMillis.pipe(Effect.map((now) => {
      shared.now = now
      shared.date = httpDate(now)
    }))
    yield* tick
    yield* Effect.forkScoped(Effect.forever(Effect.sleep("1 second").pipe(Effect.andThen(tick))), { startImmediately: true })

    const counters = new HttpMetrics.HttpCounters()
    const recording = options.metricsName !== undefined
    if (options.metricsName !== undefined) yield* HttpMetrics.register(options.metricsName, counters)

    /** Every answer: its access-log entry and its metrics. */
    const log = (
      s: ConnState,
      head: { readonly requestLine: string; readonly headers?: RequestHead["headers"]; readonly method?: string },
      status: number,
      bytes: number,
      time: number,
      started: number
    ) => {
      if (!recording && accessLog === undefined) return
      const durationMs = performance.now() - started
      if (recording) counters.record(head.method ?? "other", status, bytes, durationMs)
      if (accessLog === undefined) return
      const remote = s.conn.remote
      const headers = head.headers
      accessLog.tellUnsafe({
        peer: remote.address,
        time,
        requestLine: head.requestLine,
        status,
        bytes,
        referer: headers?.get("referer"),
        userAgent: headers?.get("user-agent"),
        durationMs
      })
    }

    /**
     * Serializes a response with an empty or in-memory body into the output
     * (coalesced with other pipelined responses); returns the body bytes, or
     * -1 when the body must be streamed (then nothing was queued).
     */
    const queue = (s: ConnState, head: Framing, response: Res.Response, close: boolean): number => {
      const noBody = Res.bodyless(head.method, response.status)
      const body = response.body
      if (!noBody && body._tag !== "Empty" && body._tag !== "Bytes") return -1
      s.sent = true
      const bytes = noBody || body._tag !== "Bytes" ? EMPTY : body.bytes
      // HEAD announces the length GET would send (RFC 9110 §9.3.2), whatever the body's kind
      const length = bodyLength(body)
      const text = Res.serializeHead(response, s.shared.date, length, close, !close && head.minor === 0, noBody)
      if (bytes.byteLength <= SMALL_BODY) {
        const buf = Buffer.allocUnsafe(text.length + bytes.byteLength)
        buf.write(text, 0, "latin1")
        buf.set(bytes, text.length)
        s.out.push(buf)
      } else {
        s.out.push(Buffer.from(text, "latin1"), bytes)
      }
      s.outBytes += text.length + bytes.byteLength
      return bytes.byteLength
    }

    /**
     * Writes a response whose body is streamed (a Stream or a file); returns
     * the status sent (`s.streamed` counts the body bytes). A file is opened
     * before the head goes out: if that fails, the client gets 503 (out of
     * descriptors, with Retry-After), 404 or 500 instead of a 200 and a reset.
     */
    const stream = (s: ConnState, head: Framing, response: Res.Response, close: boolean) =>
      Effect.scoped(Effect.gen(function*() {
        const body = response.body as Extract<Res.Body, { _tag: "Stream" | "File" }>
        s.streamed = 0
        let handle: Fs.promises.FileHandle | undefined
        if (body._tag === "File") {
          const opened = yield* Effect.result(BodyWriter.openFile(body.path))
          if (opened._tag === "Failure") {
            const status = BodyWriter.statusForFileError(opened.failure)
            yield* Effect.logWarning(`http: ${opened.failure.message}; answered ${status}`)
            const answer = errorResponse(status, status === 503 ? "the server is busy, try again" : "the file cannot be read", status === 503 ? RETRY_AFTER : undefined)
            s.streamed = queue(s, head, answer, close)
            yield* s.flush()
            return status
          }
          handle = opened.success
        }
        const length = bodyLength(body)
        const chunked = length < 0 && head.minor === 1
        const mustClose = close || (length < 0 && head.minor === 0)
        const text = Res.serializeHead(response, s.shared.date, length < 0 && !chunked ? -2 : length, mustClose, !mustClose && head.minor === 0, false)
        s.sent = true
        s.out.push(Buffer.from(text, "latin1"))
        yield* s.flush()
        if (handle !== undefined) yield* BodyWriter.file(s.conn, handle, body as Extract<Res.Body, { _tag: "File" }>, s)
        else yield* BodyWriter.stream(s.conn, (body as Extract<Res.Body, { _tag: "Stream" }>).stream, chunked, s)
        return response.status
      }))

    /** Writes any response; returns body bytes sent. */
    const send = (s: ConnState, head: Framing, response: Res.Response, close: boolean) =>
      Effect.suspend(() => {
        const sent = queue(s, head, response, close)
        if (sent >= 0) return Effect.as(s.flush(), sent)
        return stream(s, head, response, close).pipe(Effect.map(() => s.streamed))
      })

    /** Answers a framing error or timeout with `status` and closes. */
    const failConnection = (s: ConnState, status: number, reason: string, requestLine: string, headers?: RequestHead["headers"]) =>
      Effect.gen(function*() {
        const time = s.shared.now
        const started = performance.now()
        const response = errorResponse(status, reason)
        const bytes = yield* send(s, ERROR_FRAMING, response, true).pipe(Effect.orElseSucceed(() => 0))
        log(s, { requestLine, ...(headers !== undefined ? { headers } : {}) }, status, bytes, time, started)
        yield* s.conn.close
      })

    /** Answers one request; returns whether the connection goes on. */
    const serveOne = (
      s: ConnState,
      head: RequestHead,
      known?: Effect.Effect<Res.Response, E, R>
    ): Effect.Effect<boolean, ConnectionError, R> =>
      Effect.gen(function*() {
        const time = s.shared.now
        const started = performance.now()
        s.sent = false
        s.continued = false
        s.expectContinue = head.expectContinue && head.minor === 1
        s.pending = { requestLine: head.requestLine, time, started, head }
        const framing = head.framing
        if (framing._tag === "ContentLength" && framing.length > maxBody) {
          yield* failConnection(s, 413, `request body larger than ${maxBody} bytes`, head.requestLine, head.headers)
          return false
        }
        const reader = framing._tag === "None"
          ? Req.noBody
          : new Req.BodyReader(s, framing._tag === "ContentLength" ? new ContentLengthDecoder(framing.length) : new ChunkedDecoder({ maxBody }))
        s.setPhase(reader.done ? "busy" : "body")
        // an app that answers synchronously (Effect.succeed) returns an Exit: no need to run it
        const result = known ?? app(Req.make({ method: head.method, target: head.target, minor: head.minor, headers: head.headers, remote: s.conn.remote, reader }))
        let exit: Exit.Exit<Res.Response, E>
        if (Exit.isExit(result)) exit = result as Exit.Exit<Res.Response, E>
        else {
          // answers already queued go out before an asynchronous app runs (it may take its time)
          if (s.out.length > 0) yield* s.flush()
          exit = yield* Effect.exit(result)
        }
        s.setPhase("busy")
        let response: Res.Response
        let close = !head.keepAlive || s.requests >= maxRequests || s.shared.draining
        if (Exit.isSuccess(exit)) {
          response = exit.value
        } else {
          if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
          const error = Cause.findErrorOption(exit.cause)
          if (Option.isSome(error) && (error.value instanceof Req.BodyError || isConnectionError(error.value))) {
            // the body's framing is broken, or the client is gone: answer if possible, and close
            const status = error.value instanceof Req.BodyError ? error.value.status : 499
            if (status === 499) log(s, head, 499, 0, time, started)
            else yield* failConnection(s, status, (error.value as Req.BodyError).reason, head.requestLine, head.headers)
            return false
          }
          if (Option.isSome(error) && error.value instanceof Req.HttpError && !s.sent) {
            // the app refused the request (415, 422...): an answer, not a failure; an unread body is
            // drained afterwards as for any answer
            response = errorResponse(error.value.status, error.value.reason)
          } else {
            yield* Effect.logError(`app failed on ${head.method} ${head.target}`, exit.cause).pipe(
              Effect.annotateLogs({ peer: `${s.conn.remote.address}:${s.conn.remote.port}` })
            )
            if (s.sent) return false
            response = errorResponse(500, "the application failed")
            close = close || !reader.done
          }
        }
        if (!reader.done && s.expectContinue && !s.continued) close = true // the client may never send that body
        let status = response.status
        let bytes = queue(s, head, response, close)
        if (bytes < 0) {
          const streamed = yield* Effect.result(stream(s, head, response, close))
          if (streamed._tag === "Failure") {
            const error = streamed.failure
            if (isConnectionError(error)) return yield* error
            // the head is out and the body cannot be finished: the client sees a short body and the close
            yield* Effect.logError(`http: ${head.method} ${head.target}: ${error.message} after ${s.streamed} body bytes`)
            s.pending = undefined
            log(s, head, status, s.streamed, time, started)
            return false
          }
          status = streamed.success
          bytes = s.streamed
        } else if (close || s.start >= s.end || s.outBytes >= maxPipelineOutput) yield* s.flush()
        s.pending = undefined
        s.sent = false
        log(s, head, status, bytes, time, started)
        shared.requests++
        if (close) return false
        if (!reader.done) {
          s.setPhase("body")
          const drained = yield* reader.drain(maxDrain).pipe(Effect.orElseSucceed(() => false))
          if (!drained) return false
        }
        return true
      })

    /**
     * The synchronous fast path: answers every complete, body-less request in
     * the buffer whose app answers synchronously (returns an Exit), queuing
     * the responses (coalesced). Stops at the first request that needs the
     * effectful path, and returns it; or returns what to do next.
     */
    const advance = (s: ConnState): HeadResult | "close" | "flush" => {
      while (s.start < s.end) {
        const parsed = parseHead(s.buffer, s.start, s.end, limits, s.scan)
        if (parsed._tag !== "Head") return parsed
        const head = parsed.head
        if (head.framing._tag !== "None") return parsed
        const request = Req.make({ method: head.method, target: head.target, minor: head.minor, headers: head.headers, remote: s.conn.remote, reader: Req.noBody })
        const result = app(request)
        if (!Exit.isExit(result) || Exit.isFailure(result)) {
          // the app is asynchronous or failed: serve this request on the effectful path
          return { _tag: "Head", head, end: parsed.end, result } as HeadResult
        }
        const started = performance.now()
        const response = (result as Exit.Success<Res.Response>).value
        const close = !head.keepAlive || s.requests + 1 >= maxRequests || s.shared.draining
        const bytes = queue(s, head, response, close)
        // a streamed body: take the effectful path with the answer we already have
        if (bytes < 0) return { _tag: "Head", head, end: parsed.end, result } as HeadResult
        s.nextHead(parsed.end)
        s.requests++
        s.sent = false
        log(s, head, response.status, bytes, s.shared.now, started)
        shared.requests++
        if (close) return "close"
        if (s.outBytes >= maxPipelineOutput) return "flush"
      }
      return INCOMPLETE
    }

    const loop = (s: ConnState) =>
      Effect.gen(function*() {
        while (true) {
          const next = advance(s)
          if (next === "close") return yield* s.flush()
          if (next === "flush") {
            yield* s.flush()
            continue
          }
          if (next._tag === "Incomplete") {
            yield* s.flush()
            // the header timeout runs from the first byte of a head (or from accept) and is not reset by more bytes
            const phase = s.start < s.end || s.requests === 0 ? "head" : "idle"
            if (s.phase !== phase) s.setPhase(phase)
            const idle = s.start >= s.end
            // an idle read ends at EOF, or when the server starts to drain (now, or while it waited)
            if ((idle && s.draining()) || !(yield* (idle ? s.fillIdle : s.fill))) {
              if (!idle || !s.draining()) return // EOF
              // draining, no request in progress: a request already on its way gets a short grace
              // (it is answered, with Connection: close); then the connection closes
              s.drainGrace(drainGraceTicks)
              if (!(yield* s.fill)) return
            }
            if (s.phase === "idle") s.setPhase("head")
            continue
          }
          if (next._tag === "Error") {
            return yield* failConnection(s, next.status, next.reason, "-")
          }
          s.nextHead(next.end)
          s.requests++
          const known = (next as { result?: Effect.Effect<Res.Response, E, R> }).result
          if (!(yield* serveOne(s, next.head, known))) {
            yield* s.flush()
            return
          }
        }
      })

    /** What happens when a timeout (or the server) interrupts the connection's fiber. */
    const interrupted = (s: ConnState): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (s.registered) s.shared.timeouts.remove(s)
        const pending = s.pending
        if (s.timedOut === "head" && (s.start < s.end || (s.requests === 0 && !s.shared.draining)) && !s.sent) {
          yield* failConnection(s, 408, "request head not received in time", "-").pipe(Effect.ignore)
        } else if (s.timedOut === "body" && pending !== undefined && !s.sent) {
          yield* failConnection(s, 408, "request body not received in time", pending.requestLine, pending.head.headers).pipe(Effect.ignore)
        } else if (pending !== undefined) {
          log(s, pending.head, 499, 0, pending.time, pending.started)
        } else if (s.timedOut === "idle" || s.timedOut === "head") {
          yield* s.conn.close // idle keep-alive (or silent new, or drained) connection: a polite close
        }
      })

    const handler = (conn: Connection): Effect.Effect<void, never, R> =>
      Effect.withFiber((fiber) => {
        const s = new ConnState(conn, fiber, shared, ticks)
        shared.connections.add(s)
        return loop(s).pipe(
          Effect.catchIf(isConnectionError, (e) => {
            if (s.pending !== undefined) log(s, s.pending.head, 499, 0, s.pending.time, s.pending.started)
            return Effect.logDebug(`http connection ${conn.id}: ${e.message}`)
          }),
          Effect.onInterrupt(() => interrupted(s)),
          Effect.ensuring(Effect.sync(() => {
            shared.connections.delete(s)
            if (s.registered) shared.timeouts.remove(s)
          }))
        ) as Effect.Effect<void, never, R>
      })

    return {
      handler,
      // responses from now on say Connection: close; connections with no request in progress (kept
      // alive, or new and silent) close after `drainGrace` (woken by their Connection's drain signal)
      drain: Effect.sync(() => {
        shared.draining = true
      }),
      requests: () => shared.requests
    }
  })

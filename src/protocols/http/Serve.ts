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
import { Cause, Clock, Duration, Effect, Exit, Fiber, Option, Stream } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs"
import type { AccessEntry } from "../../actors/AccessLog.ts"
import type { LogWriter } from "../../actors/LogWriter.ts"
import { type Connection, type ConnectionError, isConnectionError } from "../../io/Connection.ts"
import * as Timeouts from "../../io/Timeouts.ts"
import { ChunkedDecoder, ContentLengthDecoder } from "./Body.ts"
import { defaultHeadLimits, type HeadLimits, type HeadResult, parseHead, type RequestHead } from "./Parser.ts"
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
  /** Requests served on one connection before it is closed. Default 10,000. */
  readonly maxRequestsPerConnection?: number
  /** Coalesced pipelined output is written once it reaches this size. Default 64 KiB. */
  readonly maxPipelineOutput?: number
  /** Unread request body the server reads and discards to keep a connection (more: close). Default 64 KiB. */
  readonly maxDrain?: number
  /** Where access-log entries go. */
  readonly accessLog?: LogWriter<AccessEntry>
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
const CRLF = Buffer.from("\r\n", "latin1")
const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1")
const SMALL_BODY = 16 * 1024

const httpDate = (millis: number) => new Date(millis).toUTCString()

/** Shared by all connections of one server. */
class Shared {
  date = httpDate(0)
  now = 0
  requests = 0
  draining = false
  readonly idle = new Set<ConnState>()
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
  requests = 0
  lastActive = 0
  timeoutTicks = 0
  phase: Phase = "idle"
  timedOut: Phase | undefined = undefined
  registered = false
  /** Bytes of the current response already handed to the connection. */
  sent = false
  expectContinue = false
  continued = false
  out: Array<Uint8Array> = []
  outBytes = 0
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

  setPhase(phase: Phase): void {
    this.phase = phase
    const timeouts = this.shared.timeouts
    const ticks = this.ticks[phase]
    if (!Number.isFinite(ticks)) {
      if (this.registered) timeouts.remove(this)
      this.registered = false
    } else {
      this.timeoutTicks = ticks
      if (!this.registered) timeouts.add(this)
      this.lastActive = timeouts.epoch
      this.registered = true
    }
    if (phase === "idle") this.shared.idle.add(this)
    else this.shared.idle.delete(this)
  }

  onTimeout(): void {
    this.registered = false
    this.timedOut = this.phase
    this.fiber.interruptUnsafe()
  }

  readonly fill: Effect.Effect<boolean, ConnectionError> = Effect.map(
    Effect.suspend(() => this.conn.read),
    (chunk) => {
      if (Option.isNone(chunk)) return false
      const data = chunk.value
      if (this.start >= this.end) {
        this.buffer = data
        this.start = 0
        this.end = data.byteLength
      } else {
        const merged = Buffer.allocUnsafe(this.end - this.start + data.byteLength)
        merged.set(this.buffer.subarray(this.start, this.end), 0)
        merged.set(data, this.end - this.start)
        this.buffer = merged
        this.start = 0
        this.end = merged.byteLength
      }
      return true
    }
  )

  readonly continue: Effect.Effect<void, ConnectionError> = Effect.suspend(() => {
    if (!this.expectContinue || this.continued || this.sent) return Effect.void
    this.continued = true
    return this.conn.write(CONTINUE)
  })

  flush(): Effect.Effect<void, ConnectionError> {
    const out = this.out
    if (out.length === 0) return Effect.void
    this.out = []
    this.outBytes = 0
    return this.conn.write(out.length === 1 ? out[0]! : out)
  }
}

/** A short plain-text error response that closes the connection. */
const errorResponse = (status: number, reason: string): Res.Response =>
  Res.text(`${status} ${Res.reasons[status] ?? ""}: ${reason}\n`, { status })

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
    const shortest = Duration.min(Duration.min(headerTimeout, requestTimeout), keepAliveTimeout)
    const timeouts = yield* Timeouts.make(Timeouts.resolutionFor(shortest))
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

    const log = (s: ConnState, head: { requestLine: string; headers?: RequestHead["headers"] }, status: number, bytes: number, time: number, started: number) => {
      if (accessLog === undefined) return
      const remote = s.conn.remote
      accessLog.tellUnsafe({
        peer: remote.address,
        time,
        requestLine: head.requestLine,
        status,
        bytes,
        ...(head.headers !== undefined ? refererAndAgent(head.headers) : {}),
        durationMs: performance.now() - started
      })
    }

    /** Writes a response; returns body bytes sent. */
    const send = (s: ConnState, head: RequestHead, response: Res.Response, close: boolean) =>
      Effect.gen(function*() {
        const noBody = Res.bodyless(head.method, response.status)
        const body = response.body
        const length = body._tag === "Empty"
          ? 0
          : body._tag === "Bytes"
          ? body.bytes.byteLength
          : body._tag === "File"
          ? body.end - body.start
          : body.length ?? -1
        const chunked = length < 0 && !noBody
        const mustClose = close || (chunked && head.minor === 0)
        const text = Res.serializeHead(response, s.shared.date, head.minor === 0 && chunked ? -2 : length, mustClose, !mustClose && head.minor === 0, noBody)
        s.sent = true
        if (noBody || body._tag === "Empty" || body._tag === "Bytes") {
          const bytes = noBody || body._tag !== "Bytes" ? EMPTY : body.bytes
          if (bytes.byteLength <= SMALL_BODY) {
            const buf = Buffer.allocUnsafe(text.length + bytes.byteLength)
            buf.write(text, 0, "latin1")
            buf.set(bytes, text.length)
            s.out.push(buf)
          } else {
            s.out.push(Buffer.from(text, "latin1"), bytes)
          }
          s.outBytes += text.length + bytes.byteLength
          if (mustClose || s.start >= s.end || s.outBytes >= maxPipelineOutput) yield* s.flush()
          return bytes.byteLength
        }
        s.out.push(Buffer.from(text, "latin1"))
        yield* s.flush()
        if (body._tag === "File") return yield* sendFile(s, body)
        return yield* sendStream(s, body.stream, chunked && head.minor === 1)
      })

    const sendFile = (s: ConnState, body: Extract<Res.Body, { _tag: "File" }>) =>
      Effect.acquireUseRelease(
        Effect.promise(() => Fs.promises.open(body.path, "r")),
        (file) =>
          Effect.gen(function*() {
            let position = body.start
            while (position < body.end) {
              const want = Math.min(64 * 1024, body.end - position)
              const { bytesRead, buffer } = yield* Effect.promise(() =>
                file.read(Buffer.allocUnsafe(want), 0, want, position)
              )
              if (bytesRead === 0) return yield* Effect.die(new Error(`${body.path} shrank while it was being sent`))
              yield* s.conn.write(bytesRead === want ? buffer : buffer.subarray(0, bytesRead))
              position += bytesRead
            }
            return body.end - body.start
          }),
        (file) => Effect.promise(() => file.close())
      )

    const sendStream = (s: ConnState, stream: Stream.Stream<Uint8Array, unknown>, chunked: boolean) =>
      Effect.gen(function*() {
        let sent = 0
        yield* Stream.runForEach(stream, (chunk) => {
          if (chunk.byteLength === 0) return Effect.void
          sent += chunk.byteLength
          return chunked
            ? s.conn.write([Buffer.from(chunk.byteLength.toString(16) + "\r\n", "latin1"), chunk, CRLF])
            : s.conn.write(chunk)
        })
        if (chunked) yield* s.conn.write(LAST_CHUNK)
        return sent
      })

    /** Answers a framing error or timeout with `status` and closes. */
    const failConnection = (s: ConnState, status: number, reason: string, requestLine: string, headers?: RequestHead["headers"]) =>
      Effect.gen(function*() {
        const time = s.shared.now
        const started = performance.now()
        const response = errorResponse(status, reason)
        const fake: RequestHead = { method: "GET", target: "*", minor: 1, headers: headers ?? (undefined as never), framing: { _tag: "None" }, keepAlive: false, expectContinue: false, requestLine }
        const bytes = yield* send(s, fake, response, true).pipe(Effect.orElseSucceed(() => 0))
        log(s, { requestLine, ...(headers !== undefined ? { headers } : {}) }, status, bytes, time, started)
        yield* s.conn.close
      })

    const serveOne = (s: ConnState, head: RequestHead) =>
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
        const decoder = framing._tag === "None"
          ? undefined
          : framing._tag === "ContentLength"
          ? new ContentLengthDecoder(framing.length)
          : new ChunkedDecoder({ maxBody })
        const reader = new Req.BodyReader(s, decoder)
        const request = Req.make({ method: head.method, target: head.target, minor: head.minor, headers: head.headers, remote: s.conn.remote, reader })
        s.setPhase(decoder === undefined ? "busy" : "body")
        const exit = yield* Effect.exit(app(request))
        s.setPhase("busy")
        let response: Res.Response
        let close = !head.keepAlive || s.requests >= maxRequests || s.shared.draining
        if (Exit.isSuccess(exit)) {
          response = exit.value
        } else {
          if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.failCause(exit.cause)
          const error = Cause.findErrorOption(exit.cause)
          if (Option.isSome(error) && error.value instanceof Req.BodyError) {
            // the body's framing is broken or the client is gone: answer and close
            if (error.value.status === 499) {
              log(s, head, 499, 0, time, started)
              return false
            }
            yield* failConnection(s, error.value.status, error.value.reason, head.requestLine, head.headers)
            return false
          }
          if (Option.isSome(error) && isConnectionError(error.value)) {
            log(s, head, 499, 0, time, started)
            return false
          }
          yield* Effect.logError(`app failed on ${head.method} ${head.target}`, exit.cause).pipe(
            Effect.annotateLogs({ peer: `${s.conn.remote.address}:${s.conn.remote.port}` })
          )
          if (s.sent) return false
          response = errorResponse(500, "the application failed")
          close = close || !reader.done
        }
        if (!reader.done && s.expectContinue && !s.continued) close = true // the client may never send that body
        const bytes = yield* send(s, head, response, close)
        s.pending = undefined
        log(s, head, response.status, bytes, time, started)
        shared.requests++
        if (close) return false
        if (!reader.done) {
          s.setPhase("body")
          const drained = yield* reader.drain(maxDrain).pipe(Effect.orElseSucceed(() => false))
          if (!drained) return false
        }
        return true
      })

    const loop = (s: ConnState) =>
      Effect.gen(function*() {
        while (true) {
          let parsed: HeadResult = s.start < s.end ? parseHead(s.buffer, s.start, s.end, limits) : { _tag: "Incomplete" }
          if (parsed._tag === "Incomplete") {
            yield* s.flush()
            if (s.shared.draining) return
            s.setPhase(s.start < s.end ? "head" : s.requests === 0 ? "head" : "idle")
            while (parsed._tag === "Incomplete") {
              if (!(yield* s.fill)) return // EOF between requests (or in a partial head): done
              if (s.phase === "idle") s.setPhase("head")
              parsed = parseHead(s.buffer, s.start, s.end, limits)
            }
          }
          if (parsed._tag === "Error") {
            return yield* failConnection(s, parsed.status, parsed.reason, "-")
          }
          s.start = parsed.end
          s.requests++
          if (!(yield* serveOne(s, parsed.head))) {
            yield* s.flush()
            return
          }
        }
      })

    /** What happens when a timeout (or the server) interrupts the connection's fiber. */
    const interrupted = (s: ConnState): Effect.Effect<void> =>
      Effect.gen(function*() {
        s.shared.idle.delete(s)
        if (s.registered) s.shared.timeouts.remove(s)
        const pending = s.pending
        if (s.timedOut === "head" && (s.start < s.end || s.requests === 0) && !s.sent) {
          yield* failConnection(s, 408, "request head not received in time", "-").pipe(Effect.ignore)
        } else if (s.timedOut === "body" && pending !== undefined && !s.sent) {
          yield* failConnection(s, 408, "request body not received in time", pending.requestLine, pending.head.headers).pipe(Effect.ignore)
        } else if (pending !== undefined) {
          log(s, pending.head, 499, 0, pending.time, pending.started)
        }
      })

    const handler = (conn: Connection): Effect.Effect<void, never, R> =>
      Effect.withFiber((fiber) => {
        const s = new ConnState(conn, fiber, shared, ticks)
        return loop(s).pipe(
          Effect.catchIf(isConnectionError, (e) => {
            if (s.pending !== undefined) log(s, s.pending.head, 499, 0, s.pending.time, s.pending.started)
            return Effect.logDebug(`http connection ${conn.id}: ${e.message}`)
          }),
          Effect.onInterrupt(() => interrupted(s)),
          Effect.ensuring(Effect.sync(() => {
            shared.idle.delete(s)
            if (s.registered) shared.timeouts.remove(s)
          }))
        ) as Effect.Effect<void, never, R>
      })

    return {
      handler,
      drain: Effect.sync(() => {
        shared.draining = true
        for (const s of shared.idle) s.fiber.interruptUnsafe()
        shared.idle.clear()
      }),
      requests: () => shared.requests
    }
  })

const refererAndAgent = (headers: RequestHead["headers"]): { referer?: string; userAgent?: string } => {
  const referer = headers.get("referer")
  const userAgent = headers.get("user-agent")
  return {
    ...(referer !== undefined ? { referer } : {}),
    ...(userAgent !== undefined ? { userAgent } : {})
  }
}

/**
 * The HTTP/1.1 engine: one fiber per connection owns it (its lifetime,
 * timeouts, interruption and errors) and sleeps in the connection's
 * `readWith` while plain JavaScript answers on arrival: each chunk is parsed
 * where it arrived, every complete request whose app answers synchronously
 * (returns an Exit) is answered, and the answers found in one read go out in
 * one write. The fiber wakes only for what needs it: a body to read, an
 * asynchronous or failing app, a streamed answer, a protocol switch
 * (WebSocket), a slow reader. One step (`decide`) turns an answer into
 * what the connection does, whoever has it: queued (counted and logged),
 * streamed, or a protocol switch; `ConnState.beginRequest`/`finishRequest`
 * bracket every request on either path.
 *
 * Timeouts (header, request body, keep-alive idle) come from one shared
 * timeout manager that interrupts the fiber; its finalizer answers 408 where
 * the protocol says so. The Date header comes from a once-a-second cache.
 * Every response becomes an access-log entry and, when recorded, metrics.
 */
import { Cause, Clock, Duration, Effect, Exit, FiberSet, Option, Schema } from "effect"
import type { Scope } from "effect"
import type { AccessEntry } from "../../actors/AccessLog.ts"
import type { LogWriter } from "../../actors/LogWriter.ts"
import { type Connection, type ConnectionError, isConnectionError } from "../../io/Connection.ts"
import * as Options from "../../core/Options.ts"
import * as Timeouts from "../../core/Timeouts.ts"
import { ChunkedDecoder, ContentLengthDecoder } from "./Body.ts"
import * as HttpMetrics from "./HttpMetrics.ts"
import { ERROR_FRAMING, type ErrorRenderer, jsonErrors, queue, send, stream, textErrors } from "./Answer.ts"
import { ConnState, type Next, type Phase, ServerState } from "./ConnState.ts"
import * as Http2 from "./Http2.ts"
import { type HeadLimits, type HeadResult, parseHead, type RequestHead } from "./Parser.ts"
import * as Req from "./Request.ts"
import * as Res from "./Response.ts"

/** How the engine words its own error answers: plain text (the default), RFC 9457 problem details, or yours. */
export { type ErrorRenderer, jsonErrors, textErrors } from "./Answer.ts"

/** An HTTP application: a request in, a response out. */
export type App<E = never, R = never> = (request: Req.Request) => Effect.Effect<Res.Response, E, R>

const { option } = Options

/** The HTTP engine's options, declared once (a service table's http entry takes the same keys). */
export const options = Options.declare({
  maxRequestLine: option(Options.PositiveInt, "the longest request line, in bytes (longer: 414)", 8192),
  maxHeadBytes: option(Options.PositiveInt, "the longest head (request line and header section), in bytes (longer: 431)", 16_384),
  maxHeaders: option(Options.PositiveInt, "the most header fields (more: 431)", 100),
  maxBody: option(Options.NonNegativeInt, "the largest request body, in bytes (larger: 413)", 10 * 1024 * 1024),
  headerTimeout: option(Options.Duration, "a request head must be complete this long after its first byte (else 408: slowloris)", "20 seconds"),
  requestTimeout: option(Options.Duration, "a request body must be complete this long after its head (else 408)", "60 seconds"),
  keepAliveTimeout: option(Options.Duration, "an idle keep-alive connection is closed after this long", "5 seconds"),
  drainGrace: option(
    Options.Duration,
    "when the server drains, a connection with no request in progress is closed once idle this long (a request already on its way is still answered, with Connection: close)",
    "500 millis"
  ),
  maxRequestsPerConnection: option(Options.PositiveInt, "requests served on one connection before it is closed", 10_000),
  maxPipelineOutput: option(Options.PositiveInt, "coalesced pipelined output is written once it reaches this many bytes", 65_536),
  maxDrain: option(Options.NonNegativeInt, "unread request body the server reads and discards to keep a connection, in bytes (more: close)", 65_536),
  http2: option(
    Schema.Literals(["on", "prior-knowledge", "off"]),
    "HTTP/2: `on` offers `h2` by ALPN over TLS; `prior-knowledge` also takes cleartext connections that open with the HTTP/2 preface (behind a TLS-terminating proxy, gRPC); `off`: HTTP/1.1 only",
    "on"
  ),
  maxConcurrentStreams: option(Options.PositiveInt, "HTTP/2: streams a client may have open at once on one connection (more are refused)", 100),
  streamWindow: option(
    Options.PositiveInt,
    "HTTP/2: flow-control window of each stream, in bytes a client may send before the app reads (the connection's is 4 times this)",
    1024 * 1024
  ),
  resetsPerSecond: option(
    Options.PositiveInt,
    "HTTP/2: streams a client may reset per second on average (bursts of 30 seconds' worth); more ends the connection with GOAWAY (rapid reset)",
    33
  ),
  hsts: option(
    Schema.Struct({
      maxAge: Options.Duration,
      includeSubDomains: Schema.optionalKey(Schema.Boolean),
      preload: Schema.optionalKey(Schema.Boolean)
    }),
    "HTTPS: `Strict-Transport-Security` on every answer over TLS — `maxAge` (a duration), `includeSubDomains`, `preload` (false unless set)"
  ),
  errors: option(
    Schema.Literals(["text", "json"]),
    "how the engine words its own 4xx/5xx answers, an app's HttpError and decodeJson's refusals: `text`, or `json` (RFC 9457 problem details, a schema's issues listed)",
    "text"
  ),
  controlFramesPerSecond: option(
    Options.PositiveInt,
    "HTTP/2: PING and SETTINGS frames a client may send per second (bursts of as many); more ends the connection with GOAWAY ENHANCE_YOUR_CALM",
    50
  )
})

/** What the engine is given that is not configuration. */
export interface ServeHooks {
  /** Where access-log entries go. */
  readonly accessLog?: LogWriter<AccessEntry>
  /** Publish the HTTP metrics (`HttpMetrics`) with this `service` attribute. Default: not published. */
  readonly metricsName?: string
  /** Words the engine's own error answers (overrides `errors`): see `ErrorRenderer`, `jsonErrors`. */
  readonly renderError?: ErrorRenderer
}

/** HTTP engine options: `options` (every key has a default) and the hooks. */
export type ServeOptions = typeof options.schema.Type & ServeHooks

/** A running HTTP engine: the connection handler and a way to drain it. */
export interface Engine<R> {
  readonly handler: (conn: Connection) => Effect.Effect<void, never, R>
  /** Closes idle keep-alive connections now and makes busy ones close after their response. */
  readonly drain: Effect.Effect<void>
  /** Requests answered so far. */
  readonly requests: () => number
  /** HTTP/2 counters (undefined when `http2` is off). */
  readonly http2: Http2.Http2Stats | undefined
  /** Answers by method and status class, and the duration histogram (undefined unless `metricsName` records them). */
  readonly counters: HttpMetrics.HttpCounters | undefined
}

const INCOMPLETE: HeadResult = { _tag: "Incomplete" }

/** What an access-log entry takes from a request. */
type LoggedHead = { readonly requestLine: string; readonly headers?: RequestHead["headers"]; readonly method?: string }

const isWebSocketUpgrade = (head: RequestHead): boolean =>
  (head.headers.get("upgrade") ?? "").split(",").some((t) => t.trim().toLowerCase() === "websocket")

const EMPTY_INPUT = new Uint8Array(0)

/** The Strict-Transport-Security value (RFC 6797 §6.1). */
const hstsValue = (hsts: NonNullable<typeof options.schema.Type["hsts"]>): string =>
  `max-age=${Math.floor(Duration.toSeconds(Options.toDuration(hsts.maxAge)))}${hsts.includeSubDomains === true ? "; includeSubDomains" : ""}${hsts.preload === true ? "; preload" : ""}`

const NOT_WEBSOCKET = Res.text("426 Upgrade Required: this resource does not speak WebSocket\n", { status: 426 })

/** What the connection does once an answer is decided: go on, close, or hand the answer to the fiber (a streamed body, an upgrade). */
type Command =
  | { readonly _tag: "Queued"; readonly close: boolean }
  | { readonly _tag: "Stream"; readonly response: Res.Response; readonly close: boolean }
  | { readonly _tag: "Upgrade"; readonly response: Res.Response; readonly run: (conn: Connection, buffered: Uint8Array) => Effect.Effect<void, unknown> }

const KEEP: Command = { _tag: "Queued", close: false }
const CLOSE: Command = { _tag: "Queued", close: true }

/**
 * Builds the HTTP engine for `app` (scoped: its timeout sweep and Date cache
 * live in the scope).
 *
 * @example
 * const http = yield* Serve.make(Router.make([Router.get("/", () => Effect.succeed(Response.text("hi")))]))
 * yield* Listener.make({ port: 8080, onDrain: http.drain }, http.handler)
 */
export const make = <E, R>(app: App<E, R>, given: ServeOptions = {}): Effect.Effect<Engine<R>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const o = options.resolve(given)
    const limits: HeadLimits = { maxRequestLine: o.maxRequestLine, maxHeadBytes: o.maxHeadBytes, maxHeaders: o.maxHeaders }
    const accessLog = given.accessLog
    const headerTimeout = Options.toDuration(o.headerTimeout)
    const requestTimeout = Options.toDuration(o.requestTimeout)
    const keepAliveTimeout = Options.toDuration(o.keepAliveTimeout)
    const drainGrace = Options.toDuration(o.drainGrace)
    const shortest = Duration.min(Duration.min(Duration.min(headerTimeout, requestTimeout), keepAliveTimeout), drainGrace)
    const timeouts = yield* Timeouts.make(Timeouts.resolutionFor(shortest))
    const drainGraceTicks = timeouts.ticksFor(Duration.toMillis(drainGrace))
    const shared = new ServerState(timeouts)
    const renderError = given.renderError ?? (o.errors === "json" ? jsonErrors : textErrors)
    shared.renderError = renderError
    const tlsFields = o.hsts === undefined ? [] : ["strict-transport-security", hstsValue(o.hsts)]
    shared.tlsHeaders = o.hsts === undefined ? "" : `Strict-Transport-Security: ${tlsFields[1]}\r\n`
    const ticks: Record<Phase, number> = {
      idle: timeouts.ticksFor(Duration.toMillis(keepAliveTimeout)),
      head: timeouts.ticksFor(Duration.toMillis(headerTimeout)),
      body: timeouts.ticksFor(Duration.toMillis(requestTimeout)),
      busy: Number.POSITIVE_INFINITY
    }
    // the Date header, refreshed once a second on Effect's clock
    const tick = Clock.currentTimeMillis.pipe(Effect.map((now) => shared.setNow(now)))
    yield* tick
    yield* Effect.forkScoped(Effect.forever(Effect.sleep("1 second").pipe(Effect.andThen(tick))), { startImmediately: true })

    const counters = new HttpMetrics.HttpCounters()
    const recording = given.metricsName !== undefined
    if (given.metricsName !== undefined) yield* HttpMetrics.register(given.metricsName, counters)

    /** When a request's time starts (only measured when metrics are recorded: no clock read otherwise). */
    const startedAt = (state: ConnState): number => {
      if (!recording) return 0
      return state.arrived >= 0 ? state.arrived : performance.now()
    }

    /** Every answer: its access-log entry and its metrics. */
    const log = (
      state: ConnState,
      head: LoggedHead,
      status: number,
      bytes: number,
      time: number,
      started: number
    ) => {
      // answers of one chunk (the fast path) share one clock read: they are written together
      const now = !recording ? 0 : state.arrived < 0 ? performance.now() : state.answeredAt >= 0 ? state.answeredAt : (state.answeredAt = performance.now())
      record(state.conn.remote.address, head, status, bytes, time, started, now)
    }

    /** An answer's access-log entry and metrics (`now`: when it was answered, read only when metrics are recorded). */
    const record = (peer: string, head: LoggedHead, status: number, bytes: number, time: number, started: number, now: number) => {
      let durationMs: number | undefined
      if (recording) {
        durationMs = now - started
        counters.record(head.method ?? "other", status, bytes, durationMs)
      }
      if (accessLog === undefined) return
      const headers = head.headers
      accessLog.tellUnsafe({
        peer,
        time,
        requestLine: head.requestLine,
        status,
        bytes,
        referer: headers?.get("referer"),
        userAgent: headers?.get("user-agent"),
        durationMs
      })
    }

    /** A request was answered completely (the head and the whole body are queued or written). */
    const answered = (state: ConnState, status: number, bytes: number) => {
      const head = state.pending!
      state.finishRequest()
      log(state, head, status, bytes, state.pendingTime, state.pendingStarted)
      shared.requests++
    }

    /** Answers a framing error or timeout with `status` and closes. */
    const failConnection = (state: ConnState, status: number, reason: string, requestLine: string, headers?: RequestHead["headers"]) =>
      Effect.gen(function*() {
        const time = state.shared.now
        const started = startedAt(state)
        const response = renderError(status, reason)
        const bytes = yield* send(state, ERROR_FRAMING, response, true).pipe(Effect.orElseSucceed(() => 0))
        log(state, { requestLine, ...(headers !== undefined ? { headers } : {}) }, status, bytes, time, started)
        yield* state.conn.close
      })

    /**
     * The one step from an answer to what the connection does, for the push
     * consumer (an app that answered synchronously) and the fiber alike:
     * whether the answer closes the connection, and then queued (counted and
     * logged), or to be streamed, or a protocol switch. `forceClose`: an
     * error answer after which the request's body cannot be trusted.
     */
    const decide = (state: ConnState, answer: Res.Response, forceClose: boolean): Command => {
      const head = state.pending!
      if (answer.body._tag === "Upgrade") return { _tag: "Upgrade", response: answer, run: answer.body.run }
      // a WebSocket handshake on a resource that does not speak it: 426, never a 200 the client would take as a refusal it cannot read
      const response = head.upgrade && answer.status >= 200 && answer.status < 300 && isWebSocketUpgrade(head) ? NOT_WEBSOCKET : answer
      const close = forceClose || !head.keepAlive || state.requests >= o.maxRequestsPerConnection || shared.draining ||
        (!state.reader.done && state.expectContinue && !state.continued) // the client may never send that body
      const bytes = queue(state, head, response, close)
      if (bytes < 0) return { _tag: "Stream", response, close }
      answered(state, response.status, bytes)
      return close ? CLOSE : KEEP
    }

    /** Runs a command on the fiber; returns whether the connection goes on. */
    const execute = (state: ConnState, command: Command): Effect.Effect<boolean, ConnectionError> => {
      switch (command._tag) {
        case "Queued": {
          const goOn = command.close ? GO_OFF : afterAnswer(state)
          return command.close || state.start >= state.end || state.outBytes >= o.maxPipelineOutput ? Effect.andThen(state.flush(), goOn) : goOn
        }
        case "Stream":
          return respondStreamed(state, command.response, command.close)
        case "Upgrade":
          return switchProtocols(state, command.response, command.run)
      }
    }

    /**
     * Serves one request on the fiber (a body to read, an asynchronous or
     * failing app, a streamed answer); returns whether the connection goes
     * on. Written as plain Effect combinators, not a generator: an
     * `Effect.gen` per request inside the connection's long-lived loop makes
     * V8 promote each request's garbage to the old generation (measured:
     * scavenges of 20–40 ms, half the throughput).
     */
    const serveOne = (state: ConnState, head: RequestHead, end: number): Effect.Effect<boolean, ConnectionError, R> =>
      Effect.suspend(() => {
        const framing = head.framing
        const reader = framing._tag === "None"
          ? Req.noBody
          : new Req.BodyReader(state, framing._tag === "ContentLength" ? new ContentLengthDecoder(framing.length) : new ChunkedDecoder({ maxBody: o.maxBody }))
        state.beginRequest(head, end, state.shared.now, startedAt(state), reader)
        if (framing._tag === "ContentLength" && framing.length > o.maxBody) {
          state.finishRequest()
          return Effect.as(failConnection(state, 413, `request body larger than ${o.maxBody} bytes`, head.requestLine, head.headers), false)
        }
        state.setPhase(reader.done ? "busy" : "body")
        return afterApp(state, app(Req.make({ method: head.method, target: head.target, minor: head.minor, headers: head.headers, remote: state.conn.remote, reader })))
      })

    /** The app's result: at once when it is an Exit (it answered synchronously), else after running it (queued answers go out first). */
    const afterApp = (state: ConnState, result: Effect.Effect<Res.Response, E, R>): Effect.Effect<boolean, ConnectionError, R> => {
      if (Exit.isExit(result)) return finish(state, result as Exit.Exit<Res.Response, E>)
      const run = Effect.exit(result)
      return Effect.flatMap(state.out.length > 0 ? Effect.andThen(state.flush(), run) : run, (exit) => finish(state, exit))
    }

    /** The app has answered (or failed): the answer goes out, then what is left of the body is read. */
    const finish = (state: ConnState, exit: Exit.Exit<Res.Response, E>): Effect.Effect<boolean, ConnectionError> => {
      state.setPhase("busy")
      if (Exit.isFailure(exit)) return appFailed(state, exit.cause)
      return execute(state, decide(state, exit.value, false))
    }

    const GO_ON = Effect.succeed(true)
    const GO_OFF = Effect.succeed(false)

    /** 101 Switching Protocols: the head goes out, then the connection (and the bytes after the request) belong to `run`. */
    const switchProtocols = (
      state: ConnState,
      response: Res.Response,
      run: (conn: Connection, buffered: Uint8Array) => Effect.Effect<void, unknown>
    ): Effect.Effect<boolean, ConnectionError> =>
      Effect.suspend(() => {
        state.sent = true
        state.out.push(Res.headBytes(response, state.shared.date, 0, false, false, true, state.extraHeaders))
        answered(state, 101, 0)
        const buffered = state.buffer.subarray(state.start, state.end)
        state.start = state.end
        state.setPhase("busy") // the connection's own idle timeout still applies
        // the protocol's end ends the connection (after a WebSocket's closing handshake the server closes TCP)
        return Effect.andThen(state.flush(), Effect.as(Effect.andThen(Effect.ignore(run(state.conn, buffered)), state.conn.close), false))
      })

    /** The connection goes on once the rest of the request's body (if any) is read and dropped. */
    const afterAnswer = (state: ConnState): Effect.Effect<boolean> => {
      const reader = state.reader
      if (reader.done) return GO_ON
      state.setPhase("body")
      return reader.drain(o.maxDrain).pipe(Effect.orElseSucceed(() => false))
    }

    /** A response whose body is streamed (a Stream or a file). */
    const respondStreamed = (state: ConnState, response: Res.Response, close: boolean): Effect.Effect<boolean, ConnectionError> =>
      Effect.gen(function*() {
        const head = state.pending!
        const streamed = yield* Effect.result(stream(state, head, response, close))
        if (streamed._tag === "Failure") {
          const error = streamed.failure
          if (isConnectionError(error)) return yield* error
          // the head is out and the body cannot be finished: the client sees a short body and the close
          yield* Effect.logError(`http: ${head.method} ${head.target}: ${error.message} after ${state.streamed} body bytes`)
          state.finishRequest()
          log(state, head, response.status, state.streamed, state.pendingTime, state.pendingStarted)
          return false
        }
        answered(state, streamed.success, state.streamed)
        return close ? false : yield* afterAnswer(state)
      })

    /** The app failed: a body or connection error ends the connection; an HttpError is an answer; anything else a 500. */
    const appFailed = (state: ConnState, cause: Cause.Cause<E>): Effect.Effect<boolean, ConnectionError> =>
      Effect.gen(function*() {
        const head = state.pending!
        if (Cause.hasInterruptsOnly(cause)) return yield* Effect.interrupt
        const error = Cause.findErrorOption(cause)
        if (Option.isSome(error) && (error.value instanceof Req.BodyError || isConnectionError(error.value))) {
          // the body's framing is broken, or the client is gone: answer if possible, and close
          const status = error.value instanceof Req.BodyError ? error.value.status : 499
          state.finishRequest()
          if (status === 499) log(state, head, 499, 0, state.pendingTime, state.pendingStarted)
          else yield* failConnection(state, status, (error.value as Req.BodyError).reason, head.requestLine, head.headers)
          return false
        }
        if (Option.isSome(error) && error.value instanceof Req.HttpError && !state.sent) {
          // the app refused the request (415, 422...): an answer, not a failure; an unread body is
          // drained afterwards as for any answer
          return yield* execute(state, decide(state, renderError(error.value.status, error.value.reason, error.value.details), false))
        }
        yield* Effect.logError(`app failed on ${head.method} ${head.target}`, cause).pipe(
          Effect.annotateLogs({ peer: `${state.conn.remote.address}:${state.conn.remote.port}` })
        )
        if (state.sent) return false
        return yield* execute(state, decide(state, renderError(500, "the application failed"), !state.reader.done))
      })

    /**
     * The push consumer's part, plain JavaScript: serves every complete,
     * body-less request in the buffer whose app answers synchronously (an
     * Exit) with the same step the fiber uses (`decide`), queuing the answers
     * (coalesced). Stops at the first request that needs the fiber and hands
     * it over (begun, with the app's result, when the app already ran); or
     * says what to do next.
     */
    const advance = (state: ConnState): Next | "flush" => {
      while (state.start < state.end) {
        const parsed = parseHead(state.buffer, state.start, state.end, limits, state.scan)
        if (parsed._tag !== "Head") return parsed
        const head = parsed.head
        if (head.framing._tag !== "None" || head.upgrade) return parsed
        state.beginRequest(head, parsed.end, shared.now, startedAt(state), Req.noBody)
        const result = app(Req.make({ method: head.method, target: head.target, minor: head.minor, headers: head.headers, remote: state.conn.remote, reader: Req.noBody }))
        // the app is asynchronous or failed: the fiber finishes this request
        if (!Exit.isExit(result) || result._tag !== "Success") return { _tag: "Begun", result }
        const command = decide(state, result.value as Res.Response, false)
        // a streamed body: the fiber streams it (the answer is decided again there, nothing was queued)
        if (command._tag !== "Queued") return { _tag: "Begun", result }
        if (command.close) return "close"
        if (state.outBytes >= o.maxPipelineOutput) return "flush"
      }
      return INCOMPLETE
    }

    /**
     * Before waiting for input: arms the header timeout (it runs from the
     * first byte of a head, or from accept, and more bytes do not reset it)
     * or the keep-alive one; a drain shortens an idle wait to the grace.
     */
    const awaitInput = (state: ConnState, served: number): void => {
      const idle = state.start >= state.end
      if (idle) state.releaseInput()
      const phase = !idle || state.requests === 0 ? "head" : "idle"
      if (state.phase !== phase || state.requests !== served) state.setPhase(phase)
      if (idle && state.draining()) state.drainGrace(drainGraceTicks)
    }

    /**
     * The connection's `readWith` consumer: runs the fast path over each
     * chunk in the socket's event, writes the answers (one write per chunk),
     * and keeps the fiber asleep until a request needs it.
     */
    shared.consume = (state: ConnState, chunk: Uint8Array): boolean => {
      state.append(chunk)
      state.arrived = recording ? performance.now() : -1
      state.answeredAt = -1
      const served = state.requests
      let next = advance(state)
      while (next === "flush") next = state.writeNow() ? advance(state) : "writable"
      state.arrived = -1
      if (next === "close" || next === "writable" || next._tag !== "Incomplete") {
        state.next = next
        return false
      }
      if (!state.writeNow()) {
        state.next = "writable"
        return false
      }
      awaitInput(state, served)
      return true
    }

    const loop = (state: ConnState) =>
      Effect.gen(function*() {
        let next: Next | "flush" = advance(state)
        while (true) {
          if (next === "close") return yield* state.flush()
          if (next === "flush") {
            yield* state.flush()
          } else if (next === "writable") {
            yield* state.writable
          } else if (next._tag === "Error") {
            return yield* failConnection(state, next.status, next.reason, "-")
          } else if (next._tag === "Head" || next._tag === "Begun") {
            const goOn = next._tag === "Head"
              ? yield* serveOne(state, next.head, next.end)
              : yield* afterApp(state, next.result as Effect.Effect<Res.Response, E, R>)
            if (!goOn) return yield* state.flush()
          } else {
            // nothing complete in the buffer: write what is queued, then sleep until the consumer
            // (running on each chunk as it arrives) needs the fiber
            yield* state.flush()
            awaitInput(state, state.requests)
            const outcome = yield* state.readWith
            if (outcome === "eof") return
            if (outcome === "yield") {
              next = state.next!
              state.next = undefined
              continue
            }
            // "drain": the server began to drain while this connection waited (awaitInput shortens an idle wait)
          }
          next = advance(state)
        }
      })

    /** What happens when a timeout (or the server) interrupts the connection's fiber. */
    const interrupted = (state: ConnState): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (state.registered) state.shared.timeouts.remove(state)
        const pending = state.pending
        if (state.timedOut === "head" && (state.start < state.end || (state.requests === 0 && !state.shared.draining)) && !state.sent) {
          yield* failConnection(state, 408, "request head not received in time", "-").pipe(Effect.ignore)
        } else if (state.timedOut === "body" && pending !== undefined && !state.sent) {
          yield* failConnection(state, 408, "request body not received in time", pending.requestLine, pending.headers).pipe(Effect.ignore)
        } else if (pending !== undefined) {
          log(state, pending, 499, 0, state.pendingTime, state.pendingStarted)
        } else if (state.timedOut === "idle" || state.timedOut === "head") {
          yield* state.conn.close // idle keep-alive (or silent new, or drained) connection: a polite close
        }
      })

    /** How a connection's fiber ended: a network failure (logged; its request in progress as 499) or an interruption (a timeout's answer). */
    const ended = (state: ConnState, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      if (Exit.isSuccess(exit)) return removeTimeout(state)
      const failure = Cause.findErrorOption(exit.cause)
      if (Option.isSome(failure) && isConnectionError(failure.value)) {
        removeTimeout(state)
        if (state.pending !== undefined) log(state, state.pending, 499, 0, state.pendingTime, state.pendingStarted)
        return Effect.logDebug(`http connection ${state.conn.id}: ${failure.value.message}`)
      }
      return Cause.hasInterrupts(exit.cause) ? interrupted(state) : removeTimeout(state)
    }
    const removeTimeout = (state: ConnState): Effect.Effect<void> => {
      if (state.registered) shared.timeouts.remove(state)
      return Effect.void
    }
    const ignoreError = () => Effect.void

    // short work started outside any fiber (a log line from a stream's event), owned by the engine's scope
    const background = yield* FiberSet.makeRuntime<never, void, never>()
    const h2 = o.http2 === "off" ? undefined : Http2.make<E, R>({
      maxConcurrentStreams: o.maxConcurrentStreams,
      maxHeadBytes: o.maxHeadBytes,
      maxHeaders: o.maxHeaders,
      streamWindow: o.streamWindow,
      resetsPerSecond: o.resetsPerSecond,
      controlFramesPerSecond: o.controlFramesPerSecond,
      idleTimeoutMs: Duration.toMillis(keepAliveTimeout)
    }, {
      app,
      maxBody: o.maxBody,
      requestTimeoutMs: Duration.toMillis(requestTimeout),
      maxDrain: o.maxDrain,
      tlsFields,
      renderError,
      logError: (message) => void background(Effect.logError(message)),
      date: () => shared.date,
      now: () => shared.now,
      startedAt: () => (recording ? performance.now() : 0),
      answered: (peer, head, status, bytes, time, started) => {
        record(peer, head, status, bytes, time, started, recording ? performance.now() : 0)
        shared.requests++
      }
    })
    if (h2 !== undefined && given.metricsName !== undefined) yield* Http2.publish(given.metricsName, h2.stats)

    /**
     * Prior knowledge (cleartext): the connection's first bytes say which
     * protocol it speaks; read until they are HTTP/2's preface or are not.
     */
    const sniff = (state: ConnState): Effect.Effect<boolean, ConnectionError> =>
      Effect.gen(function*() {
        awaitInput(state, 0) // the header timeout runs
        while (true) {
          const seen = Http2.prefaceOf(state.buffer.subarray(state.start, state.end))
          if (seen !== "more") return seen === "h2"
          const chunk = yield* state.conn.read
          if (Option.isNone(chunk)) return false
          state.append(chunk.value)
        }
      })

    /** HTTP/1.1, or HTTP/2 when ALPN chose it or the connection opened with its preface (prior knowledge). */
    const serveConnection = (state: ConnState): Effect.Effect<void, ConnectionError, R> => {
      if (h2 === undefined) return loop(state)
      if (state.conn.tls?.alpnProtocol === "h2") return h2.serve(state.conn, EMPTY_INPUT)
      if (o.http2 !== "prior-knowledge" || state.conn.tls !== undefined) return loop(state)
      return Effect.flatMap(sniff(state), (isH2) => {
        if (!isH2) return loop(state)
        if (state.registered) shared.timeouts.remove(state)
        const buffered = state.buffer.subarray(state.start, state.end)
        state.start = state.end
        return h2.serve(state.conn, buffered)
      })
    }

    const handler = (conn: Connection): Effect.Effect<void, never, R> =>
      Effect.withFiber((fiber) => {
        const state = new ConnState(conn, fiber, shared, ticks)
        // one exit handler and a shared catch: what a connection's suspended fiber keeps is memory per idle connection
        return serveConnection(state).pipe(Effect.onExit((exit) => ended(state, exit)), Effect.catchIf(isConnectionError, ignoreError)) as Effect.Effect<
          void,
          never,
          R
        >
      })

    return {
      handler,
      // responses from now on say Connection: close; connections with no request in progress (kept
      // alive, or new and silent) close after `drainGrace` (woken by their Connection's drain signal)
      drain: Effect.sync(() => {
        shared.draining = true
      }),
      requests: () => shared.requests,
      http2: h2?.stats,
      counters: recording ? counters : undefined
    }
  })

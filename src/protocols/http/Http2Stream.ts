/**
 * One HTTP/2 stream on the engine's unchanged apps: its request (pseudo
 * headers, cookie crumbs joined, `:authority` as Host), its body read from
 * the stream on demand (bounded by `maxBody`, a timeout while it waits), and
 * the app's answer written with node:http2's core API — bytes at once, a
 * Stream with backpressure, a file through its descriptor (`respondWithFD`,
 * no copy through JavaScript). An app that answers synchronously is answered
 * in the stream's event; otherwise `begin` hands back the Effect that a fiber
 * of the connection runs. A stream that fails is reset and logged, never the
 * connection.
 */
import { Cause, Effect, Exit, Option, Stream } from "effect"
import * as NodeHttp2 from "node:http2"
import type { RemoteAddress } from "../../io/Connection.ts"
import { bodyLength, errorResponse, type ErrorRenderer, isWhole } from "./Answer.ts"
import * as BodyWriter from "./BodyWriter.ts"
import { Headers } from "./Headers.ts"
import { StreamBody } from "./Http2Body.ts"
import * as Req from "./Request.ts"
import * as Res from "./Response.ts"

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = NodeHttp2.constants

/** What a stream needs from the engine it runs on. */
export interface StreamHost<E, R> {
  readonly app: (request: Req.Request) => Effect.Effect<Res.Response, E, R>
  readonly maxBody: number
  /** A body that makes no progress for this long fails with 408 (ms). */
  readonly requestTimeoutMs: number
  /** Unread body bytes read and discarded after an answer before the stream is refused (RST_STREAM NO_ERROR). */
  readonly maxDrain: number
  /** How the engine words its own error answers. */
  readonly renderError: ErrorRenderer
  /** Fields every answer over TLS carries (Strict-Transport-Security), as a flat name/value list. */
  readonly tlsFields: ReadonlyArray<string>
  /** The Date header, cached by the engine. */
  readonly date: () => string
  /** The engine's clock (ms since the epoch), for the access log. */
  readonly now: () => number
  /** When a request's time starts (0 when metrics are not recorded). */
  readonly startedAt: () => number
  /** An answer was given (or the client went away: 499): the access log, the metrics, the request count. */
  readonly answered: (peer: string, head: StreamHead, status: number, bytes: number, time: number, started: number) => void
  /** A stream this side reset (counted). */
  readonly resetByServer: () => void
  /** Logs an error found outside any fiber (in a stream's event). */
  readonly logError: (message: string) => void
}

/** A stream's request as the access log sees it. */
export interface StreamHead {
  readonly requestLine: string
  readonly headers: Headers
  readonly method: string
}

/** Connection-specific fields (RFC 9113 §8.2.2) and the ones the server sets itself. */
const notForwarded = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "date", "content-length"])
const invalidValue = /[\r\n\0]/
const kServerReset = Symbol("fiberd/http2-server-reset")
type OwnedStream = NodeHttp2.ServerHttp2Stream & { [kServerReset]?: true }

/** Resets a stream from this side (counted once). */
const reset = <E, R>(host: StreamHost<E, R>, stream: OwnedStream, code: number): void => {
  if (stream.closed || stream.destroyed) return
  if (code !== NGHTTP2_NO_ERROR) {
    stream[kServerReset] = true
    host.resetByServer()
  }
  stream.close(code)
}

/** True once this side reset the stream (so its close is not the client's reset). */
export const resetHere = (stream: NodeHttp2.ServerHttp2Stream): boolean => (stream as OwnedStream)[kServerReset] === true

const fieldLists = new WeakMap<ReadonlyArray<readonly [string, string]>, ReadonlyArray<string>>()

/** The app's fields as a flat name/value list (lower-cased, connection-specific ones dropped), made once per headers array. */
const fieldList = (headers: ReadonlyArray<readonly [string, string]>): ReadonlyArray<string> => {
  let list = fieldLists.get(headers)
  if (list === undefined) {
    const flat: Array<string> = []
    for (const [name, value] of headers) {
      const key = name.toLowerCase()
      if (notForwarded.has(key) || invalidValue.test(value) || invalidValue.test(key) || key.charCodeAt(0) === 0x3a) continue
      flat.push(key, value)
    }
    fieldLists.set(headers, list = flat)
  }
  return list
}

/** The response's header list (node:http2's raw form): status, Date, the app's fields, the engine's `extra`, Content-Length when known. */
const headersFor = (response: Res.Response, length: number, date: string, extra: ReadonlyArray<string>): Array<string> => {
  const out = [":status", String(response.status), "date", date, ...fieldList(response.headers), ...extra]
  if (length >= 0 && response.status !== 204 && response.status !== 304 && response.status >= 200) out.push("content-length", String(length))
  return out
}

/** The same as an object (what `respondWithFD` takes). */
const headerObject = (list: ReadonlyArray<string>): NodeHttp2.OutgoingHttpHeaders => {
  const out: Record<string, string | Array<string>> = {}
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!
    const present = out[name]
    out[name] = present === undefined ? list[i + 1]! : [...(Array.isArray(present) ? present : [present]), list[i + 1]!]
  }
  return out
}

const NO_FIELDS: ReadonlyArray<string> = []
const RETRY_AFTER: ReadonlyArray<readonly [string, string]> = [["Retry-After", "1"]]

const NOT_HERE = errorResponse(426, "WebSocket needs HTTP/1.1; this connection speaks HTTP/2")

/** The request of a stream from its raw header list (pseudo headers first). */
const requestOf = (raw: ReadonlyArray<string>) => {
  let method = "GET"
  let path: string | undefined
  let authority: string | undefined
  const names: Array<string> = []
  const values: Array<string> = []
  let cookies: Array<string> | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    if (name.charCodeAt(0) === 0x3a) {
      if (name === ":method") method = value
      else if (name === ":path") path = value
      else if (name === ":authority") authority = value
    } else if (name === "cookie") (cookies ??= []).push(value) // crumbs are joined again (RFC 9113 §8.2.3)
    else {
      names.push(name)
      values.push(value)
    }
  }
  if (cookies !== undefined) {
    names.push("cookie")
    values.push(cookies.join("; "))
  }
  if (authority !== undefined && !names.includes("host")) {
    names.push("host")
    values.push(authority)
  }
  return { method, path, headers: new Headers(names, values) }
}

/** An answer written without waiting: whole (as HTTP/1.1 queues it), or a protocol switch refused. */
const isImmediate = (response: Res.Response, method: string): boolean => response.body._tag === "Upgrade" || isWhole(response, method)

/** One stream's request and answer: written once (`log` counts it once, whoever ends it). */
class Exchange<E, R> implements StreamHead {
  private readonly time: number
  private readonly started: number
  private logged = false
  readonly requestLine: string
  readonly host: StreamHost<E, R>
  readonly peer: string
  readonly stream: NodeHttp2.ServerHttp2Stream
  readonly method: string
  readonly headers: Headers
  body: StreamBody | undefined = undefined
  /** The engine's fields for this connection's answers. */
  readonly extra: ReadonlyArray<string>

  constructor(host: StreamHost<E, R>, peer: string, tls: boolean, stream: NodeHttp2.ServerHttp2Stream, method: string, path: string | undefined, headers: Headers) {
    this.host = host
    this.extra = tls ? host.tlsFields : NO_FIELDS
    this.peer = peer
    this.stream = stream
    this.method = method
    this.headers = headers
    this.requestLine = `${method} ${path ?? "*"} HTTP/2.0`
    this.time = host.now()
    this.started = host.startedAt()
  }

  /** The access-log entry and metrics of this stream, once. */
  log(status: number, bytes: number): void {
    if (this.logged) return
    this.logged = true
    this.host.answered(this.peer, this, status, bytes, this.time, this.started)
  }

  /** Writes an immediate answer; a body the app did not read is then read and dropped (see `dropRest`). */
  respondNow(given: Res.Response): void {
    const stream = this.stream
    if (stream.closed || stream.destroyed) return this.log(499, 0)
    const response = given.body._tag === "Upgrade" ? NOT_HERE : given
    const length = bodyLength(response.body)
    const noBody = Res.bodyless(this.method, response.status) || response.body._tag !== "Bytes"
    try {
      stream.respond(headersFor(response, length, this.host.date(), this.extra), { endStream: noBody })
    } catch (error) {
      // node:http2 refused the head (a field it does not allow): the stream is reset, never the connection
      reset(this.host, stream, NGHTTP2_INTERNAL_ERROR)
      this.log(500, 0)
      return this.host.logError(`http2: ${this.requestLine}: the answer's head was refused: ${(error as Error).message}`)
    }
    let sent = 0
    if (!noBody) {
      const bytes = (response.body as Extract<Res.Body, { _tag: "Bytes" }>).bytes
      stream.end(bytes)
      sent = bytes.byteLength
    }
    this.log(response.status, sent)
    if (this.body !== undefined ? this.body.open : !stream.endAfterHeaders) this.dropRest()
  }

  /**
   * The client is still sending a body nobody will read: up to `maxDrain`
   * bytes are read and dropped, so the stream ends as usual; past that, or
   * after the request timeout without progress, the rest is refused with
   * RST_STREAM NO_ERROR (RFC 9113 §8.1) once the answer is out.
   */
  private dropRest(): void {
    const stream = this.stream
    const host = this.host
    let left = host.maxDrain
    this.body?.discard()
    const refuse = () => (stream.writableFinished ? reset(host, stream, NGHTTP2_NO_ERROR) : stream.once("finish", () => reset(host, stream, NGHTTP2_NO_ERROR)))
    stream.on("data", (chunk: Buffer) => {
      left -= chunk.byteLength
      if (left < 0) refuse()
    })
    stream.setTimeout(host.requestTimeoutMs, refuse)
    stream.resume()
  }

  /** The app's result on the fiber: an answer, an HttpError or BodyError answered with its status, any other failure a 500 (or a reset once the head is out). */
  settle(exit: Exit.Exit<Res.Response, E>): Effect.Effect<void> {
    if (Exit.isSuccess(exit)) {
      return isImmediate(exit.value, this.method) ? Effect.sync(() => this.respondNow(exit.value)) : this.respondStreamed(exit.value)
    }
    if (Cause.hasInterruptsOnly(exit.cause)) return Effect.interrupt
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isSome(error) && error.value instanceof Req.BodyError) {
      const failure = error.value
      return Effect.sync(() => (failure.status === 499 ? this.log(499, 0) : this.respondNow(this.host.renderError(failure.status, failure.reason))))
    }
    if (Option.isSome(error) && error.value instanceof Req.HttpError && !this.stream.headersSent) {
      const refusal = error.value
      return Effect.sync(() => this.respondNow(this.host.renderError(refusal.status, refusal.reason, refusal.details)))
    }
    return Effect.logError(`app failed on ${this.requestLine}`, exit.cause).pipe(
      Effect.annotateLogs({ peer: this.peer }),
      Effect.andThen(Effect.sync(() => {
        if (!this.stream.headersSent) return this.respondNow(this.host.renderError(500, "the application failed"))
        reset(this.host, this.stream, NGHTTP2_INTERNAL_ERROR)
        this.log(500, 0)
      }))
    )
  }

  /** The connection ended while the stream's fiber ran: the stream is cancelled. */
  cancel(): void {
    reset(this.host, this.stream, NGHTTP2_CANCEL)
    this.log(499, 0)
  }

  /** A file (through its descriptor) or a Stream, after its head. */
  respondStreamed(response: Res.Response): Effect.Effect<void> {
    const self = this
    const stream = this.stream
    return Effect.scoped(Effect.gen(function*() {
      const body = response.body as Extract<Res.Body, { _tag: "Stream" | "File" }>
      const length = bodyLength(body)
      if (body._tag === "File") {
        const opened = yield* Effect.result(BodyWriter.openFile(body.path))
        if (opened._tag === "Failure") {
          const status = BodyWriter.statusForFileError(opened.failure)
          yield* Effect.logWarning(`http: ${opened.failure.message}; answered ${status}`)
          return self.respondNow(
            status === 503 ? self.host.renderError(503, "the server is busy, try again", undefined, RETRY_AFTER) : self.host.renderError(status, "the file cannot be read")
          )
        }
        if (stream.closed || stream.destroyed) return self.log(499, 0)
        stream.respondWithFD(opened.success.fd, headerObject(headersFor(response, length, self.host.date(), self.extra)), { offset: body.start, length })
        self.log(response.status, length)
        return yield* closed(stream) // the descriptor is read until then; the scope closes it after
      }
      if (stream.closed || stream.destroyed) return self.log(499, 0)
      stream.respond(headersFor(response, length, self.host.date(), self.extra))
      let sent = 0
      const streamed = yield* Effect.result(Stream.runForEach(body.stream, (chunk) => {
        sent += chunk.byteLength
        return stream.write(chunk) || stream.closed ? Effect.void : writable(stream)
      }))
      if (streamed._tag === "Failure") {
        yield* Effect.logError(`http: ${self.requestLine}: the body stream failed after ${sent} bytes`, streamed.failure)
        reset(self.host, stream, NGHTTP2_INTERNAL_ERROR)
      } else stream.end()
      self.log(response.status, sent)
    }))
  }
}

/**
 * Serves a new stream: answers it now when it has no body and the app answers
 * synchronously with bytes (returns undefined), or returns the Effect that
 * finishes it in a fiber of its own.
 */
export const begin = <E, R>(
  host: StreamHost<E, R>,
  remote: RemoteAddress,
  stream: NodeHttp2.ServerHttp2Stream,
  raw: ReadonlyArray<string>,
  endStream: boolean,
  tls: boolean
): Effect.Effect<void, never, R> | undefined => {
  const { headers, method, path } = requestOf(raw)
  const exchange = new Exchange(host, remote.address, tls, stream, method, path, headers)
  if (path === undefined) return void exchange.respondNow(host.renderError(method === "CONNECT" ? 501 : 400, `${method} without a path is not served`))
  if (Number(headers.get("content-length") ?? 0) > host.maxBody) {
    return void exchange.respondNow(host.renderError(413, `request body larger than ${host.maxBody} bytes`))
  }
  const body = endStream ? undefined : (exchange.body = new StreamBody(stream, host.maxBody, host.requestTimeoutMs))
  let result: Effect.Effect<Res.Response, E, R>
  try {
    result = host.app(Req.make({ method, target: path, minor: 1, headers, remote, reader: body ?? Req.noBody }))
  } catch (defect) {
    result = Effect.die(defect)
  }
  if (Exit.isExit(result) && Exit.isSuccess(result) && isImmediate(result.value as Res.Response, method)) {
    return void exchange.respondNow(result.value as Res.Response)
  }
  return Effect.exit(result).pipe(
    Effect.flatMap((exit) => exchange.settle(exit)),
    Effect.onInterrupt(() => Effect.sync(() => exchange.cancel()))
  )
}

/** Waits until the stream can take more (or is gone). */
const writable = (stream: NodeHttp2.ServerHttp2Stream): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const done = () => {
      stream.off("drain", done)
      stream.off("close", done)
      resume(Effect.void)
    }
    stream.on("drain", done)
    stream.on("close", done)
    return Effect.sync(() => {
      stream.off("drain", done)
      stream.off("close", done)
    })
  })

/** Waits until the stream is closed (a file answer's descriptor is closed then). */
const closed = (stream: NodeHttp2.ServerHttp2Stream): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (stream.closed || stream.destroyed) return resume(Effect.void)
    const done = () => resume(Effect.void)
    stream.once("close", done)
    return Effect.sync(() => stream.off("close", done))
  })

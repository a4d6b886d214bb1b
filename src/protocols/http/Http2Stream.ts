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
import { bodyLength, errorResponse } from "./Answer.ts"
import * as BodyWriter from "./BodyWriter.ts"
import { Headers } from "./Headers.ts"
import * as Req from "./Request.ts"
import * as Res from "./Response.ts"

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = NodeHttp2.constants

/** What a stream needs from the engine it runs on. */
export interface StreamHost<E, R> {
  readonly app: (request: Req.Request) => Effect.Effect<Res.Response, E, R>
  readonly maxBody: number
  /** A body that makes no progress for this long fails with 408 (ms). */
  readonly requestTimeoutMs: number
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

/** The response's header object: the app's fields (lower-cased, connection-specific ones dropped), Date and Content-Length. */
const headersFor = (response: Res.Response, length: number, date: string): NodeHttp2.OutgoingHttpHeaders => {
  const out: NodeHttp2.OutgoingHttpHeaders = { ":status": response.status, date }
  for (const [name, value] of response.headers) {
    const key = name.toLowerCase()
    if (notForwarded.has(key) || invalidValue.test(value) || invalidValue.test(key) || key.charCodeAt(0) === 0x3a) continue
    const present = out[key]
    out[key] = present === undefined ? value : Array.isArray(present) ? [...present, value] : [String(present), value]
  }
  if (length >= 0 && response.status !== 204 && response.status !== 304 && response.status >= 200) out["content-length"] = length
  return out
}

/** The request body, read from the stream when the app asks (paused otherwise, so flow control holds the client back). */
class StreamBody implements Req.BodyChunks {
  done = false
  private started = false
  private readonly chunks: Array<Buffer> = []
  private held = 0
  private received = 0
  private ended = false
  private failure: Req.BodyError | undefined = undefined
  private waiter: ((effect: Effect.Effect<Option.Option<Uint8Array>, Req.BodyError>) => void) | undefined = undefined
  private readEffect: Effect.Effect<Option.Option<Uint8Array>, Req.BodyError> | undefined = undefined
  private readonly stream: NodeHttp2.ServerHttp2Stream
  private readonly maxBody: number
  private readonly timeoutMs: number

  constructor(stream: NodeHttp2.ServerHttp2Stream, maxBody: number, timeoutMs: number) {
    this.stream = stream
    this.maxBody = maxBody
    this.timeoutMs = timeoutMs
  }

  get read(): Effect.Effect<Option.Option<Uint8Array>, Req.BodyError> {
    return this.readEffect ??= Effect.callback((resume) => {
      if (!this.started) this.start()
      if (this.give(resume)) return
      this.waiter = resume
      return Effect.sync(() => {
        this.waiter = undefined
      })
    })
  }

  /** Answers a read now if it can: a chunk, the end, or why the body broke. */
  private give(resume: (effect: Effect.Effect<Option.Option<Uint8Array>, Req.BodyError>) => void): boolean {
    const chunk = this.chunks.shift()
    if (chunk !== undefined) {
      this.held -= chunk.byteLength
      if (this.held < HELD && this.stream.isPaused()) this.stream.resume()
      resume(Effect.succeed(Option.some(chunk)))
    } else if (this.failure !== undefined) resume(Effect.fail(this.failure))
    else if (this.ended) {
      this.done = true
      resume(NONE)
    } else return false
    return true
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    this.waiter = undefined
    if (!this.give(waiter)) this.waiter = waiter
  }

  private fail(status: 408 | 413 | 499, reason: string): void {
    if (this.failure !== undefined || this.ended) return
    this.failure = new Req.BodyError({ status, reason })
    this.stream.pause()
    this.wake()
  }

  private start(): void {
    this.started = true
    const stream = this.stream
    stream.on("data", (chunk: Buffer) => {
      this.received += chunk.byteLength
      if (this.received > this.maxBody) return this.fail(413, `request body larger than ${this.maxBody} bytes`)
      this.chunks.push(chunk)
      this.held += chunk.byteLength
      if (this.held >= HELD) stream.pause()
      this.wake()
    })
    stream.on("end", () => {
      this.ended = true
      stream.setTimeout(0)
      this.wake()
    })
    stream.on("close", () => this.fail(499, "the client reset the stream"))
    stream.setTimeout(this.timeoutMs, () => this.fail(408, "request body not received in time"))
  }

  /** Whether the client is still sending (the body was not read to its end). */
  get open(): boolean {
    return !this.ended && !this.stream.readableEnded
  }
}

/** Body bytes held for an app that reads slower than the client sends, before the stream is paused. */
const HELD = 64 * 1024
const NONE: Effect.Effect<Option.Option<Uint8Array>> = Effect.succeed(Option.none())

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
  endStream: boolean
): Effect.Effect<void, never, R> | undefined => {
  const time = host.now()
  const started = host.startedAt()
  const { headers, method, path } = requestOf(raw)
  const head: StreamHead = { requestLine: `${method} ${path ?? "*"} HTTP/2.0`, headers, method }
  const answer = (response: Res.Response, body: StreamBody | undefined) => respondNow(host, remote.address, stream, head, response, body, time, started)
  if (path === undefined) return void answer(errorResponse(method === "CONNECT" ? 501 : 400, `${method} without a path is not served`), undefined)
  const declared = Number(headers.get("content-length") ?? 0)
  if (declared > host.maxBody) return void answer(errorResponse(413, `request body larger than ${host.maxBody} bytes`), undefined)
  const body = endStream ? undefined : new StreamBody(stream, host.maxBody, host.requestTimeoutMs)
  let result: Effect.Effect<Res.Response, E, R>
  try {
    result = host.app(Req.make({ method, target: path, minor: 1, headers, remote, reader: body ?? Req.noBody }))
  } catch (defect) {
    result = Effect.die(defect)
  }
  if (Exit.isExit(result) && Exit.isSuccess(result)) {
    const response = result.value as Res.Response
    if (isImmediate(response, method)) return void answer(response, body)
  }
  return Effect.exit(result).pipe(
    Effect.flatMap((exit) => settle(host, remote.address, stream, head, exit, body, time, started)),
    Effect.onInterrupt(() =>
      Effect.sync(() => {
        reset(host, stream, NGHTTP2_CANCEL)
        host.answered(remote.address, head, 499, 0, time, started)
      })
    )
  )
}

/** An answer written without waiting: no body, bytes, or a protocol switch refused. */
const isImmediate = (response: Res.Response, method: string): boolean => {
  const tag = response.body._tag
  return tag === "Empty" || tag === "Bytes" || tag === "Upgrade" || Res.bodyless(method, response.status)
}

/** Writes an immediate answer; after it, a body the app did not read is refused (RST_STREAM NO_ERROR, RFC 9113 §8.1). */
const respondNow = <E, R>(
  host: StreamHost<E, R>,
  peer: string,
  stream: NodeHttp2.ServerHttp2Stream,
  head: StreamHead,
  given: Res.Response,
  body: StreamBody | undefined,
  time: number,
  started: number
): void => {
  if (stream.closed || stream.destroyed) return host.answered(peer, head, 499, 0, time, started)
  const response = given.body._tag === "Upgrade" ? NOT_HERE : given
  const length = bodyLength(response.body)
  const noBody = Res.bodyless(head.method, response.status) || response.body._tag !== "Bytes"
  stream.respond(headersFor(response, length, host.date()), { endStream: noBody })
  let sent = 0
  if (!noBody) {
    const bytes = (response.body as Extract<Res.Body, { _tag: "Bytes" }>).bytes
    stream.end(bytes)
    sent = bytes.byteLength
  }
  host.answered(peer, head, response.status, sent, time, started)
  if (body !== undefined ? body.open : !stream.endAfterHeaders) reset(host, stream, NGHTTP2_NO_ERROR)
}

/** The app's result on the fiber: an answer, an HttpError or BodyError answered with its status, any other failure a 500 (or a reset once the head is out). */
const settle = <E, R>(
  host: StreamHost<E, R>,
  peer: string,
  stream: NodeHttp2.ServerHttp2Stream,
  head: StreamHead,
  exit: Exit.Exit<Res.Response, E>,
  body: StreamBody | undefined,
  time: number,
  started: number
): Effect.Effect<void> => {
  if (Exit.isSuccess(exit)) {
    if (isImmediate(exit.value, head.method)) return Effect.sync(() => respondNow(host, peer, stream, head, exit.value, body, time, started))
    return respondStreamed(host, peer, stream, head, exit.value, time, started)
  }
  if (Cause.hasInterruptsOnly(exit.cause)) return Effect.interrupt
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isSome(error) && error.value instanceof Req.BodyError) {
    const failure = error.value
    if (failure.status === 499) return Effect.sync(() => host.answered(peer, head, 499, 0, time, started))
    return Effect.sync(() => respondNow(host, peer, stream, head, errorResponse(failure.status, failure.reason), body, time, started))
  }
  if (Option.isSome(error) && error.value instanceof Req.HttpError && !stream.headersSent) {
    const refusal = error.value
    return Effect.sync(() => respondNow(host, peer, stream, head, errorResponse(refusal.status, refusal.reason), body, time, started))
  }
  return Effect.logError(`app failed on ${head.method} ${head.requestLine.split(" ")[1]} (HTTP/2)`, exit.cause).pipe(
    Effect.annotateLogs({ peer }),
    Effect.andThen(Effect.sync(() => {
      if (stream.headersSent) {
        reset(host, stream, NGHTTP2_INTERNAL_ERROR)
        host.answered(peer, head, 500, 0, time, started)
      } else respondNow(host, peer, stream, head, errorResponse(500, "the application failed"), body, time, started)
    }))
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

/** A file (through its descriptor) or a Stream, after its head. */
const respondStreamed = <E, R>(
  host: StreamHost<E, R>,
  peer: string,
  stream: NodeHttp2.ServerHttp2Stream,
  head: StreamHead,
  response: Res.Response,
  time: number,
  started: number
): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    const body = response.body as Extract<Res.Body, { _tag: "Stream" | "File" }>
    const length = bodyLength(body)
    if (body._tag === "File") {
      const opened = yield* Effect.result(BodyWriter.openFile(body.path))
      if (opened._tag === "Failure") {
        const status = BodyWriter.statusForFileError(opened.failure)
        yield* Effect.logWarning(`http: ${opened.failure.message}; answered ${status}`)
        return respondNow(host, peer, stream, head, errorResponse(status, status === 503 ? "the server is busy, try again" : "the file cannot be read"), undefined, time, started)
      }
      if (stream.closed || stream.destroyed) return host.answered(peer, head, 499, 0, time, started)
      stream.respondWithFD(opened.success.fd, headersFor(response, length, host.date()), { offset: body.start, length })
      host.answered(peer, head, response.status, length, time, started)
      return yield* closed(stream) // the descriptor is read until then; the scope closes it after
    }
    if (stream.closed || stream.destroyed) return host.answered(peer, head, 499, 0, time, started)
    stream.respond(headersFor(response, length, host.date()))
    let sent = 0
    const streamed = yield* Effect.result(Stream.runForEach(body.stream, (chunk) => {
      sent += chunk.byteLength
      return stream.write(chunk) || stream.closed ? Effect.void : writable(stream)
    }))
    if (streamed._tag === "Failure") {
      yield* Effect.logError(`http: ${head.requestLine}: the body stream failed after ${sent} bytes`, streamed.failure)
      reset(host, stream, NGHTTP2_INTERNAL_ERROR)
    } else stream.end()
    host.answered(peer, head, response.status, sent, time, started)
  }))

/**
 * Answers into a connection's output: a response with an empty or in-memory
 * body is serialized (cached head bytes, the body copied after it when small)
 * and queued, coalesced with other pipelined answers; a file or stream body
 * is written after its head, with backpressure. Error answers are short
 * plain-text responses.
 */
import { Effect } from "effect"
import type * as Fs from "node:fs"
import * as BodyWriter from "./BodyWriter.ts"
import type { ConnState } from "./ConnState.ts"
import type { RequestHead } from "./Parser.ts"
import * as Res from "./Response.ts"

const EMPTY = Buffer.alloc(0)
const SMALL_BODY = 1024

/** What serializing a response needs to know about its request. */
export type Framing = Pick<RequestHead, "method" | "minor">
/** Error responses are framed for an HTTP/1.1 GET (a body, Content-Length). */
export const ERROR_FRAMING: Framing = { method: "GET", minor: 1 }

/** A short plain-text error response. */
export const errorResponse = (status: number, reason: string, headers?: ReadonlyArray<readonly [string, string]>): Res.Response =>
  Res.text(`${status} ${Res.reasonPhrase(status)}: ${reason}\n`, headers === undefined ? { status } : { status, headers })

/**
 * How the engine words its own error answers (4xx/5xx it decides, an app's
 * `HttpError`, `decodeJson`'s refusals): the status, a reason, details (a
 * schema's issues) and header fields to carry (Retry-After).
 */
export type ErrorRenderer = (
  status: number,
  reason: string,
  details?: unknown,
  headers?: ReadonlyArray<readonly [string, string]>
) => Res.Response

/** Plain text: `422 Unprocessable Content: reason` (the default). */
export const textErrors: ErrorRenderer = (status, reason, _details, headers) => errorResponse(status, reason, headers)

/**
 * JSON, as RFC 9457 problem details (`application/problem+json`): `type`
 * (`about:blank`), `title` (the reason phrase), `status`, `detail` (the
 * reason), and `issues` when the refusal has details (a schema's issues,
 * each `{ path, message }`).
 */
export const jsonErrors: ErrorRenderer = (status, reason, details, headers) =>
  Res.json(
    { type: "about:blank", title: Res.reasonPhrase(status), status, detail: reason, ...(details !== undefined ? { issues: details } : {}) },
    { status, headers: [["Content-Type", "application/problem+json"], ...(headers ?? [])] }
  )

const RETRY_AFTER: ReadonlyArray<readonly [string, string]> = [["Retry-After", "1"]]

/** The length of a body when it is known (-1 for a stream of unknown length). */
export const bodyLength = (body: Res.Body): number =>
  body._tag === "Bytes" ? body.bytes.byteLength : body._tag === "File" ? body.end - body.start : body._tag === "Stream" ? body.length ?? -1 : 0

/** True when an answer is written at once, whole (no body to send for this method and status, or an empty or in-memory one); false for a file or a Stream (and a protocol switch). */
export const isWhole = (response: Res.Response, method: string): boolean => {
  const tag = response.body._tag
  return tag !== "Upgrade" && (tag === "Empty" || tag === "Bytes" || Res.bodyless(method, response.status))
}

/**
 * Serializes a response with an empty or in-memory body into the output
 * (coalesced with other pipelined responses); returns the body bytes, or
 * -1 when the body must be streamed (then nothing was queued).
 */
export const queue = (state: ConnState, head: Framing, response: Res.Response, close: boolean): number => {
  if (!isWhole(response, head.method)) return -1
  const noBody = Res.bodyless(head.method, response.status)
  const body = response.body
  state.sent = true
  const bytes = noBody || body._tag !== "Bytes" ? EMPTY : body.bytes
  // HEAD announces the length GET would send (RFC 9110 §9.3.2), whatever the body's kind
  const length = bodyLength(body)
  const headBytes = Res.headBytes(response, state.shared.date, length, close, !close && head.minor === 0, noBody, state.extraHeaders)
  const size = headBytes.byteLength + bytes.byteLength
  if (bytes.byteLength <= SMALL_BODY) {
    const buf = Buffer.allocUnsafe(size)
    buf.set(headBytes, 0)
    buf.set(bytes, headBytes.byteLength)
    state.out.push(buf)
  } else {
    state.out.push(headBytes, bytes)
  }
  state.outBytes += size
  return bytes.byteLength
}

/**
 * Writes a response whose body is streamed (a Stream or a file); returns
 * the status sent (`state.streamed` counts the body bytes). A file is opened
 * before the head goes out: if that fails, the client gets 503 (out of
 * descriptors, with Retry-After), 404 or 500 instead of a 200 and a reset.
 */
export const stream = (state: ConnState, head: Framing, response: Res.Response, close: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const body = response.body as Extract<Res.Body, { _tag: "Stream" | "File" }>
    state.streamed = 0
    let handle: Fs.promises.FileHandle | undefined
    if (body._tag === "File") {
      const opened = yield* Effect.result(BodyWriter.openFile(body.path))
      if (opened._tag === "Failure") {
        const status = BodyWriter.statusForFileError(opened.failure)
        yield* Effect.logWarning(`http: ${opened.failure.message}; answered ${status}`)
        const answer = state.shared.renderError(status, status === 503 ? "the server is busy, try again" : "the file cannot be read", undefined, status === 503 ? RETRY_AFTER : undefined)
        state.streamed = queue(state, head, answer, close)
        yield* state.flush()
        return status
      }
      handle = opened.success
    }
    const length = bodyLength(body)
    const chunked = length < 0 && head.minor === 1
    const mustClose = close || (length < 0 && head.minor === 0)
    state.sent = true
    state.out.push(Res.headBytes(response, state.shared.date, length < 0 && !chunked ? Res.UNTIL_CLOSE : length, mustClose, !mustClose && head.minor === 0, false, state.extraHeaders))
    yield* state.flush()
    if (handle !== undefined) yield* BodyWriter.file(state.conn, handle, body as Extract<Res.Body, { _tag: "File" }>, state)
    else yield* BodyWriter.stream(state.conn, (body as Extract<Res.Body, { _tag: "Stream" }>).stream, chunked, state)
    return response.status
  }))

/** Writes any response; returns body bytes sent. */
export const send = (state: ConnState, head: Framing, response: Res.Response, close: boolean) =>
  Effect.suspend(() => {
    const sent = queue(state, head, response, close)
    if (sent >= 0) return Effect.as(state.flush(), sent)
    return stream(state, head, response, close).pipe(Effect.map(() => state.streamed))
  })

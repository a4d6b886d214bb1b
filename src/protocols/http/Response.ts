/**
 * HTTP responses: what an app returns, helpers to build them, and the
 * serializer that turns a status and headers into the bytes of a head (status
 * lines prebuilt, Date cached by the server, framing headers computed here).
 */
import type { Effect, Stream } from "effect"
import type { Connection } from "../../io/Connection.ts"
import { STATUS_CODES } from "node:http"

/** A response body. */
export type Body =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "Bytes"; readonly bytes: Uint8Array }
  | { readonly _tag: "Stream"; readonly stream: Stream.Stream<Uint8Array, unknown>; readonly length?: number }
  /** Bytes `[start, end)` of a file, read from disk in chunks with backpressure. */
  | { readonly _tag: "File"; readonly path: string; readonly start: number; readonly end: number }
  /**
   * Switch protocols (101): after the head, the connection belongs to `run`, which gets the bytes
   * that already arrived after the request; the connection closes when it ends.
   */
  | { readonly _tag: "Upgrade"; readonly run: (conn: Connection, buffered: Uint8Array) => Effect.Effect<void, unknown> }

/** A response: status, headers (any case; framing headers are the server's), body. */
export interface Response {
  readonly status: number
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly body: Body
}

/** Extra options for the helpers. */
export interface Init {
  readonly status?: number
  readonly headers?: ReadonlyArray<readonly [string, string]> | Readonly<Record<string, string>>
}

/** One shared `[["Content-Type", type]]` per type (a few dozen at most), so its header block is serialized once. */
const typeOnly = new Map<string, ReadonlyArray<readonly [string, string]>>()
const NO_HEADERS: ReadonlyArray<readonly [string, string]> = []

const headersOf = (init: Init | undefined, contentType?: string): ReadonlyArray<readonly [string, string]> => {
  if (init?.headers === undefined) {
    if (contentType === undefined) return NO_HEADERS
    let shared = typeOnly.get(contentType)
    if (shared === undefined) {
      shared = [["Content-Type", contentType]]
      if (typeOnly.size < 64) typeOnly.set(contentType, shared)
    }
    return shared
  }
  const given = Array.isArray(init.headers) ? init.headers : Object.entries(init.headers)
  if (contentType === undefined || given.some(([n]) => n.toLowerCase() === "content-type")) return given
  return [["Content-Type", contentType], ...given]
}

const EMPTY: Body = { _tag: "Empty" }

/** A plain-text (UTF-8) response. */
export const text = (body: string, init?: Init): Response => ({
  status: init?.status ?? 200,
  headers: headersOf(init, "text/plain; charset=utf-8"),
  body: { _tag: "Bytes", bytes: Buffer.from(body, "utf8") }
})

/** An HTML (UTF-8) response. */
export const html = (body: string, init?: Init): Response => ({
  status: init?.status ?? 200,
  headers: headersOf(init, "text/html; charset=utf-8"),
  body: { _tag: "Bytes", bytes: Buffer.from(body, "utf8") }
})

/** A JSON response (`JSON.stringify`). */
export const json = (value: unknown, init?: Init): Response => ({
  status: init?.status ?? 200,
  headers: headersOf(init, "application/json"),
  body: { _tag: "Bytes", bytes: Buffer.from(JSON.stringify(value) ?? "null", "utf8") }
})

/** Raw bytes with a content type (default application/octet-stream). */
export const bytes = (data: Uint8Array, init?: Init & { readonly contentType?: string }): Response => ({
  status: init?.status ?? 200,
  headers: headersOf(init, init?.contentType ?? "application/octet-stream"),
  body: { _tag: "Bytes", bytes: data }
})

/** A streamed body: chunked unless `length` is known. */
export const stream = (
  body: Stream.Stream<Uint8Array, unknown>,
  init?: Init & { readonly contentType?: string; readonly length?: number }
): Response => ({
  status: init?.status ?? 200,
  headers: headersOf(init, init?.contentType ?? "application/octet-stream"),
  body: init?.length === undefined ? { _tag: "Stream", stream: body } : { _tag: "Stream", stream: body, length: init.length }
})

/** A status with no body (204, 304, or any other). */
export const status = (code: number, init?: Omit<Init, "status">): Response => ({
  status: code,
  headers: headersOf(init),
  body: EMPTY
})

/** Switching protocols (101) with `headers`; then `run` owns the connection (see `Body`). */
export const upgrade = (
  headers: ReadonlyArray<readonly [string, string]>,
  run: (conn: Connection, buffered: Uint8Array) => Effect.Effect<void, unknown>
): Response => ({ status: 101, headers, body: { _tag: "Upgrade", run } })

/** A redirect (302 by default) to `location`. */
export const redirect = (location: string, code: 301 | 302 | 303 | 307 | 308 = 302): Response => ({
  status: code,
  headers: [["Location", location]],
  body: EMPTY
})

/**
 * The reason phrase for a status code, from `node:http`'s table (RFC 9110
 * §15 and the IANA registry), plus 499 (nginx's "Client Closed Request",
 * used in access logs). Unregistered codes get an empty phrase, which RFC
 * 9112 §4 allows.
 */
export const reasonPhrase = (code: number): string => reasons[code] ?? ""

const reasons: Readonly<Record<number, string>> = { ...STATUS_CODES, 499: "Client Closed Request" } as Record<number, string>

const statusLines = new Map<number, string>()
/** `HTTP/1.1 200 OK\r\n`, built once per status. */
export const statusLine = (code: number): string => {
  let line = statusLines.get(code)
  if (line === undefined) {
    line = `HTTP/1.1 ${code} ${reasonPhrase(code)}\r\n`
    if (code >= 100 && code <= 999) statusLines.set(code, line)
  }
  return line
}

/** True when a response to `method` with `code` carries no body (RFC 9110 §6.4.1). */
export const bodyless = (method: string, code: number): boolean =>
  method === "HEAD" || code === 204 || code === 304 || (code >= 100 && code < 200)

const blocks = new WeakMap<ReadonlyArray<readonly [string, string]>, string>()

/** The app's header fields as `Name: value\r\n` lines, computed once per headers array. */
const headerBlock = (headers: ReadonlyArray<readonly [string, string]>): string => {
  if (headers.length === 0) return ""
  let block = blocks.get(headers)
  if (block === undefined) {
    block = ""
    for (const [name, value] of headers) {
      if (framingHeaders.has(name.toLowerCase()) || invalidValue.test(value) || invalidValue.test(name)) continue
      block += name + ": " + value + "\r\n"
    }
    blocks.set(headers, block)
  }
  return block
}

const framingHeaders = new Set(["content-length", "transfer-encoding", "connection", "date", "keep-alive"])
const invalidValue = /[\r\n\0]/

/** A body's length as a head announces it: a byte count, `CHUNKED`, or `UNTIL_CLOSE` (delimited by closing the connection). */
export type BodyLength = number
/** The body is sent chunked (Transfer-Encoding: chunked). */
export const CHUNKED: BodyLength = -1
/** The body ends when the connection closes (an HTTP/1.0 client of a streamed body). */
export const UNTIL_CLOSE: BodyLength = -2

/**
 * Serializes a response head. `length` is the body length, `CHUNKED`, or
 * `UNTIL_CLOSE`; `close` adds `Connection: close`; `keepAlive10` adds
 * `Connection: keep-alive` for an HTTP/1.0 client that asked for it;
 * `extra`: the engine's own header lines (`Name: value\r\n` each).
 * Header values with CR, LF or NUL are dropped (no response splitting).
 */
export const serializeHead = (
  response: Response,
  date: string,
  length: BodyLength,
  close: boolean,
  keepAlive10: boolean,
  noBody: boolean,
  extra = ""
): string => {
  let head = statusLine(response.status) + "Date: " + date + "\r\n" + headerBlock(response.headers) + extra
  if (response.status !== 204 && response.status >= 200 && !(noBody && response.status === 304)) {
    head += length >= 0
      ? "Content-Length: " + length + "\r\n"
      : noBody || length === UNTIL_CLOSE
      ? ""
      : "Transfer-Encoding: chunked\r\n"
  }
  if (response.status === 101) head += "Connection: Upgrade\r\n"
  else if (close) head += "Connection: close\r\n"
  else if (keepAlive10) head += "Connection: keep-alive\r\n"
  return head + "\r\n"
}

/** The last head serialized for one headers array, and what it was serialized for. */
interface CachedHead {
  status: number
  date: string
  extra: string
  length: number
  flags: number
  bytes: Buffer
}

const heads = new WeakMap<ReadonlyArray<readonly [string, string]>, CachedHead>()

/**
 * `serializeHead` as latin1 bytes, cached per headers array: answers that
 * share their headers (a constant response, or the helpers' shared
 * Content-Type arrays) reuse the bytes until the Date (a second) or the
 * status, length or connection flags change. Never mutate the result.
 */
export const headBytes = (
  response: Response,
  date: string,
  length: BodyLength,
  close: boolean,
  keepAlive10: boolean,
  noBody: boolean,
  extra = ""
): Buffer => {
  const flags = (close ? 1 : 0) | (keepAlive10 ? 2 : 0) | (noBody ? 4 : 0)
  const cached = heads.get(response.headers)
  if (
    cached !== undefined && cached.date === date && cached.status === response.status && cached.length === length &&
    cached.flags === flags && cached.extra === extra
  ) return cached.bytes
  const bytes = Buffer.from(serializeHead(response, date, length, close, keepAlive10, noBody, extra), "latin1")
  if (cached === undefined) heads.set(response.headers, { status: response.status, date, extra, length, flags, bytes })
  else {
    cached.status = response.status
    cached.date = date
    cached.extra = extra
    cached.length = length
    cached.flags = flags
    cached.bytes = bytes
  }
  return bytes
}

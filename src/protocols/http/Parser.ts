/**
 * The HTTP/1.1 request-head parser: pure, incremental, strict (RFC 9112).
 *
 * `parseHead(buffer, start, end, limits)` looks for a complete request head
 * in `buffer[start, end)` and returns it with the offset where the body (or
 * the next request) starts, or says it needs more bytes, or names the error
 * status (400, 414, 431, 501, 505) a server must answer with. No I/O and no
 * state between calls: the connection loop keeps the unconsumed bytes and
 * calls again when more arrive. The head is decoded once as latin1 and split
 * with string searches; every byte is validated with char-code checks.
 */
import { Headers } from "./Headers.ts"

/** Limits on a request head. */
export interface HeadLimits {
  /** Longest request line, in bytes (longer: 414). Default 8 KiB. */
  readonly maxRequestLine: number
  /** Longest head (request line plus header section), in bytes (longer: 431). Default 16 KiB. */
  readonly maxHeadBytes: number
  /** Most header fields (more: 431). Default 100. */
  readonly maxHeaders: number
}

export const defaultHeadLimits: HeadLimits = { maxRequestLine: 8192, maxHeadBytes: 16384, maxHeaders: 100 }

/** How the body of a request is framed. */
export type BodyFraming =
  | { readonly _tag: "None" }
  | { readonly _tag: "ContentLength"; readonly length: number }
  | { readonly _tag: "Chunked" }

/** A parsed request head. */
export interface RequestHead {
  readonly method: string
  /** The request-target as received. */
  readonly target: string
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1
  readonly headers: Headers
  readonly framing: BodyFraming
  /** What the client asked for: persistent connection or not (RFC 9112 §9.3). */
  readonly keepAlive: boolean
  readonly expectContinue: boolean
  /** The request asks to switch protocols (an `Upgrade` field, e.g. WebSocket's opening handshake). */
  readonly upgrade: boolean
  /** `METHOD target HTTP/1.x`, for the access log. */
  readonly requestLine: string
}

/** The result of one parse attempt. */
export type HeadResult =
  | { readonly _tag: "Incomplete" }
  | { readonly _tag: "Head"; readonly head: RequestHead; readonly end: number }
  | { readonly _tag: "Error"; readonly status: 400 | 414 | 431 | 501 | 505; readonly reason: string }

const INCOMPLETE: HeadResult = { _tag: "Incomplete" }
const NO_BODY: BodyFraming = { _tag: "None" }
const CHUNKED: BodyFraming = { _tag: "Chunked" }
const error = (status: 400 | 414 | 431 | 501 | 505, reason: string): HeadResult => ({ _tag: "Error", status, reason })

// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1

/** True when `s` is a non-empty RFC 9110 token. */
export const isToken = (s: string): boolean => {
  if (s.length === 0) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 128 || TCHAR[c] === 0) return false
  }
  return true
}

/** field-value characters: VCHAR, obs-text, SP, HTAB (no CTLs, no NUL, no bare CR/LF). */
const isFieldValue = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false
  }
  return true
}

/** request-target characters: visible US-ASCII only. */
const isTargetChars = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f) return false
  }
  return s.length > 0
}

const trimOws = (s: string): string => {
  let a = 0
  let b = s.length
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--
  return a === 0 && b === s.length ? s : s.slice(a, b)
}

/**
 * Finds `\r\n\r\n` in buffer[from, end), looking only at LFs from `searchFrom`
 * on (what was scanned before had none); returns the index of its first byte or -1.
 */
const findHeadEnd = (buffer: Uint8Array, from: number, searchFrom: number, end: number): number => {
  let i = buffer.indexOf(0x0a, searchFrom)
  while (i !== -1 && i < end) {
    // a head ends with CRLF CRLF; we reject bare LF later, so only look at LF positions
    if (i >= from + 3 && buffer[i - 1] === 0x0d && buffer[i - 2] === 0x0a && buffer[i - 3] === 0x0d) return i - 3
    i = buffer.indexOf(0x0a, i + 1)
  }
  return -1
}

const parseContentLength = (values: ReadonlyArray<string>): number | "invalid" => {
  let length = -1
  for (const value of values) {
    for (const part of value.split(",")) {
      const digits = trimOws(part)
      if (digits.length === 0 || digits.length > 15) return "invalid"
      for (let i = 0; i < digits.length; i++) {
        const c = digits.charCodeAt(i)
        if (c < 0x30 || c > 0x39) return "invalid"
      }
      const n = Number(digits)
      if (length !== -1 && n !== length) return "invalid"
      length = n
    }
  }
  return length
}

const hasToken = (value: string | undefined, token: string): boolean => {
  if (value === undefined) return false
  for (const part of value.split(",")) if (trimOws(part).toLowerCase() === token) return true
  return false
}

/**
 * How far an incomplete head was scanned, so that the next attempt (with more
 * bytes) looks only at the new ones: a head costs linear time however it is
 * split. Offsets count from the `start` passed to `parseHead`; a new request
 * starts with a fresh state (`newScan()`).
 */
export interface ScanState {
  /** Bytes from `start` already scanned without finding the head's end. */
  scanned: number
  /** Offset of the request line's LF from `start`, or -1 while none was seen. */
  lineEnd: number
}

/** A fresh scan state for a new request. */
export const newScan = (): ScanState => ({ scanned: 0, lineEnd: -1 })

/**
 * Parses one request head from `buffer[start, end)`. Leading empty lines are
 * skipped (RFC 9112 §2.2). With `scan`, an incomplete result records how far
 * it looked, and the next call resumes there. The verdict never depends on
 * how the bytes were split: a limit is judged on what the complete head would
 * be (a CR at the end of a read may be the start of the request line's CRLF).
 */
export const parseHead = (
  buffer: Uint8Array,
  start: number,
  end: number,
  limits: HeadLimits = defaultHeadLimits,
  scan?: ScanState
): HeadResult => {
  // RFC 9112 §2.2: ignore at least one empty line before the request-line
  let from = start
  while (from + 1 < end && buffer[from] === 0x0d && buffer[from + 1] === 0x0a && from - start < 8) from += 2
  if (from >= end) return INCOMPLETE
  const resume = scan === undefined ? from : Math.max(from, start + scan.scanned)
  const lineEnd = scan === undefined || scan.lineEnd < 0 ? -1 : start + scan.lineEnd
  const headEnd = findHeadEnd(buffer, from, Math.max(from, resume - 3), end)
  if (headEnd === -1) {
    const scanned = scanBytes(buffer, from, resume, end, limits, lineEnd)
    if (typeof scanned !== "number") return scanned
    if (scan !== undefined) {
      scan.scanned = end - start
      scan.lineEnd = scanned === -1 ? -1 : scanned - start
    }
    return INCOMPLETE
  }
  const result = headEnd + 4 - from > limits.maxHeadBytes
    ? error(431, "request header section too large")
    : parseHeadText(Buffer.from(buffer.buffer, buffer.byteOffset + from, headEnd - from).toString("latin1"), limits, headEnd + 4)
  if (result._tag !== "Error") return result
  // a refused head is judged byte by byte, first problem first, as it would have been had it arrived in pieces
  const scanned = scanBytes(buffer, from, resume, headEnd + 4, limits, lineEnd)
  return typeof scanned === "number" ? result : scanned
}

/**
 * Checks head bytes `[at, end)` (the head starts at `from`) in order and
 * returns the first problem a byte reveals: a bare LF, a bare CR (seen at the
 * byte after it), a request line over its limit (a CR is not counted: it may
 * be the start of the line's CRLF), a head over its limit. With no problem it
 * returns where the request line's LF is (`lineEnd` as given when it was
 * already known, -1 while none is seen).
 */
const scanBytes = (
  buffer: Uint8Array,
  from: number,
  at: number,
  end: number,
  limits: HeadLimits,
  lineEnd: number
): HeadResult | number => {
  for (let i = at; i < end; i++) {
    const c = buffer[i]
    if (i > from && buffer[i - 1] === 0x0d && c !== 0x0a) return error(400, "bare CR")
    if (c === 0x0a) {
      if (i === from || buffer[i - 1] !== 0x0d) return error(400, "bare LF where CRLF is required")
      if (lineEnd === -1) lineEnd = i
    } else if (lineEnd === -1 && c !== 0x0d && i - from + 1 > limits.maxRequestLine) {
      return error(414, "request line too long")
    }
    if (i - from + 1 > limits.maxHeadBytes) return error(431, "request header section too large")
  }
  return lineEnd
}

const parseHeadText = (text: string, limits: HeadLimits, end: number): HeadResult => {
  // ---- request-line (RFC 9112 §3) ----
  let lineEnd = text.indexOf("\r\n")
  if (lineEnd === -1) lineEnd = text.length
  const line = text.slice(0, lineEnd)
  if (line.length > limits.maxRequestLine) return error(414, "request line too long")
  if (line.includes("\n") || line.includes("\r")) return error(400, "bare CR or LF in the request line")
  const sp1 = line.indexOf(" ")
  const sp2 = sp1 === -1 ? -1 : line.indexOf(" ", sp1 + 1)
  if (sp1 <= 0 || sp2 === -1 || line.indexOf(" ", sp2 + 1) !== -1) return error(400, "malformed request line")
  const method = line.slice(0, sp1)
  const target = line.slice(sp1 + 1, sp2)
  const version = line.slice(sp2 + 1)
  if (!isToken(method)) return error(400, "invalid method token")
  if (!isTargetChars(target)) return error(400, "invalid request-target")
  if (version.length !== 8 || !version.startsWith("HTTP/") || version.charCodeAt(6) !== 0x2e) {
    return error(400, "malformed HTTP-version")
  }
  const major = version.charCodeAt(5) - 0x30
  const minorDigit = version.charCodeAt(7) - 0x30
  if (major < 0 || major > 9 || minorDigit < 0 || minorDigit > 9) return error(400, "malformed HTTP-version")
  if (major !== 1) return error(505, "HTTP version not supported")
  const minor: 0 | 1 = minorDigit === 0 ? 0 : 1
  // request-target forms (RFC 9112 §3.2)
  const c0 = target.charCodeAt(0)
  if (c0 !== 0x2f) {
    if (target === "*") {
      if (method !== "OPTIONS") return error(400, "asterisk-form is only for OPTIONS")
    } else if (method === "CONNECT") {
      if (!/^[^/?#@]+:\d{1,5}$/.test(target)) return error(400, "CONNECT needs authority-form")
    } else if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]+/.test(target)) {
      return error(400, "invalid request-target form")
    }
  }

  // ---- header fields (RFC 9112 §5) ----
  const names: Array<string> = []
  const values: Array<string> = []
  // the fields that decide framing, collected in the same pass
  let hosts = 0
  let connection: string | undefined
  let expect: string | undefined
  let upgrade = false
  let te: Array<string> | undefined
  let cl: Array<string> | undefined
  let at = lineEnd + 2
  while (at < text.length) {
    let next = text.indexOf("\r\n", at)
    if (next === -1) next = text.length
    const field = text.slice(at, next)
    at = next + 2
    const first = field.charCodeAt(0)
    if (first === 0x20 || first === 0x09) return error(400, "obsolete line folding")
    if (field.includes("\n") || field.includes("\r")) return error(400, "bare CR or LF in a header field")
    const colon = field.indexOf(":")
    if (colon <= 0) return error(400, "header field without a name")
    const name = field.slice(0, colon)
    if (!isToken(name)) return error(400, `invalid header field name`)
    const value = trimOws(field.slice(colon + 1))
    if (!isFieldValue(value)) return error(400, `invalid characters in header ${name}`)
    if (names.length >= limits.maxHeaders) return error(431, "too many header fields")
    const lower = name.toLowerCase()
    names.push(lower)
    values.push(value)
    switch (lower) {
      case "host":
        hosts++
        break
      case "connection":
        connection = connection === undefined ? value : `${connection}, ${value}`
        break
      case "expect":
        expect ??= value
        break
      case "upgrade":
        upgrade = true
        break
      case "transfer-encoding":
        ;(te ??= []).push(value)
        break
      case "content-length":
        ;(cl ??= []).push(value)
        break
    }
  }
  const headers = new Headers(names, values)

  // ---- Host (RFC 9112 §3.2) ----
  if (minor === 1 && hosts !== 1) return error(400, hosts === 0 ? "missing Host" : "more than one Host")
  if (minor === 0 && hosts > 1) return error(400, "more than one Host")

  // ---- message body framing (RFC 9112 §6) ----
  let framing: BodyFraming = NO_BODY
  if (te !== undefined) {
    if (cl !== undefined) return error(400, "Transfer-Encoding together with Content-Length")
    if (minor === 0) return error(400, "Transfer-Encoding in an HTTP/1.0 request")
    const codings = te.join(",").split(",").map((c) => trimOws(c).toLowerCase())
    if (codings.some((c) => c === "")) return error(400, "empty transfer-coding")
    const chunkedAt = codings.indexOf("chunked")
    if (chunkedAt !== -1 && chunkedAt !== codings.length - 1) return error(400, "chunked is not the final transfer-coding")
    if (codings.some((c) => c !== "chunked")) {
      for (const c of codings) if (!isToken(c.split(";")[0]!)) return error(400, "invalid transfer-coding")
      return chunkedAt === -1
        ? error(400, "request body length cannot be determined (final coding is not chunked)")
        : error(501, `unsupported transfer-coding: ${codings.filter((c) => c !== "chunked").join(", ")}`)
    }
    if (codings.length > 1) return error(400, "chunked applied more than once")
    framing = CHUNKED
  } else if (cl !== undefined) {
    const length = parseContentLength(cl)
    if (length === "invalid") return error(400, "invalid Content-Length")
    framing = length === 0 ? NO_BODY : { _tag: "ContentLength", length }
  }

  const keepAlive = minor === 1 ? !hasToken(connection, "close") : hasToken(connection, "keep-alive")
  return {
    _tag: "Head",
    head: {
      method,
      target,
      minor,
      headers,
      framing,
      keepAlive,
      expectContinue: expect !== undefined && expect.toLowerCase() === "100-continue",
      upgrade,
      requestLine: line
    },
    end
  }
}

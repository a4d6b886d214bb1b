/**
 * The request-head parser, by RFC section (RFC 9112 / 9110), plus
 * properties: any valid request split anywhere parses the same; any
 * single-byte mutation parses or yields a 4xx/5xx status, never a crash.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { parseHead, type HeadResult } from "../../../src/protocols/http/Parser.ts"

const parse = (text: string): HeadResult => {
  const b = Buffer.from(text, "latin1")
  return parseHead(b, 0, b.length)
}
const status = (text: string) => {
  const r = parse(text)
  return r._tag === "Error" ? r.status : r._tag
}
const head = (text: string) => {
  const r = parse(text)
  if (r._tag !== "Head") assert.fail(`expected a head, got ${JSON.stringify(r)}`)
  return r.head
}

describe("RFC 9112 §2.2 message parsing", () => {
  it("RFC 9112 §2.2: a bare LF where CRLF is required is rejected (400)", () => {
    assert.strictEqual(status("GET / HTTP/1.1\nHost: a\n\n"), 400)
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400)
  })
  it("RFC 9112 §2.2: a bare CR is rejected (400)", () => {
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), 400)
    assert.strictEqual(status("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400)
  })
  it("RFC 9112 §2.2: empty lines before the request-line are ignored", () => {
    assert.strictEqual(head("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").method, "GET")
  })
  it("RFC 9112 §2.2: an incomplete head asks for more bytes", () => {
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\r\n"), "Incomplete")
  })
})

describe("RFC 9112 §3 request line", () => {
  it("RFC 9112 §3: method is a token (400 otherwise)", () => {
    assert.strictEqual(status("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(head("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n".replace("*", "/")).method, "M-SEARCH")
  })
  it("RFC 9112 §3: exactly one SP between the three parts", () => {
    assert.strictEqual(status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(status("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(status("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n"), 400)
  })
  it("RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT only), asterisk-form (OPTIONS only)", () => {
    assert.strictEqual(head("GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n").target, "/a?b=c")
    assert.strictEqual(head("GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n").target, "http://a/b")
    assert.strictEqual(head("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n").target, "a:443")
    assert.strictEqual(head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target, "*")
    assert.strictEqual(status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(status("GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(status("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
  })
  it("RFC 9112 §3.2: the request-target has no controls, spaces or non-ASCII bytes", () => {
    assert.strictEqual(status("GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(status("GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
  })
  it("RFC 9112 §3.2: HTTP/1.1 needs exactly one Host (400 without or with two)", () => {
    assert.strictEqual(status("GET / HTTP/1.1\r\n\r\n"), 400)
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400)
    assert.strictEqual(head("GET / HTTP/1.0\r\n\r\n").minor, 0)
  })
  it("RFC 9112 §2.3 / RFC 9110 §2.5: HTTP/1.0 and 1.1; other majors 505; malformed versions 400", () => {
    assert.strictEqual(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505)
    assert.strictEqual(status("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505)
    assert.strictEqual(status("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(status("GET / http/1.1\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(status("GET / HTTP/1\r\nHost: a\r\n\r\n"), 400)
    assert.strictEqual(head("GET / HTTP/1.2\r\nHost: a\r\n\r\n").minor, 1, "a higher 1.x minor is served as 1.1")
  })
  it("RFC 9112 §3: an over-long request line is 414", () => {
    assert.strictEqual(status(`GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: a\r\n\r\n`), 414)
    assert.strictEqual(status(`GET /${"a".repeat(9000)}`), 414, "even before the line ends")
  })
})

describe("RFC 9112 §5 field syntax", () => {
  it("RFC 9112 §5.1: no whitespace between field name and colon (400)", () => {
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400)
  })
  it("RFC 9112 §5.1: field names are tokens; values have no NUL or controls", () => {
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n"), 400)
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n"), 400)
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n"), 400)
  })
  it("RFC 9112 §5.1: OWS around the value is not part of it; obs-text is kept", () => {
    const h = head("GET / HTTP/1.1\r\nHost: a\r\nX-A: \t hi there \t\r\nX-B: caf\xe9\r\n\r\n").headers
    assert.strictEqual(h.get("x-a"), "hi there")
    assert.strictEqual(h.get("X-B"), "caf\xe9")
  })
  it("RFC 9112 §5.2: obs-fold is rejected (400)", () => {
    assert.strictEqual(status("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), 400)
  })
  it("RFC 6585 §5: too many or too large header fields are 431", () => {
    const many = Array.from({ length: 101 }, (_, i) => `X-${i}: v\r\n`).join("")
    assert.strictEqual(status(`GET / HTTP/1.1\r\nHost: a\r\n${many}\r\n`), 431)
    assert.strictEqual(status(`GET / HTTP/1.1\r\nHost: a\r\nX: ${"v".repeat(17000)}\r\n\r\n`), 431)
    assert.strictEqual(status(`GET / HTTP/1.1\r\nHost: a\r\nX: ${"v".repeat(17000)}`), 431, "even before the head ends")
  })
})

describe("RFC 9112 §6 message body framing", () => {
  it("RFC 9112 §6.3: Content-Length is one non-negative integer; equal duplicates are one value", () => {
    assert.deepStrictEqual(head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").framing, { _tag: "ContentLength", length: 5 })
    assert.deepStrictEqual(head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n").framing, { _tag: "ContentLength", length: 5 })
    assert.deepStrictEqual(head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing, { _tag: "None" })
  })
  it("RFC 9112 §6.3: differing or invalid Content-Length is 400", () => {
    for (const cl of ["5, 6", "-1", "+5", "0x5", "5.0", "", "1 2", "99999999999999999999"]) {
      assert.strictEqual(status(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${cl}\r\n\r\n`), 400, cl)
    }
    assert.strictEqual(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400)
  })
  it("RFC 9112 §6.1: Transfer-Encoding together with Content-Length is 400 (smuggling)", () => {
    assert.strictEqual(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400)
  })
  it("RFC 9112 §6.1: chunked must be the final coding (400); unknown codings are 501", () => {
    assert.deepStrictEqual(head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").framing, { _tag: "Chunked" })
    assert.deepStrictEqual(head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n").framing, { _tag: "Chunked" })
    assert.strictEqual(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400)
    assert.strictEqual(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 400)
    assert.strictEqual(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501)
    assert.strictEqual(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400)
  })
  it("RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing (400)", () => {
    assert.strictEqual(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400)
  })
})

describe("RFC 9112 §9.3 persistence", () => {
  it("RFC 9112 §9.3: HTTP/1.1 persists unless Connection: close; HTTP/1.0 only with keep-alive", () => {
    assert.isTrue(head("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keepAlive)
    assert.isFalse(head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keepAlive)
    assert.isFalse(head("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n").keepAlive)
    assert.isFalse(head("GET / HTTP/1.0\r\n\r\n").keepAlive)
    assert.isTrue(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive)
  })
  it("RFC 9110 §10.1.1: Expect: 100-continue is recognised", () => {
    assert.isTrue(head("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expectContinue)
  })
})

// ---- properties ----
const token = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~"), minLength: 1, maxLength: 12 })
const value = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 30 })
const validRequest = fc.record({
  method: fc.constantFrom("GET", "HEAD", "POST", "DELETE", "PATCH"),
  path: fc.array(token, { maxLength: 4 }).map((s) => "/" + s.join("/")),
  headers: fc.array(fc.tuple(token.filter((t) => !["host", "content-length", "transfer-encoding"].includes(t.toLowerCase())), value), { maxLength: 8 })
}).map((r) => `${r.method} ${r.path} HTTP/1.1\r\nHost: example\r\n${r.headers.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`)

/** Feeds `bytes` in the given chunks the way the connection loop does (accumulating). */
const incremental = (bytes: Buffer, cuts: ReadonlyArray<number>): HeadResult => {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  for (const cut of at) {
    const r = parseHead(bytes.subarray(0, cut), 0, cut)
    if (r._tag !== "Incomplete") return r
  }
  return parseHead(bytes, 0, bytes.length)
}

describe("parser properties", () => {
  it("any valid request, split at arbitrary points, parses to the same head", () => {
    fc.assert(fc.property(validRequest, fc.array(fc.nat(), { maxLength: 6 }), (text, cuts) => {
      const bytes = Buffer.from(text, "latin1")
      const whole = parseHead(bytes, 0, bytes.length)
      const split = incremental(bytes, cuts)
      assert.strictEqual(whole._tag, "Head")
      assert.deepStrictEqual(split, whole)
    }), { numRuns: 500 })
  })

  it("any single-byte mutation of a valid head parses, asks for more, or gives 400/414/431/501/505: never throws", () => {
    fc.assert(fc.property(validRequest, fc.nat(), fc.integer({ min: 0, max: 255 }), (text, where, byte) => {
      const bytes = Buffer.from(text, "latin1")
      bytes[where % bytes.length] = byte
      const r = parseHead(bytes, 0, bytes.length)
      if (r._tag === "Error") assert.include([400, 414, 431, 501, 505], r.status)
    }), { numRuns: 2000 })
  })
})

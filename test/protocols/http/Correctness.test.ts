/**
 * Regression tests for HTTP defects found by review and probing: HEAD on a
 * streamed file (RFC 9110 §9.3.2), reason phrases for every status, cached
 * misses, the absolute-form target (RFC 9112 §3.2.2), redirects that cannot
 * be read as an authority, files that cannot be opened after the app chose
 * them, and If-Modified-Since through a strict HTTP-date parser.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { AccessEntry } from "../../../src/actors/AccessLog.ts"
import * as AccessLog from "../../../src/actors/AccessLog.ts"
import { FileError, statusForFileError } from "../../../src/protocols/http/BodyWriter.ts"
import * as HttpDate from "../../../src/protocols/http/HttpDate.ts"
import type * as Req from "../../../src/protocols/http/Request.ts"
import * as Res from "../../../src/protocols/http/Response.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import * as StaticFiles from "../../../src/protocols/http/StaticFiles.ts"
import { Script } from "../../../src/testkit/index.ts"

const makeRoot = () => {
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-correct-"))
  Fs.writeFileSync(Path.join(root, "big.bin"), Buffer.alloc(5000, 0x61))
  Fs.writeFileSync(Path.join(root, "small.txt"), "small\n")
  Fs.mkdirSync(Path.join(root, "sub"))
  Fs.writeFileSync(Path.join(root, "sub", "index.html"), "<p>sub</p>")
  return root
}

const exchange = <E>(app: Serve.App<E>, request: string, options: Serve.ServeOptions = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const http = yield* Serve.make(app, options)
    const r = yield* Script.run(http.handler, [Script.send(request)], { realIo: true })
    const split = r.text.indexOf("\r\n\r\n")
    return { status: Number(r.text.slice(9, 12)), head: r.text.slice(0, split), body: r.text.slice(split + 4), text: r.text }
  }))

const site = (root: string, options: Partial<StaticFiles.StaticOptions> = {}) => StaticFiles.make({ root, ...options })

describe("RFC 9110 §9.3.2 HEAD", () => {
  it.live("HEAD on a file over the cache limit announces the file's length and sends no body", () =>
    Effect.gen(function*() {
      const app = yield* site(makeRoot(), { cacheMaxFile: 1024 })
      const r = yield* exchange(app, "HEAD /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      assert.strictEqual(r.status, 200)
      assert.include(r.head, "Content-Length: 5000")
      assert.strictEqual(r.body, "")
    }))

  it.live("HEAD on a range of a streamed file announces the range's length", () =>
    Effect.gen(function*() {
      const app = yield* site(makeRoot(), { cacheMaxFile: 0 })
      const r = yield* exchange(app, "HEAD /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100-199\r\nConnection: close\r\n\r\n")
      assert.strictEqual(r.status, 206)
      assert.include(r.head, "Content-Length: 100")
      assert.strictEqual(r.body, "")
    }))

  it.live("HEAD on a stream of known length announces it; GET sends exactly that", () =>
    Effect.gen(function*() {
      const { Stream } = yield* Effect.promise(() => import("effect"))
      const app: Serve.App = () => Effect.succeed(Res.stream(Stream.make(Buffer.from("abc"), Buffer.from("de")), { length: 5 }))
      const head = yield* exchange(app, "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      assert.include(head.head, "Content-Length: 5")
      assert.strictEqual(head.body, "")
      const get = yield* exchange(app, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      assert.strictEqual(get.body, "abcde")
    }))
})

describe("RFC 9110 §15 reason phrases", () => {
  it("every registered status gets node:http's phrase (410 is Gone, not Unknown)", () => {
    assert.strictEqual(Res.statusLine(410), "HTTP/1.1 410 Gone\r\n")
    assert.strictEqual(Res.statusLine(418), "HTTP/1.1 418 I'm a Teapot\r\n")
    assert.strictEqual(Res.statusLine(451), "HTTP/1.1 451 Unavailable For Legal Reasons\r\n")
    assert.strictEqual(Res.statusLine(499), "HTTP/1.1 499 Client Closed Request\r\n")
    assert.strictEqual(Res.statusLine(599), "HTTP/1.1 599 \r\n", "unregistered: an empty phrase (RFC 9112 §4)")
  })
})

describe("static files: misses are cached like hits", () => {
  it.live("a 404 is remembered for the revalidation window, then the path is looked up again", () =>
    Effect.gen(function*() {
      const root = makeRoot()
      const app = yield* site(root, { revalidateMillis: 60_000 })
      assert.strictEqual((yield* exchange(app, "GET /late.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).status, 404)
      Fs.writeFileSync(Path.join(root, "late.txt"), "late\n")
      assert.strictEqual(
        (yield* exchange(app, "GET /late.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).status,
        404,
        "within the window the miss is answered from the cache (no stat)"
      )
      const fresh = yield* site(root, { revalidateMillis: 0 })
      assert.strictEqual((yield* exchange(fresh, "GET /late.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")).status, 200)
    }))

  it.live("a pipelined flood of 404s is answered from the cache, coalesced like hits", () =>
    Effect.gen(function*() {
      const app = yield* site(makeRoot())
      const one = "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
      yield* exchange(app, one) // warms the miss
      const r = yield* exchange(app, one.repeat(200))
      assert.strictEqual(r.text.match(/HTTP\/1\.1 404 Not Found/g)?.length, 200)
    }))
})

describe("RFC 9112 §3.2.2 absolute-form and safe redirects", () => {
  it.live("GET http://host/small.txt is served like /small.txt", () =>
    Effect.gen(function*() {
      const app = yield* site(makeRoot())
      const r = yield* exchange(app, "GET http://t/small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      assert.strictEqual(r.status, 200)
      assert.strictEqual(r.body, "small\n")
      const bare = yield* exchange(app, "GET http://t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      assert.strictEqual(bare.status, 404, "no index.html in this root: the root path, not a parse error")
    }))

  it.live("GET //sub redirects to /sub/ (never to //sub/, which a browser reads as the host 'sub')", () =>
    Effect.gen(function*() {
      const app = yield* site(makeRoot())
      const r = yield* exchange(app, "GET //sub HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      assert.strictEqual(r.status, 301)
      assert.include(r.head, "Location: /sub/\r\n")
    }))
})

describe("a file that cannot be opened gets an honest status and a log line", () => {
  it.live("the file vanished after the app chose it: 404 (not 200 and a reset), logged", () =>
    Effect.gen(function*() {
      const log = AccessLog.makeTest()
      const app: Serve.App = () =>
        Effect.succeed({ status: 200, headers: [], body: { _tag: "File", path: "/nonexistent/fiberd", start: 0, end: 100 } })
      const r = yield* exchange(app, "GET /gone HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", { accessLog: log })
      assert.strictEqual(r.status, 404)
      assert.notInclude(r.text, "200 OK")
      const entries: ReadonlyArray<AccessEntry> = log.entries
      assert.deepStrictEqual(entries.map((e) => e.status), [404])
    }))

  it("out of descriptors is 503 (with Retry-After in the answer), a missing file 404, others 500", () => {
    const e = (code: string) => new FileError({ path: "/f", operation: "open", code })
    assert.strictEqual(statusForFileError(e("EMFILE")), 503)
    assert.strictEqual(statusForFileError(e("ENFILE")), 503)
    assert.strictEqual(statusForFileError(e("ENOENT")), 404)
    assert.strictEqual(statusForFileError(e("EIO")), 500)
  })
})

describe("RFC 9110 §5.6.7 HTTP-date and §13.1.3 If-Modified-Since", () => {
  it("parses the three formats to the same instant", () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37)
    assert.strictEqual(HttpDate.parse("Sun, 06 Nov 1994 08:49:37 GMT"), t)
    assert.strictEqual(HttpDate.parse("Sunday, 06-Nov-94 08:49:37 GMT"), t)
    assert.strictEqual(HttpDate.parse("Sun Nov  6 08:49:37 1994"), t)
  })

  it("refuses what Date.parse would accept but is no HTTP-date", () => {
    for (const bogus of ["2024-01-01", "yesterday", "Sun, 06 Nov 1994 08:49:37 PST", "Mon, 06 Nov 1994 08:49:37 GMT", "Sun, 31 Feb 1994 08:49:37 GMT", "1", ""]) {
      assert.isUndefined(HttpDate.parse(bogus), bogus)
    }
  })

  it("property: format then parse is the identity on whole seconds", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 253_402_300_799 }), (seconds) => HttpDate.parse(HttpDate.format(seconds * 1000)) === seconds * 1000))
  })

  it.live("an invalid If-Modified-Since is ignored (200), a valid later one gives 304", () =>
    Effect.gen(function*() {
      const app = yield* site(makeRoot())
      const bad = yield* exchange(app, "GET /small.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: 3000-01-01\r\nConnection: close\r\n\r\n")
      assert.strictEqual(bad.status, 200)
      const good = yield* exchange(app, "GET /small.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Fri, 31 Dec 2100 23:59:59 GMT\r\nConnection: close\r\n\r\n")
      assert.strictEqual(good.status, 304)
    }))
})

describe("hostile chunked bodies", () => {
  it.live("an invalid trailer line or a chunk size followed by whitespace is 400 at once (not at the request timeout), whether or not the app reads the body", () =>
    Effect.gen(function*() {
      const reads: Serve.App<Req.BodyError> = (request) => Effect.map(request.text, (t) => Res.text(`got ${t}\n`))
      for (const body of ["5\r\nhello\r\n0\r\n\x8d", "5 \r\nhello\r\n0\r\n\r\n"]) {
        const r = yield* exchange(reads, `POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${body}`, { requestTimeout: "1 hour" })
        assert.strictEqual(r.status, 400, JSON.stringify(body))
      }
    }))
})


/**
 * Static files: root confinement (the traversal table with exact statuses),
 * index files and redirects, MIME types, validators and 304, ranges, HEAD,
 * cache invalidation, and streaming a 1 GiB file to a slow client.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import * as HttpServer from "../../../src/protocols/http/Server.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import * as StaticFiles from "../../../src/protocols/http/StaticFiles.ts"
import { Script } from "../../../src/testkit/index.ts"
import { connect } from "../../support/netClient.ts"

const makeRoot = () => {
  const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-static-"))
  const root = Path.join(base, "root")
  Fs.mkdirSync(Path.join(root, "dir"), { recursive: true })
  Fs.mkdirSync(Path.join(root, "noindex"))
  Fs.writeFileSync(Path.join(root, "index.html"), "<h1>home</h1>")
  Fs.writeFileSync(Path.join(root, "dir", "index.html"), "<h1>dir</h1>")
  Fs.writeFileSync(Path.join(root, "style.css"), "body{}")
  Fs.writeFileSync(Path.join(root, "data.bin"), "0123456789")
  Fs.writeFileSync(Path.join(root, "%2e"), "a file literally named %2e")
  Fs.writeFileSync(Path.join(base, "secret.txt"), "SECRET")
  Fs.symlinkSync(Path.join(base, "secret.txt"), Path.join(root, "escape.txt"))
  Fs.symlinkSync(Path.join(root, "style.css"), Path.join(root, "inside.css"))
  return root
}

const get = (root: string, target: string, headers = "", method = "GET", options: Partial<StaticFiles.StaticOptions> = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const site = yield* StaticFiles.make({ root, ...options })
    const http = yield* Serve.make(site)
    const r = yield* Script.run(http.handler, [Script.send(`${method} ${target} HTTP/1.1\r\nHost: t\r\n${headers}Connection: close\r\n\r\n`)], { realIo: true })
    const text = r.text
    const split = text.indexOf("\r\n\r\n")
    return { status: Number(text.slice(9, 12)), head: text.slice(0, split), body: text.slice(split + 4) }
  }))

/** Traversal and encoding vectors: exact status, and never the secret. */
const traversal: ReadonlyArray<readonly [string, number]> = [
  ["/../secret.txt", 403],
  ["/dir/../../secret.txt", 403],
  ["/%2e%2e/secret.txt", 403],
  ["/%2E%2E/secret.txt", 403],
  ["/..%2fsecret.txt", 403],
  ["/..%5csecret.txt", 403],
  ["/dir%5c..%5c..%5csecret.txt", 403],
  ["/%252e%252e/secret.txt", 404],
  ["/secret.txt%00.html", 403],
  ["/%00", 403],
  ["/escape.txt", 404],
  ["/%zz", 400],
  ["/nope.txt", 404]
]

describe("static files: root confinement", () => {
  const root = makeRoot()
  for (const [target, expected] of traversal) {
    it.effect(`${target} → ${expected}, never the file outside the root`, () =>
      Effect.gen(function*() {
        const r = yield* get(root, target)
        assert.strictEqual(r.status, expected)
        assert.notInclude(r.body, "SECRET")
      }))
  }
  it.effect("%252e decodes once, to a literal %2e file inside the root", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* get(root, "/%252e")).body, "a file literally named %2e")
    }))
  it.effect("a symlink that stays inside the root is served", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* get(root, "/inside.css")).body, "body{}")
    }))
  it("property: no decoded path with a .. segment, backslash or NUL ever resolves", () => {
    fc.assert(fc.property(fc.array(fc.constantFrom("..", ".", "a", "%2e%2e", "%2E.", "%5c", "%00", "b%2f..", "%"), { maxLength: 6 }), (parts) => {
      const segments = StaticFiles.safeSegments("/" + parts.join("/"))
      if (typeof segments !== "number") {
        for (const s of segments) assert.isFalse(s === ".." || s.includes("\\") || s.includes("\0"))
      }
    }))
  })
})

describe("static files: RFC 9110 semantics", () => {
  const root = makeRoot()
  it.effect("index.html for directories; /dir redirects to /dir/ (query kept)", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* get(root, "/")).body, "<h1>home</h1>")
      assert.strictEqual((yield* get(root, "/dir/")).body, "<h1>dir</h1>")
      const redirect = yield* get(root, "/dir?x=1")
      assert.strictEqual(redirect.status, 301)
      assert.include(redirect.head, "Location: /dir/?x=1")
      assert.strictEqual((yield* get(root, "/noindex/")).status, 404)
    }))
  it.effect("MIME types by extension", () =>
    Effect.gen(function*() {
      assert.include((yield* get(root, "/style.css")).head, "Content-Type: text/css; charset=utf-8")
      assert.include((yield* get(root, "/")).head, "Content-Type: text/html; charset=utf-8")
      assert.include((yield* get(root, "/data.bin")).head, "Content-Type: application/octet-stream")
    }))
  it.effect("RFC 9110 §13.1.2 / §13.1.3: If-None-Match and If-Modified-Since give 304 with no body", () =>
    Effect.gen(function*() {
      const first = yield* get(root, "/style.css")
      const etag = /ETag: (.+)/.exec(first.head)![1]!
      const lastModified = /Last-Modified: (.+)/.exec(first.head)![1]!
      const byTag = yield* get(root, "/style.css", `If-None-Match: "x", ${etag}\r\n`)
      assert.strictEqual(byTag.status, 304)
      assert.strictEqual(byTag.body, "")
      assert.strictEqual((yield* get(root, "/style.css", `If-Modified-Since: ${lastModified}\r\n`)).status, 304)
      assert.strictEqual((yield* get(root, "/style.css", "If-None-Match: \"other\"\r\n")).status, 200)
      assert.strictEqual((yield* get(root, "/style.css", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n")).status, 200)
    }))
  it.effect("RFC 9110 §14.2: a single Range gives 206 with Content-Range; unsatisfiable gives 416", () =>
    Effect.gen(function*() {
      const part = yield* get(root, "/data.bin", "Range: bytes=2-4\r\n")
      assert.strictEqual(part.status, 206)
      assert.strictEqual(part.body, "234")
      assert.include(part.head, "Content-Range: bytes 2-4/10")
      assert.strictEqual((yield* get(root, "/data.bin", "Range: bytes=7-\r\n")).body, "789")
      assert.strictEqual((yield* get(root, "/data.bin", "Range: bytes=-2\r\n")).body, "89")
      const bad = yield* get(root, "/data.bin", "Range: bytes=20-30\r\n")
      assert.strictEqual(bad.status, 416)
      assert.include(bad.head, "Content-Range: bytes */10")
      assert.strictEqual((yield* get(root, "/data.bin", "Range: bytes=0-1,3-4\r\n")).status, 200, "multiple ranges: the whole file")
    }))
  it.effect("RFC 9110 §9.3.2: HEAD has the GET headers and no body; other methods get 405", () =>
    Effect.gen(function*() {
      const head = yield* get(root, "/data.bin", "", "HEAD")
      assert.include(head.head, "Content-Length: 10")
      assert.strictEqual(head.body, "")
      const post = yield* get(root, "/data.bin", "", "DELETE")
      assert.strictEqual(post.status, 405)
      assert.include(post.head, "Allow: GET, HEAD")
    }))
  it.effect("a cached file that changes is served anew once revalidated", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = makeRoot()
      const site = yield* StaticFiles.make({ root: dir, revalidateMillis: 0 })
      const http = yield* Serve.make(site)
      const fetch = (path: string) => Script.run(http.handler, [Script.send(`GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`)], { realIo: true }).pipe(Effect.map((r) => r.text.slice(r.text.indexOf("\r\n\r\n") + 4)))
      assert.strictEqual(yield* fetch("/style.css"), "body{}")
      Fs.writeFileSync(Path.join(dir, "style.css"), "body{color:red}")
      Fs.utimesSync(Path.join(dir, "style.css"), new Date(), new Date(Date.now() + 5000))
      assert.strictEqual(yield* fetch("/style.css"), "body{color:red}")
    })))
})

describe("static files: big files", () => {
  it.live("a 1 GiB file to a slow client streams with backpressure: server memory stays flat, every byte arrives", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = makeRoot()
      const big = Path.join(root, "big.bin")
      const size = 1024 * 1024 * 1024
      Fs.closeSync(Fs.openSync(big, "w"))
      Fs.truncateSync(big, size) // sparse: zeros, no disk used
      const site = yield* StaticFiles.make({ root })
      const server = yield* HttpServer.listen(site, { listen: {} })
      const socket = yield* Effect.promise(() => connect(server.listener.address))
      let received = 0
      let headerDone = false
      socket.on("data", (chunk: Buffer) => {
        if (!headerDone) {
          const end = chunk.indexOf("\r\n\r\n")
          headerDone = true
          received += chunk.length - end - 4
        } else received += chunk.length
        if (received > 8 * 1024 * 1024 && !slowDone) socket.pause()
      })
      let slowDone = false
      socket.write("GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 300)))
      const rssBefore = process.memoryUsage().rss
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 700)))
      const grew = process.memoryUsage().rss - rssBefore
      assert.isBelow(received, 64 * 1024 * 1024, "the slow client holds the server back")
      assert.isBelow(grew, 64 * 1024 * 1024, `server memory grew by ${grew} bytes while the client was slow`)
      slowDone = true
      const closed = new Promise<void>((r) => socket.once("close", () => r()))
      socket.resume()
      yield* Effect.promise(() => closed)
      assert.strictEqual(received, size)
    })), 120_000)
})

describe("precompressed siblings (nginx's gzip_static)", () => {
  const withSiblings = () => {
    const root = makeRoot()
    const js = "console.log('fiberd');\n".repeat(50)
    Fs.writeFileSync(Path.join(root, "app.js"), js)
    Fs.writeFileSync(Path.join(root, "app.js.br"), Zlib.brotliCompressSync(js))
    Fs.writeFileSync(Path.join(root, "app.js.gz"), Zlib.gzipSync(js))
    Fs.writeFileSync(Path.join(root, "index.html.gz"), Zlib.gzipSync("<h1>home</h1>"))
    return { root, js }
  }
  /** The body of the answer to GET `target`, as bytes (a compressed body is binary). */
  const bodyOf = (root: string, target: string, headers: string) =>
    Effect.scoped(Effect.gen(function*() {
      const http = yield* Serve.make(yield* StaticFiles.make({ root }))
      const r = yield* Script.run(http.handler, [Script.send(`GET ${target} HTTP/1.1\r\nHost: t\r\n${headers}Connection: close\r\n\r\n`)], { realIo: true })
      const out = Buffer.from(r.output)
      return out.subarray(out.indexOf("\r\n\r\n") + 4)
    }))

  it.effect("X.br or X.gz for a client that accepts it, labelled as X; X itself otherwise; ranges from X; Vary on all of them", () =>
    Effect.gen(function*() {
      const { root, js } = withSiblings()
      const br = yield* get(root, "/app.js", "Accept-Encoding: gzip, br\r\n")
      assert.strictEqual(br.status, 200)
      assert.match(br.head, /Content-Type: text\/javascript; charset=utf-8\r\n/)
      assert.include(br.head, "Content-Encoding: br\r\n")
      assert.include(br.head, "Vary: Accept-Encoding")
      assert.strictEqual(Zlib.brotliDecompressSync(yield* bodyOf(root, "/app.js", "Accept-Encoding: gzip, br\r\n")).toString(), js)
      const gz = yield* get(root, "/app.js", "Accept-Encoding: gzip\r\n")
      assert.include(gz.head, "Content-Encoding: gzip\r\n")
      assert.strictEqual(Zlib.gunzipSync(yield* bodyOf(root, "/app.js", "Accept-Encoding: gzip\r\n")).toString(), js)
      // the directory index too
      const home = yield* get(root, "/", "Accept-Encoding: gzip\r\n")
      assert.include(home.head, "Content-Encoding: gzip\r\n")
      assert.match(home.head, /Content-Type: text\/html/)
      const plain = yield* get(root, "/app.js")
      assert.notInclude(plain.head, "Content-Encoding")
      assert.include(plain.head, "Vary: Accept-Encoding")
      assert.strictEqual(plain.body, js)
      const range = yield* get(root, "/app.js", "Accept-Encoding: br\r\nRange: bytes=0-6\r\n")
      assert.strictEqual(range.status, 206)
      assert.strictEqual(range.body, "console")
      // a sibling's own validator: 304 for the copy the client has
      const etag = /ETag: (\S+)\r\n/.exec(br.head)![1]!
      const again = yield* get(root, "/app.js", `Accept-Encoding: br\r\nIf-None-Match: ${etag}\r\n`)
      assert.strictEqual(again.status, 304)
      assert.include(again.head, "Content-Encoding: br\r\n")
      // no sibling: the file as it is
      const css = yield* get(root, "/style.css", "Accept-Encoding: br\r\n")
      assert.strictEqual(css.body, "body{}")
      assert.notInclude(css.head, "Content-Encoding")
      // switched off
      const off = yield* get(root, "/app.js", "Accept-Encoding: br\r\n", "GET", { precompressed: false })
      assert.notInclude(off.head, "Content-Encoding")
      assert.notInclude(off.head, "Vary")
    }))
})

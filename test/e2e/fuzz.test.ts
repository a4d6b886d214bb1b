/**
 * A standing fuzz test of the whole server (issue 16): the real fiberd with
 * web, echo and chat on short timeouts; 300 connections over real sockets
 * carry fast-check byte streams (random bytes, mutated valid requests, every
 * split, half-closes or none). The server never crashes or hangs, every
 * connection is answered or closed within the configured timeouts, and a
 * normal request succeeds afterwards.
 */
import { assert, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { start } from "../support/serverProcess.ts"

const valid = [
  "GET / HTTP/1.1\r\nHost: t\r\n\r\n",
  "GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
  "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
  "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  "HEAD /style.css HTTP/1.0\r\n\r\n",
  "GET /_status HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\n"
]

/** A byte stream: random bytes, or valid requests with bytes replaced, inserted or deleted. */
const stream: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
  fc.tuple(
    fc.array(fc.constantFrom(...valid), { minLength: 1, maxLength: 4 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("replace", "insert", "delete")), { maxLength: 6 })
  ).map(([requests, mutations]) => {
    const bytes = [...Buffer.from(requests.join(""), "latin1")]
    for (const [at, value, kind] of mutations) {
      const i = bytes.length === 0 ? 0 : at % bytes.length
      if (kind === "replace") bytes[i] = value
      else if (kind === "insert") bytes.splice(i, 0, value)
      else bytes.splice(i, 1)
    }
    return Buffer.from(bytes)
  })
)

const connection = fc.record({
  service: fc.constantFrom("web", "web", "echo", "chat"),
  bytes: stream,
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
  halfClose: fc.boolean()
})

/** Sends `bytes` in pieces; resolves with how long the server took to close after the last byte (ms). */
const exercise = (port: number, bytes: Buffer, cuts: ReadonlyArray<number>, halfClose: boolean) =>
  new Promise<number>((resolve, reject) => {
    const socket = Net.connect(port, "127.0.0.1")
    let sentAt = Date.now()
    socket.on("data", () => {})
    socket.on("error", () => {}) // a reset is an answer too
    socket.on("close", () => resolve(Date.now() - sentAt))
    socket.on("connect", () => {
      const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b)
      let from = 0
      for (const cut of at) {
        socket.write(bytes.subarray(from, cut))
        from = cut
      }
      socket.write(bytes.subarray(from))
      sentAt = Date.now()
      if (halfClose) socket.end()
    })
    setTimeout(() => {
      socket.destroy()
      reject(new Error(`not answered or closed within 20 s: ${JSON.stringify(bytes.toString("latin1"))}`))
    }, 20_000).unref()
  })

it("300 fuzzed connections: no crash, no hang, each closed within its timeouts; the server still serves", { timeout: 120_000 }, async () => {
  const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-fuzz-"))
  Fs.writeFileSync(Path.join(root, "index.html"), "<h1>fuzz</h1>")
  Fs.writeFileSync(Path.join(root, "style.css"), "body{}")
  const server = await start({
    services: [
      { name: "web", protocol: "http", listen: "127.0.0.1:0", root, headerTimeout: "1 second", requestTimeout: "1 second", keepAliveTimeout: "1 second", idleTimeout: "2 seconds" },
      { name: "echo", protocol: "echo", listen: "127.0.0.1:0", idleTimeout: "2 seconds" },
      { name: "chat", protocol: "chat", listen: "127.0.0.1:0", idleTimeout: "2 seconds" }
    ],
    accessLog: { path: "access.log" }
  })
  try {
    const samples = fc.sample(connection, { numRuns: 300, seed: 16 })
    let worst = 0
    for (let batch = 0; batch < samples.length; batch += 60) {
      const waits = await Promise.all(samples.slice(batch, batch + 60).map((c) => exercise(server.port(c.service), c.bytes, c.cuts, c.halfClose)))
      worst = Math.max(worst, ...waits)
      assert.isNull(server.child.exitCode, "the server is still running")
    }
    // the longest timeout is 2 s (idle), swept at most 25 % late; allow scheduling slack on a busy machine
    assert.isBelow(worst, 6_000, `a connection stayed open ${worst} ms after its last byte`)
    const status = await new Promise<{ status: number; body: string }>((resolve, reject) =>
      Http.get({ host: "127.0.0.1", port: server.port("web"), path: "/_status", agent: false }, (res) => {
        let body = ""
        res.on("data", (d) => (body += d))
        res.on("end", () => resolve({ status: res.statusCode!, body }))
      }).on("error", reject)
    )
    assert.strictEqual(status.status, 200, "a normal request succeeds afterwards")
    const doc = JSON.parse(status.body) as { services: Array<{ name: string; handlerFailures?: number }> }
    for (const s of doc.services) assert.strictEqual(s.handlerFailures ?? 0, 0, `${s.name}: bad input is never a handler failure`)
  } finally {
    assert.strictEqual(await server.stop(), 0, server.stderr())
  }
})

/**
 * WebSocket routes (RFC 6455) over real sockets: Node's built-in WebSocket
 * client (a client no one here wrote) for text, binary and a closing
 * handshake; hand-made frames for fragmentation split at every byte, an
 * unmasked frame (1002), invalid UTF-8 (1007), a message over the limit
 * (1009), pings; and the handshake's refusals (400/426), including an
 * upgrade on a route that does not speak WebSocket (426, not 200).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import * as Res from "../../../src/protocols/http/Response.ts"
import * as Router from "../../../src/protocols/http/Router.ts"
import * as HttpServer from "../../../src/protocols/http/Server.ts"
import { encode, encodeMasked, Opcode } from "../../../src/protocols/websocket/Frame.ts"
import { echo, readServerFrames } from "../../support/webSocket.ts"

const serve = Effect.gen(function*() {
  const app = Router.make([
    Router.ws("/echo", echo, { maxMessage: 1000 }),
    Router.ws("/quick", echo, { idleTimeout: "150 millis" }),
    Router.ws("/boom", (socket) => Effect.andThen(socket.receive, Effect.fail("the route broke"))),
    Router.get("/page", () => Effect.succeed(Res.text("a page\n")))
  ])
  const server = yield* HttpServer.listen(app, { listen: { name: "ws" } })
  return (server.listener.address as { port: number }).port
})

const KEY = "dGhlIHNhbXBsZSBub25jZQ=="
const handshake = (path: string, extra = "") =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`

/** A raw client: writes `parts` (one write each, in order; then ends its side if `end`) and collects everything until the server closes. */
const raw = (port: number, parts: ReadonlyArray<Uint8Array | string>, end = false) =>
  Effect.callback<Buffer>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port }, async () => {
      for (const part of parts) {
        socket.write(part)
        await new Promise((r) => setImmediate(r))
      }
      if (end) socket.end()
    })
    const chunks: Array<Buffer> = []
    socket.on("data", (d: Buffer) => chunks.push(d))
    socket.on("error", () => {})
    socket.on("end", () => socket.end())
    socket.on("close", () => resume(Effect.succeed(Buffer.concat(chunks))))
  })

/** The server frames after the 101 head. */
const serverFrames = (reply: Buffer) => {
  const text = reply.toString("latin1")
  const headEnd = text.indexOf("\r\n\r\n")
  assert.match(text.slice(0, headEnd), /^HTTP\/1\.1 101 Switching Protocols\r\n/)
  assert.include(text.slice(0, headEnd), "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") // RFC 6455 §1.3's example
  return readServerFrames(reply, headEnd + 4)
}

const closeCode = (frame: { payload: Buffer }) => frame.payload.readUInt16BE(0)

/** Node's WebSocket client: opens `path`, sends `text` (after `delayMillis`), resolves with the first message back. */
const echoOnce = (port: number, path: string, text: string, delayMillis = 0) =>
  Effect.callback<string>((resume) => {
    const client = new WebSocket(`ws://127.0.0.1:${port}${path}`)
    client.onopen = () => setTimeout(() => client.send(text), delayMillis)
    client.onmessage = (e) => {
      client.close()
      resume(Effect.succeed(String(e.data)))
    }
  })
const mask = Buffer.from([0x37, 0xfa, 0x21, 0x3d])

describe("WebSocket", () => {
  it.live("Node's WebSocket client: text and binary messages echo, then a clean close (1000)", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const result = yield* Effect.callback<{ texts: Array<string>; binary: number; code: number }>((resume) => {
        const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
        client.binaryType = "arraybuffer"
        const texts: Array<string> = []
        let binary = 0
        client.onopen = () => {
          client.send("hello")
          client.send("héllo wörld ✓")
          client.send(new Uint8Array([1, 2, 3, 250]))
        }
        client.onmessage = (e) => {
          if (typeof e.data === "string") texts.push(e.data)
          else binary = new Uint8Array(e.data as ArrayBuffer).reduce((a, b) => a + b, 0)
          if (texts.length === 2 && binary > 0) client.close(1000, "done")
        }
        client.onclose = (e) => resume(Effect.succeed({ texts, binary, code: e.code }))
      })
      assert.deepStrictEqual(result.texts, ["hello", "héllo wörld ✓"])
      assert.strictEqual(result.binary, 1 + 2 + 3 + 250)
      assert.strictEqual(result.code, 1000)
    }).pipe(Effect.scoped))

  it.live("a fragmented message with a ping between its fragments, every byte written separately: one message back, the ping answered", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const frames = Buffer.concat([
        encodeMasked(Opcode.Text, Buffer.from("frag"), mask, false),
        encodeMasked(Opcode.Ping, Buffer.from("p"), mask),
        encodeMasked(Opcode.Continuation, Buffer.from("mented"), mask, true),
        encodeMasked(Opcode.Close, Buffer.from([0x03, 0xe8]), mask)
      ])
      const bytes = [Buffer.from(handshake("/echo")), ...[...frames].map((b) => Buffer.from([b]))]
      const got = serverFrames(yield* raw(port, bytes))
      assert.deepStrictEqual(got.map((f) => f.opcode), [Opcode.Pong, Opcode.Text, Opcode.Close])
      assert.strictEqual(got[0]!.payload.toString(), "p")
      assert.strictEqual(got[1]!.payload.toString(), "fragmented")
      assert.strictEqual(closeCode(got[2]!), 1000)
    }).pipe(Effect.scoped))

  it.live("protocol errors close with the right code: unmasked frame 1002, invalid UTF-8 1007, too big 1009, control frame over 125 bytes 1002", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const cases: Array<[Buffer, number]> = [
        [encode(Opcode.Text, Buffer.from("no mask")), 1002],
        [encodeMasked(Opcode.Text, Buffer.from([0xc3, 0x28]), mask), 1007],
        [encodeMasked(Opcode.Binary, Buffer.alloc(1001), mask), 1009],
        [Buffer.concat([encodeMasked(Opcode.Binary, Buffer.alloc(600), mask, false), encodeMasked(Opcode.Continuation, Buffer.alloc(600), mask)]), 1009],
        [encodeMasked(Opcode.Ping, Buffer.alloc(126), mask), 1002],
        [encodeMasked(Opcode.Continuation, Buffer.from("x"), mask), 1002]
      ]
      for (const [frame, code] of cases) {
        const got = serverFrames(yield* raw(port, [handshake("/echo"), frame]))
        const close = got.find((f) => f.opcode === Opcode.Close)
        assert.isDefined(close, `a close frame for ${code}`)
        assert.strictEqual(closeCode(close!), code)
      }
    }).pipe(Effect.scoped))

  it.live("hostile clients: 100k empty continuation frames close with 1008, a ping flood with 1008 after the burst allowance, too many fragments with 1009", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const empties = Buffer.concat([
        encodeMasked(Opcode.Text, Buffer.from("x"), mask, false),
        ...Array.from({ length: 100_000 }, () => encodeMasked(Opcode.Continuation, Buffer.alloc(0), mask, false))
      ])
      const a = serverFrames(yield* raw(port, [handshake("/echo"), empties]))
      assert.deepStrictEqual(a.map((f) => f.opcode), [Opcode.Close])
      assert.strictEqual(closeCode(a[0]!), 1008)
      const pings = Buffer.concat(Array.from({ length: 1000 }, () => encodeMasked(Opcode.Ping, Buffer.from("p"), mask)))
      const b = serverFrames(yield* raw(port, [handshake("/echo"), pings]))
      const pongs = b.filter((f) => f.opcode === Opcode.Pong).length
      assert.isAtMost(pongs, 60, "pongs before the budget ran out")
      assert.strictEqual(b.at(-1)!.opcode, Opcode.Close)
      assert.strictEqual(closeCode(b.at(-1)!), 1008)
      const fragments = Buffer.concat(Array.from({ length: 1100 }, (_, i) => encodeMasked(i === 0 ? Opcode.Binary : Opcode.Continuation, Buffer.from([1]), mask, false)))
      const c = serverFrames(yield* raw(port, [handshake("/echo"), fragments]))
      assert.strictEqual(closeCode(c.at(-1)!), 1009)
      // the server goes on serving
      assert.strictEqual(yield* echoOnce(port, "/echo", "still serving"), "still serving")
    }).pipe(Effect.scoped))

  it.live("handshake refusals: no Upgrade 426, wrong version 426 with Sec-WebSocket-Version, bad key 400, an upgrade on a page 426 (never 200)", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const status = (request: string) => Effect.map(raw(port, [request], true), (b) => b.toString("latin1").split("\r\n")[0])
      assert.strictEqual(yield* status("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), "HTTP/1.1 426 Upgrade Required")
      const version = yield* Effect.map(raw(port, [handshake("/echo").replace("Version: 13", "Version: 8")], true), (b) => b.toString("latin1"))
      assert.match(version, /^HTTP\/1\.1 426 /)
      assert.include(version, "Sec-WebSocket-Version: 13")
      assert.strictEqual(yield* status(handshake("/echo").replace(KEY, "short")), "HTTP/1.1 400 Bad Request")
      assert.strictEqual(yield* status(handshake("/page")), "HTTP/1.1 426 Upgrade Required")
    }).pipe(Effect.scoped))
})

describe("WebSocket and failing routes", () => {
  it.live("a route that fails closes with 1011 (internal error); the server goes on", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const code = yield* Effect.callback<number>((resume) => {
        const client = new WebSocket(`ws://127.0.0.1:${port}/boom`)
        client.onopen = () => client.send("anything")
        client.onclose = (e) => resume(Effect.succeed(e.code))
      })
      assert.strictEqual(code, 1011)
      assert.strictEqual(yield* echoOnce(port, "/echo", "still serving"), "still serving")
    }).pipe(Effect.scoped))
})

describe("WebSocket and idle clients", () => {
  it.live("a silent client is pinged after idleTimeout, then closed with 1001 when it does not answer; a client that answers stays", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const got = serverFrames(yield* raw(port, [handshake("/quick")]))
      assert.deepStrictEqual(got.map((f) => f.opcode), [Opcode.Ping, Opcode.Close])
      assert.strictEqual(closeCode(got[1]!), 1001)
      // Node's client answers pings: it is still open after several idle periods, and echoes
      assert.strictEqual(yield* echoOnce(port, "/quick", "still here", 700), "still here")
    }).pipe(Effect.scoped))
})

describe("WebSocket and the server's drain", () => {
  it.live("shutdown closes an idle WebSocket with 1001 (going away)", () =>
    Effect.gen(function*() {
      let closedWith: (code: number) => void = () => {}
      const code = new Promise<number>((resolve) => (closedWith = resolve))
      yield* Effect.scoped(Effect.gen(function*() {
        const port = yield* serve
        yield* Effect.callback<void>((resume) => {
          const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
          client.onopen = () => resume(Effect.void)
          client.onclose = (e) => closedWith(e.code)
        })
      })) // the scope closes: the server drains
      assert.strictEqual(yield* Effect.promise(() => code), 1001)
    }))
})

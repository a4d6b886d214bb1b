/**
 * permessage-deflate (RFC 7692): the negotiation table, inflate(deflate(x))
 * for any message (a property), a decompression bomb refused after bounded
 * work, and over real sockets with clients no one here wrote — `ws` with and
 * without compression, Node's WebSocket — text and binary messages echoed
 * both ways, compressed; `compression: false` offers nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import * as Net from "node:net"
import * as Zlib from "node:zlib"
import WebSocketClient from "ws"
import * as Router from "../../../src/protocols/http/Router.ts"
import * as HttpServer from "../../../src/protocols/http/Server.ts"
import { encodeMasked, Opcode } from "../../../src/protocols/websocket/Frame.ts"
import * as PerMessageDeflate from "../../../src/protocols/websocket/PerMessageDeflate.ts"
import { echo } from "../../support/webSocket.ts"

describe("negotiation", () => {
  it("accepts the first offer it can honour; always without context takeover", () => {
    const header = (offer: string | undefined) => PerMessageDeflate.negotiate(offer)?.header
    const plain = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    assert.strictEqual(header("permessage-deflate; client_max_window_bits"), plain) // what browsers send
    assert.strictEqual(header("permessage-deflate"), plain)
    assert.strictEqual(header("permessage-deflate; server_max_window_bits=10"), `${plain}; server_max_window_bits=10`)
    assert.strictEqual(PerMessageDeflate.negotiate("permessage-deflate; server_max_window_bits=10")?.windowBits, 10)
    assert.strictEqual(header("permessage-deflate; server_max_window_bits=8, permessage-deflate"), plain) // 8 declined, the next taken
    assert.strictEqual(header("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=12"), plain)
    for (const bad of ["permessage-deflate; unknown", "permessage-deflate; server_max_window_bits=16", "permessage-deflate; client_max_window_bits=7",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover", "permessage-deflate; server_no_context_takeover=1", "other"]) {
      assert.isUndefined(header(bad), bad)
    }
    assert.isUndefined(header(undefined))
  })
})

describe("inflate and deflate", () => {
  it("inflate(deflate(x)) is x for any message and window", () =>
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.integer({ min: 9, max: 15 }), (bytes, bits) => {
      const back = PerMessageDeflate.inflate(PerMessageDeflate.deflate(bytes, bits), 10_000)
      return back instanceof Uint8Array && Buffer.from(back).equals(Buffer.from(bytes))
    })))

  it("a decompression bomb is refused with 1009 after at most maxMessage bytes of output; corrupt data with 1007", () => {
    const bomb = Zlib.deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { finishFlush: Zlib.constants.Z_SYNC_FLUSH })
    assert.isBelow(bomb.byteLength, 100 * 1024)
    const started = performance.now()
    const refused = PerMessageDeflate.inflate(bomb.subarray(0, bomb.byteLength - 4), 1024 * 1024)
    assert.deepStrictEqual(refused, { code: 1009, reason: "a message over 1048576 bytes once inflated" })
    assert.isBelow(performance.now() - started, 1000, "bounded work, not 64 MiB of it")
    assert.strictEqual((PerMessageDeflate.inflate(Buffer.from([0xff, 0xff, 0xff]), 1000) as { code: number }).code, 1007)
  })
})

const serve = Effect.gen(function*() {
  const app = Router.make([
    Router.ws("/echo", echo, { maxMessage: 100_000, compressionThreshold: 0 }),
    Router.ws("/plain", echo, { compression: false })
  ])
  const server = yield* HttpServer.listen(app, { listen: { name: "ws" } })
  return (server.listener.address as { port: number }).port
})

/** `ws` as the client: the extensions it agreed to and the messages echoed back. */
const wsEcho = (url: string, perMessageDeflate: boolean, messages: ReadonlyArray<string | Buffer>) =>
  Effect.callback<{ extensions: string; back: Array<string | Buffer> }>((resume) => {
    const client = new WebSocketClient(url, { perMessageDeflate })
    const back: Array<string | Buffer> = []
    client.on("open", () => messages.forEach((m) => client.send(m)))
    client.on("message", (data: Buffer, isBinary: boolean) => {
      back.push(isBinary ? data : data.toString("utf8"))
      if (back.length === messages.length) client.close()
    })
    client.on("close", () => resume(Effect.succeed({ extensions: client.extensions, back })))
  })

describe("permessage-deflate over sockets", () => {
  const messages = ["hello", "ünïcödé ✓ ".repeat(500), Buffer.alloc(50_000, 7), Buffer.from([1, 2, 3])]

  it.live("ws with compression: agreed, every message echoed intact both ways; without it, the same uncompressed", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const compressed = yield* wsEcho(`ws://127.0.0.1:${port}/echo`, true, messages)
      assert.include(compressed.extensions, "permessage-deflate")
      assert.deepStrictEqual(compressed.back, messages)
      const uncompressed = yield* wsEcho(`ws://127.0.0.1:${port}/echo`, false, messages)
      assert.strictEqual(uncompressed.extensions, "")
      assert.deepStrictEqual(uncompressed.back, messages)
      const off = yield* wsEcho(`ws://127.0.0.1:${port}/plain`, true, messages)
      assert.strictEqual(off.extensions, "")
      assert.deepStrictEqual(off.back, messages)
    }).pipe(Effect.scoped))

  it.live("Node's WebSocket (undici): compression agreed, messages echoed", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const result = yield* Effect.callback<{ extensions: string; back: string }>((resume) => {
        const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
        client.onopen = () => client.send("compress me ".repeat(300))
        client.onmessage = (e) => {
          client.close()
          resume(Effect.succeed({ extensions: client.extensions, back: String(e.data) }))
        }
      })
      assert.include(result.extensions, "permessage-deflate")
      assert.strictEqual(result.back, "compress me ".repeat(300))
    }).pipe(Effect.scoped))

  it.live("a compressed frame that inflates past maxMessage closes with 1009; RSV1 without the extension is 1002", () =>
    Effect.gen(function*() {
      const port = yield* serve
      const KEY = "dGhlIHNhbXBsZSBub25jZQ=="
      const open = (path: string, ext: string) =>
        `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${ext}\r\n`
      const bomb = Zlib.deflateRawSync(Buffer.alloc(10 * 1024 * 1024), { finishFlush: Zlib.constants.Z_SYNC_FLUSH })
      const frame = encodeMasked(Opcode.Binary, bomb.subarray(0, bomb.byteLength - 4), Buffer.from([1, 2, 3, 4]), true, true)
      const closeOf = (path: string, ext: string) =>
        Effect.callback<number>((resume) => {
          const socket = Net.connect({ host: "127.0.0.1", port }, () => socket.write(Buffer.concat([Buffer.from(open(path, ext)), frame])))
          const chunks: Array<Buffer> = []
          socket.on("data", (d: Buffer) => chunks.push(d))
          socket.on("error", () => {})
          socket.on("close", () => {
            const all = Buffer.concat(chunks)
            const at = all.indexOf("\r\n\r\n") + 4
            // the server's close frame: 0x88, length, code
            resume(Effect.succeed(all[at] === 0x88 ? all.readUInt16BE(at + 2) : -1))
          })
        })
      assert.strictEqual(yield* closeOf("/echo", "Sec-WebSocket-Extensions: permessage-deflate\r\n"), 1009)
      assert.strictEqual(yield* closeOf("/plain", "Sec-WebSocket-Extensions: permessage-deflate\r\n"), 1002)
    }).pipe(Effect.scoped))
})

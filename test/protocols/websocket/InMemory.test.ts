/**
 * WebSocket routes driven by the testkit, in memory, through the very same
 * HTTP engine: the handshake and the frames of a session arrive split at
 * every byte boundary fast-check picks; fragmentation, pings, masked and
 * unmasked frames and close codes, with no socket anywhere.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import * as Router from "../../../src/protocols/http/Router.ts"
import * as Serve from "../../../src/protocols/http/Serve.ts"
import { encode, encodeMasked, Opcode } from "../../../src/protocols/websocket/Frame.ts"
import { MemoryServer } from "../../../src/testkit/index.ts"
import type { MemoryEnd } from "../../../src/testkit/MemoryConnection.ts"

const app = Router.make([
  Router.ws("/echo", (socket) =>
    Effect.gen(function*() {
      while (true) {
        const message = yield* socket.receive
        if (Option.isNone(message)) return
        yield* socket.send(typeof message.value === "string" ? message.value.toUpperCase() : message.value)
      }
    }), { maxMessage: 100 })
])

const handshake = Buffer.from(
  "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
const mask = Buffer.from([1, 2, 3, 4])

/** Writes `bytes` cut at `points`, then reads everything until the server closes. */
const exchange = (client: MemoryEnd, bytes: Buffer, points: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const cuts = [...new Set(points.map((p) => p % (bytes.byteLength + 1)))].sort((a, b) => a - b)
    let from = 0
    for (const p of [...cuts, bytes.byteLength]) {
      if (p > from) yield* client.write(bytes.subarray(from, p))
      from = p
    }
    const parts: Array<Uint8Array> = []
    while (true) {
      const chunk = yield* client.read
      if (Option.isNone(chunk)) break
      parts.push(chunk.value)
    }
    return Buffer.concat(parts)
  })

/** The frames after the 101 head (server frames are unmasked; lengths here stay under 126). */
const framesOf = (reply: Buffer) => {
  const headEnd = reply.indexOf("\r\n\r\n")
  assert.match(reply.subarray(0, headEnd).toString("latin1"), /^HTTP\/1\.1 101 /)
  const out: Array<string> = []
  for (let at = headEnd + 4; at < reply.byteLength;) {
    const opcode = reply[at]! & 0x0f
    const length = reply[at + 1]! & 0x7f
    const payload = reply.subarray(at + 2, at + 2 + length)
    out.push(opcode === Opcode.Close ? `close:${payload.readUInt16BE(0)}` : `${opcode}:${payload.toString("latin1")}`)
    at += 2 + length
  }
  return out
}

describe("WebSocket in the testkit", () => {
  it.effect("a session split anywhere: fragmented text with a ping inside, binary, then the client's close", () =>
    Effect.gen(function*() {
      const engine = yield* Serve.make(app)
      const server = yield* MemoryServer.make(engine.handler)
      const session = Buffer.concat([
        handshake,
        encodeMasked(Opcode.Text, Buffer.from("hel"), mask, false),
        encodeMasked(Opcode.Ping, Buffer.from("p"), mask),
        encodeMasked(Opcode.Continuation, Buffer.from("lo"), mask),
        encodeMasked(Opcode.Binary, Buffer.from([0x41, 0x42]), mask),
        encodeMasked(Opcode.Close, Buffer.from([0x03, 0xe8]), mask)
      ])
      yield* Effect.promise(() =>
        fc.assert(fc.asyncProperty(fc.array(fc.nat(session.byteLength), { maxLength: 20 }), (points) =>
          Effect.runPromise(Effect.gen(function*() {
            const client = yield* server.connect()
            const frames = framesOf(yield* exchange(client, session, points))
            assert.deepStrictEqual(frames, [`${Opcode.Pong}:p`, `${Opcode.Text}:HELLO`, `${Opcode.Binary}:AB`, "close:1000"])
          }))), { numRuns: 60 })
      )
    }).pipe(Effect.scoped))

  it.effect("close codes in memory: unmasked 1002, bad UTF-8 1007, over maxMessage 1009", () =>
    Effect.gen(function*() {
      const engine = yield* Serve.make(app)
      const server = yield* MemoryServer.make(engine.handler)
      const cases: Array<[Buffer, string]> = [
        [encode(Opcode.Text, Buffer.from("x")), "close:1002"],
        [encodeMasked(Opcode.Text, Buffer.from([0xff]), mask), "close:1007"],
        [encodeMasked(Opcode.Binary, Buffer.alloc(101), mask), "close:1009"]
      ]
      for (const [frame, expected] of cases) {
        const client = yield* server.connect()
        const frames = framesOf(yield* exchange(client, Buffer.concat([handshake, frame]), []))
        assert.deepStrictEqual(frames, [expected])
      }
    }).pipe(Effect.scoped))
})

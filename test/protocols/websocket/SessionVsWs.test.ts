/**
 * Whole WebSocket sessions against the `ws` package as the reference (a
 * property over real sockets): the same client bytes — messages fragmented
 * with control frames between the fragments, pings, invalid UTF-8, reserved
 * bits, unknown opcodes, stray continuations, and close frames with every
 * kind of code and reason a peer may send — go to a fiberd echo route and to
 * a `ws` echo server, half of the sessions with permessage-deflate agreed
 * (compressed messages, compressed garbage, RSV1 on a continuation). Both
 * must echo the same messages, answer the same pings and close with the same
 * code.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import * as Net from "node:net"
import * as Zlib from "node:zlib"
import { type WebSocket, WebSocketServer } from "ws"
import * as Router from "../../../src/protocols/http/Router.ts"
import * as HttpServer from "../../../src/protocols/http/Server.ts"
import { encodeMasked, Opcode } from "../../../src/protocols/websocket/Frame.ts"
import { echo, readServerFrames } from "../../support/webSocket.ts"

const MASK = Buffer.from([0x11, 0x22, 0x33, 0x44])
const frame = (opcode: number, payload: Uint8Array, fin = true) => encodeMasked(opcode, payload, MASK, fin)

/** Client frames: a step of a session, as bytes. */
const closeCodes = fc.constantFrom(0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1011, 1012, 1014, 1015, 1016, 2999, 3000, 4000, 4999, 5000, 65535)
const reason = fc.oneof(
  fc.string({ maxLength: 20 }).map((s) => Buffer.from(s, "utf8")),
  fc.constant(Buffer.from([0xc3, 0x28])), // invalid UTF-8
  fc.constant(Buffer.alloc(0))
)
const utf8Text = fc.string({ unit: fc.constantFrom("a", "é", "✓", "😀", " "), maxLength: 40 }).map((s) => Buffer.from(s, "utf8"))

/** Steps that need permessage-deflate agreed: a compressed message (each on its own), RSV1 on a continuation. */
const compressedStep: fc.Arbitrary<{ readonly label: string; readonly bytes: Buffer }> = fc.oneof(
  fc.record({ binary: fc.boolean(), body: utf8Text }).map(({ binary, body }) => {
    const deflated = Zlib.deflateRawSync(body, { finishFlush: Zlib.constants.Z_SYNC_FLUSH })
    return { label: `compressed ${binary ? "binary" : "text"}(${body.toString("hex")})`, bytes: encodeMasked(binary ? Opcode.Binary : Opcode.Text, deflated.subarray(0, deflated.byteLength - 4), MASK, true, true) }
  }),
  fc.constant({ label: "compressed garbage", bytes: encodeMasked(Opcode.Binary, Buffer.from([0xff, 0xfe, 0xfd]), MASK, true, true) }),
  fc.constant({
    label: "RSV1 on a continuation",
    bytes: Buffer.concat([frame(Opcode.Text, Buffer.from("a"), false), encodeMasked(Opcode.Continuation, Buffer.from("b"), MASK, true, true)])
  })
)

const step: fc.Arbitrary<{ readonly label: string; readonly bytes: Buffer }> = fc.oneof(
  // a message in 1-3 fragments, a ping possibly between two of them
  fc.record({ binary: fc.boolean(), body: fc.oneof(utf8Text, fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b))), cuts: fc.integer({ min: 1, max: 3 }), pingAt: fc.integer({ min: -1, max: 2 }) })
    .map(({ binary, body, cuts, pingAt }) => {
      const size = Math.ceil(body.byteLength / cuts) || 1
      const parts: Array<Buffer> = []
      for (let i = 0; i < cuts; i++) parts.push(body.subarray(i * size, (i + 1) * size))
      const frames: Array<Buffer> = []
      parts.forEach((part, i) => {
        frames.push(frame(i === 0 ? (binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation, part, i === parts.length - 1))
        if (i === pingAt && i < parts.length - 1) frames.push(frame(Opcode.Ping, Buffer.from("between")))
      })
      return { label: `${binary ? "binary" : "text"}(${body.toString("hex")}, ${cuts} frames${pingAt >= 0 ? ", a ping inside" : ""})`, bytes: Buffer.concat(frames) }
    }),
  fc.uint8Array({ maxLength: 125 }).map((p) => ({ label: `ping(${Buffer.from(p).toString("hex")})`, bytes: frame(Opcode.Ping, p) })),
  fc.uint8Array({ maxLength: 20 }).map((p) => ({ label: "pong", bytes: frame(Opcode.Pong, p) })),
  fc.constant({ label: "text(invalid UTF-8)", bytes: frame(Opcode.Text, Buffer.from([0x66, 0xff, 0x6f])) }),
  fc.constant({ label: "a stray continuation", bytes: frame(Opcode.Continuation, Buffer.from("x")) }),
  fc.constant({ label: "RSV2 set", bytes: (() => { const f = frame(Opcode.Text, Buffer.from("x")); f[0] = f[0]! | 0x20; return f })() }),
  fc.constant({ label: "opcode 3", bytes: frame(3, Buffer.from("x")) }),
  fc.constant({ label: "a fragmented ping", bytes: frame(Opcode.Ping, Buffer.from("x"), false) }),
  fc.tuple(closeCodes, reason).map(([code, why]) => {
    const payload = code === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([code >> 8, code & 0xff]), why])
    return { label: `close(${code === 0 ? "no code" : code}, ${why.toString("hex")})`, bytes: frame(Opcode.Close, payload) }
  }),
  fc.constant({ label: "close(1 byte)", bytes: frame(Opcode.Close, Buffer.from([3])) })
)

/** What a server did: the messages and pongs it sent, in order, and its close code. */
const outcome = (reply: Buffer): string => {
  const seen: Array<string> = []
  for (const f of readServerFrames(reply, reply.toString("latin1").indexOf("\r\n\r\n") + 4)) {
    // a server may compress what it echoes (RSV1): compare what the messages say
    const payload = f.compressed ? Zlib.inflateRawSync(Buffer.concat([f.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: Zlib.constants.Z_SYNC_FLUSH }) : f.payload
    if (f.opcode === Opcode.Close) {
      seen.push(`close ${payload.byteLength >= 2 ? payload.readUInt16BE(0) : "(no code)"}`)
      break
    }
    seen.push(`${f.opcode === Opcode.Pong ? "pong" : f.opcode === Opcode.Text ? "text" : "binary"} ${payload.toString("hex")}`)
  }
  return seen.join("\n")
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ=="
/** Opens a WebSocket by hand, sends `bytes`, and collects what comes back until the server closes the connection. */
const session = (port: number, path: string, bytes: Buffer, deflate: boolean) =>
  new Promise<Buffer>((resolve) => {
    const offer = deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n" : ""
    const socket = Net.connect({ host: "127.0.0.1", port }, () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${offer}\r\n`, () => socket.write(bytes)))
    const chunks: Array<Buffer> = []
    socket.on("data", (d: Buffer) => {
      chunks.push(d)
      // the server's close frame ends the session for this comparison
      const all = Buffer.concat(chunks)
      if (/\r\n\r\n/.test(all.toString("latin1")) && outcome(all).includes("close")) socket.destroy()
    })
    socket.on("error", () => {})
    socket.on("close", () => resolve(Buffer.concat(chunks)))
  })

describe("WebSocket sessions vs ws", () => {
  it.live("for any client frames, fiberd and ws echo the same messages, answer the same pings and close with the same code", () =>
    Effect.gen(function*() {
      const server = yield* HttpServer.listen(Router.make([Router.ws("/", echo, { controlFramesPerSecond: 1000 })]), { listen: { name: "ws-vs" } })
      const ours = (server.listener.address as { port: number }).port
      const reference = yield* Effect.acquireRelease(
        Effect.callback<WebSocketServer>((resume) => {
          const wss: WebSocketServer = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: true }, () => resume(Effect.succeed(wss)))
          wss.on("connection", (client: WebSocket) => {
            client.on("error", () => {}) // a protocol error: ws closes with its code (what the test compares)
            client.on("message", (data: Buffer, isBinary: boolean) => client.send(data, { binary: isBinary }))
          })
        }),
        (wss) => Effect.callback<void>((resume) => wss.close(() => resume(Effect.void)))
      )
      const theirs = (reference.address() as Net.AddressInfo).port
      yield* Effect.promise(() =>
        fc.assert(fc.asyncProperty(
          // half the sessions agree on permessage-deflate, and then send compressed messages too
          fc.boolean().chain((deflate) => fc.tuple(fc.constant(deflate), fc.array(deflate ? fc.oneof(step, compressedStep) : step, { maxLength: 6 }))),
          async ([deflate, steps]) => {
            // every session ends with a clean close, unless a step closed it before
            const bytes = Buffer.concat([...steps.map((s) => s.bytes), frame(Opcode.Close, Buffer.from([0x03, 0xe8]))])
            const [a, b] = await Promise.all([session(ours, "/", bytes, deflate), session(theirs, "/", bytes, deflate)])
            assert.strictEqual(outcome(a), outcome(b), `${deflate ? "deflate | " : ""}${steps.map((s) => s.label).join(" | ")}`)
          }
        ), { numRuns: 300 }))
    }).pipe(Effect.scoped), 60_000)
})

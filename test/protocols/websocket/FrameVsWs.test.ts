/**
 * fiberd's frame codec against the `ws` package as the reference (property
 * tests): frames that ws's client-side Sender makes (masked, with control
 * frames between fragments) decode, under any chunking, into the messages and
 * control frames ws's server-side Receiver reads; frames fiberd encodes
 * (server side) are read by ws's client-side Receiver as the same messages.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { createRequire } from "node:module"
import { encode, FrameDecoder, Opcode } from "../../../src/protocols/websocket/Frame.ts"
import { Arbitraries } from "../../../src/testkit/index.ts"

const ws = createRequire(import.meta.url)("ws") as {
  Sender: { frame: (data: Buffer, options: Record<string, unknown>) => Array<Buffer> }
  Receiver: new(options: Record<string, unknown>) => {
    on: (event: string, f: (...args: Array<any>) => void) => void
    write: (chunk: Buffer) => void
  }
}

/** A message as fragments: opcode of the first frame, then continuations. */
const message = fc.record({
  binary: fc.boolean(),
  parts: fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 })
})

/** Cuts `bytes` at the given points (modulo its length), with the testkit's splitter. */
const cut = (bytes: Buffer, at: ReadonlyArray<number>) =>
  Arbitraries.splitAt(bytes, at.map((p) => p % (bytes.byteLength + 1))).parts.map((p) => Buffer.from(p))

describe("frame codec vs the ws package", () => {
  it("ws's masked client frames, with control frames between fragments, in any chunking, decode to what ws's server Receiver reads", () => {
    fc.assert(fc.property(fc.array(message, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(5000), { maxLength: 12 }), fc.array(fc.nat(3), { maxLength: 6 }), (messages, points, pings) => {
      const wire: Array<Buffer> = []
      messages.forEach((m, k) => {
        m.parts.forEach((part, i) => {
          const opcode = i === 0 ? (m.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation
          const fin = i === m.parts.length - 1
          wire.push(...ws.Sender.frame(Buffer.from(part), { fin, mask: true, opcode, readOnly: false, rsv1: false }))
          // a ping or pong between fragments (control frames may interleave, RFC 6455 §5.4)
          if (pings[k] !== undefined && pings[k] === i) {
            wire.push(...ws.Sender.frame(Buffer.from(`p${k}`), { fin: true, mask: true, opcode: i % 2 === 0 ? Opcode.Ping : Opcode.Pong, readOnly: false, rsv1: false }))
          }
        })
      })
      const expected: Array<string> = []
      const receiver = new ws.Receiver({ isServer: true, binaryType: "nodebuffer", skipUTF8Validation: true, maxPayload: 1 << 20 })
      receiver.on("message", (data: Buffer, isBinary: boolean) => expected.push(`${isBinary ? "binary" : "text"}/${Buffer.from(data).toString("hex")}`))
      receiver.on("ping", (data: Buffer) => expected.push(`9/${data.toString("hex")}`))
      receiver.on("pong", (data: Buffer) => expected.push(`10/${data.toString("hex")}`))
      receiver.on("error", (e: Error) => assert.fail(`ws refused its own frames: ${e.message}`))
      receiver.write(Buffer.concat(wire))
      const decoder = new FrameDecoder({ maxMessage: 1 << 20, maxFragments: 64 })
      const got: Array<string> = []
      for (const chunk of cut(Buffer.concat(wire), points)) {
        decoder.push(chunk)
        for (let d = decoder.next(); d !== undefined; d = decoder.next()) {
          assert.notStrictEqual(d._tag, "Error")
          if (d._tag === "Message") got.push(`${d.binary ? "binary" : "text"}/${Buffer.from(d.payload).toString("hex")}`)
          if (d._tag === "Control") got.push(`${d.opcode}/${Buffer.from(d.payload).toString("hex")}`)
        }
      }
      assert.deepStrictEqual(got, expected)
    }), { numRuns: 300 })
  })

  it("fiberd's server frames are read by ws's client Receiver as the same messages", () => {
    fc.assert(fc.property(fc.array(message, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(5000), { maxLength: 12 }), (messages, points) => {
      // ws validates text as UTF-8: text messages here are valid UTF-8 made from the bytes
      const texts = messages.map((m) => (m.binary ? undefined : Buffer.from(Buffer.concat(m.parts.map((p) => Buffer.from(p))).toString("utf8"), "utf8")))
      const wire: Array<Buffer> = []
      messages.forEach((m, k) => {
        const whole = m.binary ? Buffer.concat(m.parts.map((p) => Buffer.from(p))) : texts[k]!
        // re-split the whole message like its parts (sizes), so fragmentation is exercised
        let at = 0
        m.parts.forEach((part, i) => {
          const size = i === m.parts.length - 1 ? whole.byteLength - at : Math.min(part.byteLength, whole.byteLength - at)
          const opcode = i === 0 ? (m.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation
          wire.push(encode(opcode, whole.subarray(at, at + size), i === m.parts.length - 1))
          at += size
        })
      })
      const received: Array<string> = []
      const receiver = new ws.Receiver({ isServer: false, binaryType: "nodebuffer" })
      receiver.on("message", (data: Buffer, isBinary: boolean) => received.push(`${isBinary}/${Buffer.from(data).toString("hex")}`))
      receiver.on("error", (e: Error) => assert.fail(`ws refused fiberd's frames: ${e.message}`))
      for (const chunk of cut(Buffer.concat(wire), points)) receiver.write(chunk)
      const expected = messages.map((m, k) =>
        `${m.binary}/${(m.binary ? Buffer.concat(m.parts.map((p) => Buffer.from(p))) : texts[k]!).toString("hex")}`
      )
      assert.deepStrictEqual(received, expected)
    }), { numRuns: 300 })
  })
})

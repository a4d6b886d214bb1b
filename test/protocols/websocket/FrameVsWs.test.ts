/**
 * fiberd's frame codec against the `ws` package as the reference (property
 * tests): frames that ws's client-side Sender makes (masked) parse, under any
 * chunking, into the same opcode, FIN and payload; frames fiberd encodes
 * (server side) are read by ws's client-side Receiver as the same messages.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { createRequire } from "node:module"
import { encode, Opcode, parse } from "../../../src/protocols/websocket/Frame.ts"
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
  it("ws's masked client frames, in any chunking, parse to the same frames", () => {
    fc.assert(fc.property(fc.array(message, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(5000), { maxLength: 12 }), (messages, points) => {
      const expected: Array<string> = []
      const wire: Array<Buffer> = []
      for (const m of messages) {
        m.parts.forEach((part, i) => {
          const opcode = i === 0 ? (m.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation
          const fin = i === m.parts.length - 1
          wire.push(...ws.Sender.frame(Buffer.from(part), { fin, mask: true, opcode, readOnly: false, rsv1: false }))
          expected.push(`${opcode}/${fin}/${Buffer.from(part).toString("hex")}`)
        })
      }
      let buffer = Buffer.alloc(0)
      const got: Array<string> = []
      for (const chunk of cut(Buffer.concat(wire), points)) {
        buffer = Buffer.concat([buffer, chunk])
        while (true) {
          const p = parse(buffer, 0, buffer.byteLength, 1 << 20)
          assert.notStrictEqual(p._tag, "Error")
          if (p._tag !== "Frame") break
          got.push(`${p.frame.opcode}/${p.frame.fin}/${Buffer.from(p.frame.payload).toString("hex")}`)
          buffer = buffer.subarray(p.end)
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

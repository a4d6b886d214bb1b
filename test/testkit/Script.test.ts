/**
 * The testkit's runner and arbitraries: outputs, endings, Exits, TestClock
 * timeouts, slow readers, resets, and readable counterexamples.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import * as fc from "fast-check"
import type { Connection } from "../../src/io/Connection.ts"
import { Arbitraries, Property, Script, Show } from "../../src/testkit/index.ts"
import * as Echo from "../../src/protocols/echo.ts"

/** Writes `size` bytes in one go, then ends (a server that outpaces a slow client). */
const firehose = (size: number) => (conn: Connection) =>
  Effect.gen(function*() {
    for (let i = 0; i < size; i += 10) yield* conn.write(Buffer.from("0123456789"))
    yield* conn.endWrite
  })

describe("Script.run", () => {
  it.effect("reports output, the server's half-close and the handler's Exit", () =>
    Effect.gen(function*() {
      const result = yield* Script.run(Echo.handler, [Script.send("hello "), Script.send("world"), Script.endWrite])
      assert.strictEqual(result.text, "hello world")
      assert.isTrue(result.serverEnded)
      assert.isTrue(result.exit !== undefined && Exit.isSuccess(result.exit))
    }))

  it.effect("a handler still waiting when the script ends is reported as running (and then interrupted)", () =>
    Effect.gen(function*() {
      const result = yield* Script.run(Echo.handler, [Script.send("no end")])
      assert.strictEqual(result.text, "no end")
      assert.isUndefined(result.exit)
      assert.isFalse(result.serverEnded)
    }))

  it.effect("idle timeout fires on TestClock time, without waiting", () =>
    Effect.gen(function*() {
      const quiet = yield* Script.run(Echo.handler, [Script.send("a"), Script.wait("29 seconds"), Script.send("b")], {
        idleTimeout: "30 seconds"
      })
      assert.isFalse(quiet.timedOut)
      assert.strictEqual(quiet.text, "ab")
      const idle = yield* Script.run(Echo.handler, [Script.send("a"), Script.wait("31 seconds"), Script.send("b")], {
        idleTimeout: "30 seconds"
      })
      assert.isTrue(idle.timedOut)
      assert.strictEqual(idle.text, "a")
      assert.isTrue(idle.exit !== undefined && Exit.hasInterrupts(idle.exit))
    }))

  it.effect("a slow reader pushes back on the handler: it cannot finish until the client has read enough", () =>
    Effect.gen(function*() {
      const stalled = yield* Script.run(firehose(1000), [Script.read(10)], { bufferSize: 100, reader: "manual" })
      assert.isUndefined(stalled.exit, "the handler must be blocked on a full buffer")
      const steps = Array.from({ length: 120 }, () => Script.read(10))
      const drained = yield* Script.run(firehose(1000), steps, { bufferSize: 100, reader: "manual" })
      assert.strictEqual(drained.output.byteLength, 1000)
      assert.isTrue(drained.exit !== undefined && Exit.isSuccess(drained.exit))
    }))

  it.effect("a reset fails the handler's I/O with ConnectionReset", () =>
    Effect.gen(function*() {
      const result = yield* Script.run(Echo.handler, [Script.send("x"), Script.reset])
      assert.isTrue(result.reset)
      const error = result.exit !== undefined && Exit.isFailure(result.exit)
        ? Option.getOrUndefined(Exit.findErrorOption(result.exit))
        : undefined
      assert.strictEqual(error?._tag, "ConnectionReset")
    }))
})

describe("Arbitraries", () => {
  it("splitAt and Chunks print bytes escaped with boundaries marked", () => {
    const chunks = Arbitraries.splitAt("GET / HTTP/1.1\r\n\x00\xff", [8])
    assert.deepStrictEqual(chunks.strings, ["GET / HT", "TP/1.1\r\n\x00\xc3\xbf"])
    assert.strictEqual(fc.stringify(chunks), "\"GET / HT\" | \"TP/1.1\\r\\n\\x00\\xc3\\xbf\"")
    assert.strictEqual(Show.chunks([]), "(no bytes)")
  })

  it("chunkings always reassemble to the input and include one byte at a time", () => {
    const input = "hello\nworld\n"
    let bytewise = false
    fc.assert(fc.property(Arbitraries.chunkings(input), (c) => {
      if (c.parts.length === input.length) bytewise = true
      return Buffer.from(c.bytes).toString() === input && c.parts.every((p) => p.byteLength > 0)
    }), { numRuns: 300 })
    assert.isTrue(bytewise)
  })

  it("interleavings keep each client's own order", () => {
    fc.assert(fc.property(Arbitraries.interleavings([["a1", "a2", "a3"], ["b1", "b2"]]), (turns) => {
      const of = (c: number) => turns.filter((t) => t.client === c).map((t) => t.item)
      return turns.length === 5 && of(0).join() === "a1,a2,a3" && of(1).join() === "b1,b2"
    }))
  })

  it.effect("echo returns any bytes under any chunking, with resets and slow readers too (Property.assert)", () =>
    Effect.gen(function*() {
      yield* Property.assert([Arbitraries.chunked(fc.uint8Array({ maxLength: 200 }))], (input) =>
        Script.run(Echo.handler, [...input.steps, Script.endWrite]).pipe(
          Effect.map((r) => Buffer.from(r.output).equals(Buffer.from(input.bytes)) && r.serverEnded)
        ))
      const steps = Arbitraries.splitAt("abcdefghij", [3, 6]).steps
      yield* Property.assert([Arbitraries.withResetAt(steps)], (script) =>
        Script.run(Echo.handler, script).pipe(Effect.map((r) => r.reset && "abcdefghij".startsWith(r.text))))
      yield* Property.assert([Arbitraries.withSlowReads([...steps, Script.endWrite], 4)], (script) =>
        Script.run(Echo.handler, script, { bufferSize: 4, reader: "manual" }).pipe(
          Effect.map((r) => r.text === "abcdefghij")
        ))
    }))
})

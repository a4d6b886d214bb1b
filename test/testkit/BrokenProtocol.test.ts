/**
 * Proof that the testkit catches what example tests miss: a line protocol
 * with a classic framing bug (it looks for the CRLF delimiter only in the
 * newest chunk, so a delimiter split across two chunks goes unseen) passes
 * an example-based test, and the chunking property fails on it and shrinks
 * to the minimal split.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import type { Connection, ConnectionError } from "../../src/io/Connection.ts"
import { Arbitraries, Property, Script } from "../../src/testkit/index.ts"

/** Answers `OK <line>` per CRLF-terminated line. The bug: the delimiter is searched for in the new chunk only. */
const brokenLines = (conn: Connection): Effect.Effect<void, ConnectionError> =>
  Effect.gen(function*() {
    let pending = ""
    while (true) {
      const chunk = yield* conn.read
      if (Option.isNone(chunk)) return yield* conn.endWrite
      const text = Buffer.from(chunk.value).toString("latin1")
      pending += text
      if (!text.includes("\r\n")) continue // BUG: should search `pending`
      const lines = pending.split("\r\n")
      pending = lines.pop()!
      for (const line of lines) yield* conn.write(Buffer.from(`OK ${line}\r\n`, "latin1"))
    }
  })

const input = "hi\r\nyo\r\n"
const expected = "OK hi\r\nOK yo\r\n"

describe("testkit catches a delimiter split across chunks", () => {
  it.effect("an example-based test passes on the broken protocol", () =>
    Effect.gen(function*() {
      const result = yield* Script.run(brokenLines, [Script.send(input), Script.endWrite])
      assert.strictEqual(result.text, expected)
    }))

  it.effect("the chunking property fails, and shrinks to the minimal split", () =>
    Effect.gen(function*() {
      const details = yield* Property.check(
        [Arbitraries.chunkings(input)],
        (chunks) =>
          Script.run(brokenLines, [...chunks.steps, Script.endWrite]).pipe(Effect.map((r) => r.text === expected)),
        { seed: 42, numRuns: 200 }
      )
      assert.isTrue(details.failed, "the property must catch the bug")
      const [counterexample] = details.counterexample!
      assert.deepStrictEqual(counterexample.strings, ["hi\r\nyo\r", "\n"])
      assert.strictEqual(String(counterexample), "\"hi\\r\\nyo\\r\" | \"\\n\"")
    }))
})

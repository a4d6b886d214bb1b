// Testing your own line protocol with fiberd/testkit: run with `npm test`.
import { assert, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import type { Connection, ConnectionError } from "fiberd"
import { Arbitraries, Property, Script } from "fiberd/testkit"

// The protocol under test: each LF-terminated line comes back upper-cased.
const shout = (conn: Connection): Effect.Effect<void, ConnectionError> =>
  Effect.gen(function*() {
    let pending = ""
    while (true) {
      const chunk = yield* conn.read
      if (Option.isNone(chunk)) return yield* conn.endWrite
      const lines = (pending + Buffer.from(chunk.value).toString("latin1")).split("\n")
      pending = lines.pop()!
      for (const line of lines) yield* conn.write(Buffer.from(line.toUpperCase() + "\n", "latin1"))
    }
  })

const line = fc.string({ unit: fc.constantFrom("a", "b", "z", " "), maxLength: 8 })

it.effect("every line comes back upper-cased, however the input is chunked", () =>
  Property.assert(
    [fc.array(line, { maxLength: 5 }).chain((ls) => Arbitraries.chunkings(ls.map((l) => l + "\n").join("")))],
    (input) =>
      Script.run(shout, [...input.steps, Script.endWrite]).pipe(
        Effect.map((r) => {
          const sent = Buffer.from(input.bytes).toString("latin1")
          assert.strictEqual(r.text, sent.toUpperCase(), `input ${input}`)
          assert.isTrue(r.serverEnded)
        })
      )
  ))

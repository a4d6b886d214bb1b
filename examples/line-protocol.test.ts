// Testing your own line protocol with fiberd/testkit: run with `npm test`.
import { assert, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import { Codec, type Connection, type ConnectionError, Lines } from "fiberd"
import { Arbitraries, Property, Script } from "fiberd/testkit"

// The protocol under test: each line comes back upper-cased (framing by the Lines codec: UTF-8 safe).
const shout = (conn: Connection): Effect.Effect<void, ConnectionError> =>
  Effect.gen(function*() {
    const next = Codec.reader(conn, new Lines.Decoder({ maxLength: 1024 }))
    while (true) {
      const line = yield* next
      if (Option.isNone(line)) return yield* conn.endWrite
      if (line.value._tag === "Line") yield* conn.write(Buffer.from(line.value.text.toUpperCase() + "\n"))
    }
  })

const line = fc.string({ unit: fc.constantFrom("a", "b", "z", " ", "é", "ß"), maxLength: 8 })

it.effect("every line comes back upper-cased, however the input is chunked", () =>
  Property.assert(
    [fc.array(line, { maxLength: 5 }).chain((ls) => Arbitraries.chunkings(ls.map((l) => l + "\n").join("")))],
    (input) =>
      Script.run(shout, [...input.steps, Script.endWrite]).pipe(
        Effect.map((r) => {
          const sent = Buffer.from(input.bytes).toString("utf8")
          assert.strictEqual(r.text, sent.toUpperCase(), `input ${input}`)
          assert.isTrue(r.serverEnded)
        })
      )
  ))

/**
 * Daytime (RFC 867) through the testkit, with TestClock setting the time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Daytime from "../../src/protocols/daytime.ts"
import { Property, Script } from "../../src/testkit/index.ts"

describe("daytime (RFC 867)", () => {
  it("formats a known instant in UTC", () => {
    assert.strictEqual(Daytime.format(Date.UTC(2026, 10, 23, 1, 2, 3)), "Monday, November 23, 2026 01:02:03-UTC")
  })

  it.effect("RFC 867: on connect, one line with the current time, then the server closes; input is ignored", () =>
    Property.assert(
      [fc.integer({ min: 0, max: Date.UTC(2200, 0, 1) }), fc.string({ maxLength: 20 })],
      (now, noise) =>
        Effect.gen(function*() {
          yield* TestClock.setTime(now)
          const r = yield* Script.run(Daytime.handler, noise === "" ? [] : [Script.send(noise)])
          assert.strictEqual(r.text, `${Daytime.format(now)}\r\n`)
          assert.match(r.text, /^[A-Z][a-z]+day, [A-Z][a-z]+ \d{1,2}, \d{4} \d\d:\d\d:\d\d-UTC\r\n$/)
          assert.isTrue(r.serverEnded)
          assert.isTrue(r.exit !== undefined && Exit.isSuccess(r.exit))
        })
    ))
})

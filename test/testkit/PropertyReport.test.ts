/**
 * A failing property says why: the body's own failure (expected vs actual)
 * appears in the report once, beside the counterexample, and nothing else
 * is logged for it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { Property } from "../../src/testkit/index.ts"
import { type CapturedLog, captureLogs } from "../support/logs.ts"

describe("Property reports", () => {
  it.effect("the body's assertion message is in the report, once, and not logged", () =>
    Effect.gen(function*() {
      const logged: Array<CapturedLog> = []
      const details = yield* Property.check([fc.integer({ min: 0, max: 10 })], (n) =>
        Effect.sync(() => assert.strictEqual(n * 2, 7, "doubled")), { seed: 42 }).pipe(Effect.provide(captureLogs(logged)))
      assert.isTrue(details.failed)
      const report = Property.failureReport(details).message
      assert.include(report, "Counterexample: [0]")
      assert.strictEqual(report.split("doubled: expected +0 to equal 7").length - 1, 1, report)
      assert.deepStrictEqual(logged.map((l) => l.message), [])
    }))

  it.effect("a body that fails with an Effect error shows it too", () =>
    Effect.gen(function*() {
      const details = yield* Property.check([fc.constant(1)], () => Effect.fail("the connection broke"))
      assert.include(Property.failureReport(details).message, "the connection broke")
    }))

  it("Property.run, for vitest's own it: the report once, as the rejection (nothing logged)", async () => {
    const failing = Property.run([fc.integer({ min: 0, max: 10 })], (n) => Effect.sync(() => assert.strictEqual(n * 2, 7, "doubled")), { seed: 42 })
    const error = await failing().then(() => undefined, (e: Error) => e)
    assert.instanceOf(error, Error)
    assert.include(error!.message, "Counterexample: [0]")
    assert.include(error!.message, "doubled: expected +0 to equal 7")
    await Property.run([fc.integer()], (n) => Effect.succeed(n === n))()
  })
})

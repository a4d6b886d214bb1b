/**
 * Echo (RFC 862) through the testkit: whatever arrives, however chunked,
 * goes back unchanged; EOF from the client ends the server's side too.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option } from "effect"
import * as fc from "fast-check"
import * as Echo from "../../src/protocols/echo.ts"
import { Arbitraries, Property, Script } from "../../src/testkit/index.ts"

describe("echo (RFC 862)", () => {
  it.effect("RFC 862: any data received is sent back, under any chunking; EOF ends the reply", () =>
    Property.assert([Arbitraries.chunked(fc.uint8Array({ maxLength: 300 }))], (input) =>
      Script.run(Echo.handler, [...input.steps, Script.endWrite]).pipe(Effect.map((r) =>
        Buffer.from(r.output).equals(Buffer.from(input.bytes)) && r.serverEnded &&
        r.exit !== undefined && Exit.isSuccess(r.exit)
      )), { numRuns: 200 }))

  it.effect("a slow reader with a small buffer slows the echo down without losing or reordering bytes", () =>
    Property.assert(
      [
        fc.uint8Array({ minLength: 1, maxLength: 100 }).chain((bytes) =>
          Arbitraries.chunkings(bytes).chain((chunks) =>
            Arbitraries.withSlowReads([...chunks.steps, Script.endWrite], 8)
          ).map((steps) => ({ bytes, steps: [...steps, Script.readRest] }))
        )
      ],
      ({ bytes, steps }) =>
        Script.run(Echo.handler, steps, { bufferSize: 8, reader: "manual" }).pipe(
          Effect.map((r) => Buffer.from(r.output).equals(Buffer.from(bytes)) && r.serverEnded)
        ),
      { numRuns: 100 }
    ))

  it.effect("a reset mid-stream ends the handler with ConnectionReset, never a crash", () =>
    Property.assert([Arbitraries.withResetAt(Arbitraries.splitAt("0123456789", [2, 5, 7]).steps)], (steps) =>
      Script.run(Echo.handler, steps).pipe(Effect.map((r) => {
        assert.isTrue(r.reset)
        assert.isTrue("0123456789".startsWith(r.text))
        if (r.exit === undefined || Exit.isSuccess(r.exit)) return true
        // a failure, never a defect: the reset itself (or the interruption the listener sends with it)
        assert.isFalse(Cause.hasDies(r.exit.cause), Cause.pretty(r.exit.cause))
        const error = Cause.findErrorOption(r.exit.cause)
        assert.isTrue(Cause.hasInterruptsOnly(r.exit.cause) || (Option.isSome(error) && error.value._tag === "ConnectionReset"), Cause.pretty(r.exit.cause))
        return true
      }))))
})

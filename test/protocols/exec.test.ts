/**
 * exec: stdin/stdout wired to the connection, maxInstances, killing the child
 * when the connection goes away.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import * as Exec from "../../src/protocols/exec.ts"
import { MemoryConnection, Script } from "../../src/testkit/index.ts"
import { type CapturedLog, captureLogs } from "../support/logs.ts"

describe("exec", () => {
  it.effect("stdin and stdout are wired to the connection (wc -c counts what the client sent)", () =>
    Effect.gen(function*() {
      const wc = Exec.make({ name: "wc", command: ["wc", "-c"] })
      const r = yield* Script.run(wc.handler, [Script.send("x".repeat(5000)), Script.endWrite], { realIo: true })
      assert.strictEqual(r.text.trim(), "5000")
      assert.strictEqual(wc.running(), 0)
    }))

  it.effect("maxInstances: a connection over the cap gets a busy line and is closed", () =>
    Effect.gen(function*() {
      const cat = Exec.make({ name: "cat", command: ["cat"], maxInstances: 1 })
      const { client, server } = MemoryConnection.makePair()
      const first = yield* Effect.forkChild(cat.handler(server), { startImmediately: true })
      yield* client.write(Buffer.from("hold"))
      // the event: cat echoed our bytes, so its child is running
      const echoed = yield* client.read
      assert.strictEqual(Option.isSome(echoed) && Buffer.from(echoed.value).toString(), "hold")
      assert.strictEqual(cat.running(), 1)
      const second = yield* Script.run(cat.handler, [], { realIo: true })
      assert.include(second.text, "*** busy: 1 instances of cat are running")
      assert.isTrue(second.serverEnded)
      yield* Fiber.interrupt(first) // the first connection goes away: its child is killed and reaped
      assert.strictEqual(cat.running(), 0, "the first child was killed when its connection ended")
    }))

  it.effect("the child's stderr goes to the error log, a line at a time", () => {
    const logs: Array<CapturedLog> = []
    return Effect.gen(function*() {
      const noisy = Exec.make({ name: "noisy", command: ["sh", "-c", "echo first >&2; echo second >&2; cat"] })
      const r = yield* Script.run(noisy.handler, [Script.send("data"), Script.endWrite], { realIo: true })
      assert.strictEqual(r.text, "data")
      const lines = logs.map((l) => l.message).filter((m) => m.startsWith("noisy["))
      assert.deepStrictEqual(lines.map((m) => m.replace(/^noisy\[\d+\]: /, "")), ["first", "second"])
    }).pipe(Effect.provide(captureLogs(logs)))
  })

  it.effect("a command that cannot be run is logged and the client told, not a crash", () =>
    Effect.gen(function*() {
      const nope = Exec.make({ name: "nope", command: ["/nonexistent/program"] })
      const r = yield* Script.run(nope.handler, [], { realIo: true })
      assert.include(r.text, "*** nope is unavailable")
      assert.isTrue(r.exit !== undefined && Exit.isSuccess(r.exit))
    }))
})

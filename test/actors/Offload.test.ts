/**
 * The offload pool with real worker threads: results and transfers, a job's
 * own error and a throw contained to their caller, a dying thread replaced
 * (its in-flight jobs fail with OffloadCrashed; `retries` re-runs them), the
 * admission bound, and the bundled PBKDF2 pool against the inline digest.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { Headers } from "../../src/protocols/http/Headers.ts"
import * as Request from "../../src/protocols/http/Request.ts"
import * as Offload from "../../src/actors/Offload.ts"
import * as Pbkdf2Route from "../../src/runtime/Pbkdf2Route.ts"
import { digest, Pbkdf2Jobs, threadEntry } from "../../src/runtime/Pbkdf2Jobs.ts"
import { TestJobs } from "../runtime/fixtures/offloadJobs.ts"

const entry = new URL("../runtime/fixtures/offloadThread.ts", import.meta.url)

/** A flag shared with a Block job: `started` resolves once the job runs on its thread, `release` lets it finish. */
const blocker = () => {
  const flag = new SharedArrayBuffer(8)
  const cell = new Int32Array(flag)
  const waiting = Atomics.waitAsync(cell, 1, 0)
  return {
    flag,
    started: Effect.promise(() => (waiting.async ? waiting.value : Promise.resolve(waiting.value))),
    release: Effect.sync(() => {
      Atomics.store(cell, 0, 1)
      Atomics.notify(cell, 0)
    })
  }
}

const failureTag = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String((exit.cause.reasons[0] as { error?: { _tag?: string } }).error?._tag) : "success"

describe("Offload", () => {
  it.effect("runs jobs on threads; a job's own error and a throw fail only their caller", () =>
    Effect.gen(function*() {
      const pool = yield* Offload.make(TestJobs, { entry, threads: 2 })
      const [ok, refused, threw, after] = yield* Effect.all([
        Effect.exit(pool.run((j) => j.Square({ n: 7 }))),
        Effect.exit(pool.run((j) => j.Square({ n: -1 }))),
        Effect.exit(pool.run((j) => j.Throw({ message: "kaboom" }))),
        Effect.exit(pool.run((j) => j.Square({ n: 3 })))
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual(ok, Exit.succeed(49), String(ok))
      assert.strictEqual(failureTag(refused), "Refused", String(refused))
      assert.strictEqual(failureTag(threw), "OffloadFailed")
      assert.include(String(threw), "kaboom")
      assert.deepStrictEqual(after, Exit.succeed(9))
      const stats = pool.stats()
      assert.deepStrictEqual([stats.completed, stats.failed, stats.crashed, stats.inFlight], [2, 2, 0, 0])
    }).pipe(Effect.scoped))

  it.effect("transfers buffers to the thread instead of copying them", () =>
    Effect.gen(function*() {
      const pool = yield* Offload.make(TestJobs, { entry })
      const data = new TextEncoder().encode("fibers")
      const out = yield* pool.run((j) => j.Upper({ data }))
      assert.strictEqual(new TextDecoder().decode(out), "FIBERS")
      assert.strictEqual(data.byteLength, 0, "the caller's buffer was transferred (detached)")
    }).pipe(Effect.scoped))

  for (const how of ["exit", "uncaught"] as const) {
    // live clock: Effect's worker client replaces a dead thread after a 1 s Schedule.spaced retry, which TestClock would hold forever
    it.live(`a thread that dies (${how}) fails the jobs in flight with OffloadCrashed and is replaced`, () =>
      Effect.gen(function*() {
        const pool = yield* Offload.make(TestJobs, { entry, threads: 2 })
        const b = blocker()
        const inFlight = yield* Effect.forkChild(Effect.exit(pool.run((j) => j.Block({ flag: b.flag }))))
        yield* b.started
        const died = yield* Effect.exit(pool.run((j) => j.Die({ how })))
        assert.strictEqual(failureTag(died), "OffloadCrashed")
        assert.strictEqual(failureTag(yield* Fiber.join(inFlight)), "OffloadCrashed", "Effect's worker client fails every call in flight")
        yield* b.release
        // the pool serves again: the dead thread was replaced
        for (let n = 0; n < 4; n++) assert.deepStrictEqual(yield* Effect.exit(pool.run((j) => j.Square({ n }))), Exit.succeed(n * n))
        assert.isAtLeast(pool.stats().crashed, 1)
      }).pipe(Effect.scoped), 30_000)
  }

  it.live("retries re-run a job that a crash failed", () =>
    Effect.gen(function*() {
      const pool = yield* Offload.make(TestJobs, { entry, threads: 2 })
      const b = blocker()
      const inFlight = yield* Effect.forkChild(Effect.exit(pool.run((j) => j.Block({ flag: b.flag }), { retries: 2 })))
      yield* b.started
      yield* Effect.exit(pool.run((j) => j.Die({ how: "exit" }))) // fails the blocked call: it is run again
      yield* b.release // the first run's thread finishes too; the retried run finds the flag set and answers
      assert.deepStrictEqual(yield* Fiber.join(inFlight), Exit.succeed("unblocked"))
      const stats = pool.stats()
      assert.isAtLeast(stats.crashed, 2, "the Die call and the first run of Block crashed")
      assert.strictEqual(stats.completed, 1)
    }).pipe(Effect.scoped), 30_000)

  it.effect("sheds load beyond threads + maxQueued with OffloadBusy", () =>
    Effect.gen(function*() {
      const pool = yield* Offload.make(TestJobs, { entry, threads: 1, maxQueued: 1 })
      const b = blocker()
      const running = yield* Effect.forkChild(pool.run((j) => j.Block({ flag: b.flag })))
      yield* b.started
      const queued = yield* Effect.forkChild(pool.run((j) => j.Square({ n: 2 })))
      while (pool.stats().inFlight < 2) yield* Effect.yieldNow // the forked job is admitted when its fiber first runs
      const refused = yield* Effect.exit(pool.run((j) => j.Square({ n: 3 })))
      assert.strictEqual(failureTag(refused), "OffloadBusy")
      assert.strictEqual(pool.stats().rejected, 1)
      yield* b.release
      assert.strictEqual(yield* Fiber.join(running), "unblocked")
      assert.strictEqual(yield* Fiber.join(queued), 4)
    }).pipe(Effect.scoped), 30_000)

  it.effect("the bundled PBKDF2 pool answers the same digest as the loop", () =>
    Effect.gen(function*() {
      const pool = yield* Offload.make(Pbkdf2Jobs, { entry: threadEntry })
      assert.strictEqual(yield* pool.run((j) => j.Pbkdf2({ rounds: 1000 })), digest(1000))
    }).pipe(Effect.scoped))
})

describe("GET /api/pbkdf2", () => {
  const request = (query: string) =>
    Request.make({ method: "GET", target: `/api/pbkdf2${query}`, minor: 1, headers: new Headers([], []), remote: { address: "127.0.0.1", port: 1, family: "IPv4" }, reader: Request.noBody })
  const answer = (app: ReturnType<typeof Pbkdf2Route.app>, query: string) =>
    app(request(query)).pipe(Effect.map((r) => ({ status: r.status, body: r.body._tag === "Bytes" ? new TextDecoder().decode(r.body.bytes) : r.body._tag })))

  it.effect("bounds rounds (400 with the reason), computes inline on request, answers 503 without a pool", () =>
    Effect.gen(function*() {
      const app = Pbkdf2Route.app(undefined)
      for (const q of ["", "?rounds=", "?rounds=abc", "?rounds=0", "?rounds=-5", `?rounds=${Pbkdf2Route.maxRounds + 1}`, "?rounds=1e3"]) {
        const r = yield* answer(app, q)
        assert.strictEqual(r.status, 400, q)
        assert.match(r.body, /^400 Bad Request: /)
      }
      assert.deepStrictEqual(yield* answer(app, "?rounds=1000&inline=1"), { status: 200, body: `${digest(1000)}\n` })
      assert.strictEqual((yield* answer(app, "?rounds=1000")).status, 503)
    }))

  it.effect("on the pool: the same digest as inline", () =>
    Effect.gen(function*() {
      const pool = yield* Offload.make(Pbkdf2Jobs, { entry: threadEntry })
      assert.deepStrictEqual(yield* answer(Pbkdf2Route.app(pool), "?rounds=2000"), { status: 200, body: `${digest(2000)}\n` })
    }).pipe(Effect.scoped))
})

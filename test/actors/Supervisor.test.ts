/**
 * Supervisor semantics against a small model of OTP's rules (fast-check):
 * random children, strategies, intensities and failure schedules on TestClock
 * time; restarts, stop order and the give-up decision must match the model.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Metric, Option, Queue } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Supervisor from "../../src/actors/Supervisor.ts"
import { Property } from "../../src/testkit/index.ts"
import { settle } from "../../src/testkit/Script.ts"

type Kind = "crash" | "normal"
interface Scenario {
  readonly children: ReadonlyArray<Supervisor.RestartType>
  readonly strategy: Supervisor.Strategy
  readonly maxRestarts: number
  readonly period: number
  readonly events: ReadonlyArray<{ readonly pick: number; readonly kind: Kind; readonly advance: number }>
}

// ---- the model -----------------------------------------------------------
interface ModelChild {
  readonly id: string
  readonly restart: Supervisor.RestartType
  running: boolean
  restarts: number
}
const model = (s: Scenario) => {
  const log: Array<string> = []
  const children: Array<ModelChild> = s.children.map((restart, i) => ({ id: `c${i}`, restart, running: true, restarts: 0 }))
  children.forEach((c) => log.push(`start ${c.id}`))
  const intensity: Array<number> = []
  let now = 0
  let gaveUp = false
  const picks: Array<string | undefined> = []
  for (const event of s.events) {
    now += event.advance
    const running = children.filter((c) => c.running)
    if (gaveUp || running.length === 0) {
      picks.push(undefined)
      continue
    }
    const child = running[event.pick % running.length]!
    picks.push(child.id)
    log.push(`exit ${child.id}`)
    child.running = false
    const crashed = event.kind === "crash"
    if (!(child.restart === "permanent" || (child.restart === "transient" && crashed))) {
      if (child.restart === "temporary") children.splice(children.indexOf(child), 1)
      continue
    }
    intensity.push(now)
    while (intensity.length > 0 && now - intensity[0]! > s.period) intensity.shift()
    if (intensity.length > s.maxRestarts) {
      gaveUp = true
      for (const c of [...children].reverse()) if (c.running) (log.push(`exit ${c.id}`), (c.running = false))
      continue
    }
    const at = children.indexOf(child)
    const affected = s.strategy === "one-for-one" ? [child] : s.strategy === "one-for-all" ? children.slice() : children.slice(at)
    const others = affected.filter((c) => c !== child)
    for (const c of [...others].reverse()) if (c.running) (log.push(`exit ${c.id}`), (c.running = false))
    for (const c of others) if (c.restart === "temporary") children.splice(children.indexOf(c), 1)
    for (const c of affected) {
      if (!children.includes(c)) continue
      log.push(`start ${c.id}`)
      c.running = true
      c.restarts++
    }
  }
  return { log, picks, gaveUp, children: children.map((c) => ({ id: c.id, restart: c.restart, status: (c.running ? "running" : "stopped") as "running" | "stopped", restarts: c.restarts })) }
}

// ---- the real supervisor, driven by the same schedule ----------------------
const runReal = (s: Scenario, picks: ReadonlyArray<string | undefined>) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const commands = new Map<string, Deferred.Deferred<void, string>>()
    const spec = (id: string, restart: Supervisor.RestartType): Supervisor.ChildSpec<string> => ({
      id,
      restart,
      start: Effect.gen(function*() {
        const command = yield* Deferred.make<void, string>()
        commands.set(id, command)
        yield* Effect.acquireRelease(Effect.sync(() => log.push(`start ${id}`)), () => Effect.sync(() => log.push(`exit ${id}`)))
        yield* Deferred.await(command)
      })
    })
    const sup = yield* Supervisor.make(
      { name: "prop", strategy: s.strategy, maxRestarts: s.maxRestarts, period: s.period },
      s.children.map((restart, i) => spec(`c${i}`, restart))
    )
    const gaveUp = yield* Effect.forkChild(Effect.exit(sup.await), { startImmediately: true })
    yield* settle(() => log.length)
    for (let i = 0; i < s.events.length; i++) {
      yield* TestClock.adjust(s.events[i]!.advance)
      const id = picks[i]
      if (id === undefined) continue
      const command = commands.get(id)!
      if (s.events[i]!.kind === "crash") yield* Deferred.fail(command, "boom")
      else yield* Deferred.succeed(command, undefined)
      yield* settle(() => log.length)
    }
    const exit = gaveUp.pollUnsafe()
    // sup.await only ever completes by failing, when the supervisor gives up
    return { log, gaveUp: exit !== undefined, children: yield* sup.children }
  })

const scenario: fc.Arbitrary<Scenario> = fc.record({
  children: fc.array(fc.constantFrom<Supervisor.RestartType>("permanent", "transient", "temporary"), { minLength: 1, maxLength: 4 }),
  strategy: fc.constantFrom<Supervisor.Strategy>("one-for-one", "one-for-all", "rest-for-one"),
  maxRestarts: fc.integer({ min: 0, max: 3 }),
  period: fc.integer({ min: 1000, max: 5000 }),
  events: fc.array(
    fc.record({ pick: fc.nat(3), kind: fc.constantFrom<Kind>("crash", "normal"), advance: fc.integer({ min: 0, max: 3000 }) }),
    { maxLength: 12 }
  )
})

describe("Supervisor", () => {
  it.effect("matches the OTP model: restarts, stop order and give-up, for random children and failure schedules", () =>
    Property.assert([scenario], (s) =>
      Effect.gen(function*() {
        const expected = model(s)
        const real = yield* runReal(s, expected.picks)
        assert.deepStrictEqual(real.log, expected.log)
        assert.strictEqual(real.gaveUp, expected.gaveUp)
        assert.deepStrictEqual(real.children, expected.children)
      }), { numRuns: 300 }))

  it.effect("children start in order and stop in reverse order when the scope closes", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const child = (id: string): Supervisor.ChildSpec => ({
        id,
        start: Effect.acquireRelease(Effect.sync(() => log.push(`start ${id}`)), () => Effect.sync(() => log.push(`stop ${id}`))).pipe(
          Effect.andThen(Effect.never)
        )
      })
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Supervisor.make({ name: "order" }, [child("a"), child("b"), child("c")])
        yield* settle(() => log.length)
      }))
      assert.deepStrictEqual(log, ["start a", "start b", "start c", "stop c", "stop b", "stop a"])
    }))

  it.effect("a nested supervisor that gives up escalates: its parent restarts it, and counts it", () =>
    Effect.gen(function*() {
      let starts = 0
      const flaky: Supervisor.ChildSpec<string> = {
        id: "flaky",
        start: Effect.sync(() => starts++).pipe(Effect.andThen(Effect.fail("boom")))
      }
      const parent = yield* Supervisor.make({ name: "parent", maxRestarts: 5, period: "1 minute" }, [
        Supervisor.asChild({ name: "inner", maxRestarts: 1, period: "1 minute" }, [flaky])
      ])
      yield* settle(() => starts)
      const [inner] = yield* parent.children
      assert.strictEqual(inner!.id, "inner")
      assert.isAtLeast(inner!.restarts, 1)
      assert.isAtLeast(starts, 4)
      const restarts = (yield* Metric.snapshot).find((m) =>
        m.id === "fiberd_supervisor_restarts_total" && m.attributes?.supervisor === "parent"
      )
      assert.isAtLeast((restarts?.state as { count: number }).count, 1)
    }))

  it.effect("dynamic children: started and terminated at run time, listed with status", () =>
    Effect.gen(function*() {
      const sup = yield* Supervisor.make({ name: "dyn" }, [])
      yield* sup.startChild({ id: "w1", restart: "temporary", start: Effect.never })
      yield* sup.startChild({ id: "w2", restart: "temporary", start: Effect.never })
      const duplicate = yield* Effect.flip(sup.startChild({ id: "w1", start: Effect.never }))
      assert.strictEqual(duplicate._tag, "DuplicateChild")
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}`), ["w1:running", "w2:running"])
      yield* sup.terminateChild("w1") // temporary: forgotten
      assert.deepStrictEqual((yield* sup.children).map((c) => c.id), ["w2"])
      yield* sup.removeChild("w2") // terminate + delete, also for a temporary child the terminate already forgot
      assert.deepStrictEqual(yield* sup.children, [])
    }))

  it.effect("startChild runs the child with the caller's services, as its type says", () =>
    Effect.gen(function*() {
      class Greeting extends Context.Service<Greeting, { readonly text: string }>()("test/Greeting") {}
      const sup = yield* Supervisor.make({ name: "ctx" }, [])
      const seen = yield* Deferred.make<string>()
      // the type asks the caller for Greeting; the supervisor was made without it
      const start = sup.startChild({ id: "greeter", restart: "temporary", start: Greeting.use((g) => Deferred.succeed(seen, g.text)) })
      yield* start.pipe(Effect.provideService(Greeting, Greeting.of({ text: "hello" })))
      assert.strictEqual(yield* Deferred.await(seen), "hello")
    }))

  it.effect("restart intensity runs on the monotonic clock: a wall-clock step back does not make it give up", () =>
    Effect.gen(function*() {
      const crash = yield* Queue.unbounded<void>()
      const sup = yield* Supervisor.make({ name: "ntp", maxRestarts: 1, period: "1 second" }, [
        { id: "flaky", start: Queue.take(crash).pipe(Effect.andThen(Effect.fail("crash"))) }
      ])
      yield* TestClock.setTime(10_000)
      yield* Queue.offer(crash, undefined)
      yield* settle(() => 0)
      yield* TestClock.adjust("2 seconds") // 2 s pass (monotonic and wall clock)...
      yield* TestClock.setTime(10_500) // ...then NTP steps the wall clock back 1.5 s
      yield* Queue.offer(crash, undefined)
      yield* settle(() => 0)
      const gaveUp = yield* Effect.flip(sup.await).pipe(Effect.timeoutOption("1 millis"), Effect.forkChild)
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isNone(yield* Fiber.join(gaveUp)), "two restarts 2 s apart are within the intensity of 1 per second")
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}:${c.restarts}`), ["flaky:running:2"])
    }))

  it.effect("shutdown: a child whose stop takes longer than its shutdown timeout does not hold the supervisor", () =>
    Effect.gen(function*() {
      const stubborn: Supervisor.ChildSpec = {
        id: "stubborn",
        shutdown: "1 second",
        start: Effect.addFinalizer(() => Effect.sleep("1 hour")).pipe(Effect.andThen(Effect.never))
      }
      const sup = yield* Supervisor.make({ name: "slowstop" }, [stubborn])
      yield* settle(() => 0)
      const terminating = yield* Effect.forkChild(sup.terminateChild("stubborn"), { startImmediately: true })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(terminating)
      // OTP's terminate_child: stopped, its spec kept
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}`), ["stubborn:stopped"])
    }))

  it.effect("brutal shutdown: the supervisor does not wait for the child's finalizers", () =>
    Effect.gen(function*() {
      let stopped = false
      const slow: Supervisor.ChildSpec = {
        id: "slow",
        shutdown: "brutal",
        start: Effect.addFinalizer(() => Effect.sleep("1 hour").pipe(Effect.andThen(Effect.sync(() => (stopped = true))))).pipe(
          Effect.andThen(Effect.never)
        )
      }
      const sup = yield* Supervisor.make({ name: "brutal" }, [slow])
      yield* settle(() => 0)
      yield* sup.terminateChild("slow") // returns at once, no TestClock needed
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}`), ["slow:stopped"])
      assert.isFalse(stopped)
    }))

  it.effect("back-off: restarts wait initial, then double", () =>
    Effect.gen(function*() {
      const startedAt: Array<number> = []
      const crashy: Supervisor.ChildSpec<string> = {
        id: "crashy",
        start: TestClock.testClockWith((clock) => Effect.sync(() => startedAt.push(clock.currentTimeMillisUnsafe()))).pipe(
          Effect.andThen(Effect.fail("boom"))
        )
      }
      yield* Supervisor.make({ name: "backoff", maxRestarts: 10, period: "1 minute", backoff: { initial: "100 millis", max: "1 second" } }, [crashy])
      for (let i = 0; i < 40; i++) {
        yield* settle(() => startedAt.length)
        yield* TestClock.adjust("50 millis")
      }
      assert.deepStrictEqual(startedAt.slice(0, 5), [0, 100, 300, 700, 1500])
    }))

  it.effect("back-off is a delayed event: while a child waits for its restart, startChild and terminateChild answer at once (no time passes)", () =>
    Effect.gen(function*() {
      let starts = 0
      const crashy: Supervisor.ChildSpec<string> = {
        id: "crashy",
        start: Effect.sync(() => starts++).pipe(Effect.andThen(Effect.fail("boom")))
      }
      const sup = yield* Supervisor.make({ name: "patient", maxRestarts: 10, period: "1 minute", backoff: { initial: "2 seconds", max: "2 seconds" } }, [crashy])
      yield* settle(() => starts)
      assert.strictEqual(starts, 1)
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}`), ["crashy:restarting"])
      // the clock does not move: these would wait 2 s behind a back-off that sleeps in the supervisor's loop
      yield* sup.startChild({ id: "other", start: Effect.never })
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}`), ["crashy:restarting", "other:running"])
      yield* sup.removeChild("other")
      // a child terminated while it waits is not restarted when its back-off ends
      yield* sup.terminateChild("crashy")
      yield* TestClock.adjust("5 seconds")
      yield* settle(() => starts)
      assert.strictEqual(starts, 1)
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}`), ["crashy:stopped"])
    }))
})

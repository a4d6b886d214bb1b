/**
 * The start phase and the child API against a model of OTP's documented
 * semantics (supervisor.erl, OTP 25): fast-check command sequences of crashes,
 * normal exits, planned start failures and `ignore`s, startChild,
 * terminateChild, restartChild, deleteChild and time, on static supervisors of
 * every strategy (with significant children and autoShutdown) and on dynamic
 * supervisors with `maxChildren`. The trace of starts, failed starts, ignores
 * and exits, every call's answer, the children listing and how the supervisor
 * ended must match the model.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Option, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Supervisor from "../../src/actors/Supervisor.ts"
import { Property } from "../../src/testkit/index.ts"
import { settle } from "../../src/testkit/Script.ts"

type Outcome = "ok" | "fail" | "ignore"
interface StaticChild {
  readonly restart: Supervisor.RestartType
  readonly significant: boolean
  readonly plan: ReadonlyArray<Outcome>
}
type Command =
  | { readonly _tag: "exit"; readonly pick: number; readonly crash: boolean }
  | { readonly _tag: "plan"; readonly pick: number; readonly outcomes: ReadonlyArray<Outcome> }
  | { readonly _tag: "start"; readonly restart: Supervisor.RestartType; readonly significant: boolean; readonly outcome: Outcome }
  | { readonly _tag: "terminate"; readonly pick: number }
  | { readonly _tag: "restart"; readonly pick: number }
  | { readonly _tag: "delete"; readonly pick: number }
  | { readonly _tag: "advance"; readonly millis: number }
interface Scenario {
  readonly dynamic: boolean
  readonly maxChildren: number
  readonly strategy: Supervisor.Strategy
  readonly autoShutdown: Supervisor.AutoShutdown
  readonly maxRestarts: number
  readonly period: number
  readonly children: ReadonlyArray<StaticChild>
  readonly commands: ReadonlyArray<Command>
}
interface Observed {
  readonly log: ReadonlyArray<string>
  readonly answers: ReadonlyArray<string>
  readonly children: ReadonlyArray<string>
  readonly end: string
}

// ---- the model: OTP's rules, written from its documentation ------------------
interface ModelChild {
  readonly id: string
  /** The key of its planned outcomes and of its trace lines. */
  readonly key: string
  readonly restart: Supervisor.RestartType
  readonly significant: boolean
  status: "running" | "stopped" | "restarting"
  restarts: number
  /** The retry this child waits for, when restarting. */
  retry: number
}
const model = (s: Scenario): Observed & { readonly picks: ReadonlyArray<string | undefined> } => {
  const log: Array<string> = []
  const answers: Array<string> = []
  const picks: Array<string | undefined> = []
  const plans = new Map<string, Array<Outcome>>()
  const children: Array<ModelChild> = []
  const intensity: Array<number> = []
  const retries: Array<{ readonly child: ModelChild; readonly token: number }> = []
  let tokens = 0
  let now = 0
  let end = "running"
  let dynamicSerial = 0
  const strategy = s.dynamic ? "one-for-one" : s.strategy
  const forgets = (c: ModelChild) => s.dynamic || c.restart === "temporary"
  const remove = (c: ModelChild) => children.includes(c) && children.splice(children.indexOf(c), 1)
  const outcomeOf = (c: ModelChild): Outcome => {
    const next = plans.get(c.key)?.shift() ?? "ok"
    log.push(`${next === "ok" ? "start" : next} ${c.key}`)
    return next
  }
  const stop = (c: ModelChild) => {
    if (c.status === "running") log.push(`exit ${c.key}`)
    c.status = "stopped"
  }
  const stopAll = (list: ReadonlyArray<ModelChild>) => [...list].reverse().forEach(stop)
  const startGroup = (list: ReadonlyArray<ModelChild>) => {
    for (const c of list) if (c.status === "restarting") c.status = "stopped"
    for (const c of list) {
      if (!children.includes(c)) continue
      const outcome = outcomeOf(c)
      if (outcome === "ok") (c.status = "running"), c.restarts++
      else if (outcome === "ignore") forgets(c) && remove(c)
      else return (c.status = "restarting"), (c.retry = ++tokens), retries.push({ child: c, token: c.retry })
    }
  }
  const restartGroup = (c: ModelChild) => {
    intensity.push(now)
    while (intensity.length > 0 && now - intensity[0]! > s.period) intensity.shift()
    if (intensity.length > s.maxRestarts) return stopAll(children), (end = "gave up")
    const group = strategy === "one-for-one" ? [c] : strategy === "one-for-all" ? children.slice() : children.slice(children.indexOf(c))
    const others = group.filter((o) => o !== c)
    stopAll(others)
    for (const o of others) if (o.restart === "temporary") remove(o)
    startGroup(group.filter((o) => children.includes(o)))
  }
  const exited = (c: ModelChild, crash: boolean) => {
    log.push(`exit ${c.key}`)
    c.status = "stopped"
    if (c.restart === "permanent" || (c.restart === "transient" && crash)) return restartGroup(c)
    if (forgets(c)) remove(c)
    if (s.autoShutdown === "never" || !c.significant) return
    if (s.autoShutdown === "all-significant" && children.some((o) => o.significant && o.status !== "stopped")) return
    stopAll(children)
    end = "shut down"
  }
  const drainRetries = () => {
    while (retries.length > 0) {
      const { child: c, token } = retries.shift()!
      if (end === "running" && children.includes(c) && c.status === "restarting" && c.retry === token) restartGroup(c)
    }
  }
  // the start phase
  s.children.forEach((spec, i) => {
    plans.set(`c${i}`, [...spec.plan])
    children.push({ id: `c${i}`, key: `c${i}`, restart: spec.restart, significant: spec.significant, status: "stopped", restarts: 0, retry: 0 })
  })
  for (const c of children.slice()) {
    const outcome = outcomeOf(c)
    if (outcome === "ok") c.status = "running"
    if (outcome === "ignore" && forgets(c)) remove(c)
    if (outcome === "fail") {
      stopAll(children)
      return { log, answers, picks, children: [], end: `failed to start: ${c.id}` }
    }
  }
  const known = children.map((c) => c.id)
  for (const command of s.commands) {
    const pickId = (pick: number) => known[pick % known.length]
    let picked: string | undefined = undefined
    if (command._tag === "advance") now += command.millis
    else if (command._tag === "exit") {
      const running = children.filter((c) => c.status === "running")
      const c = end === "running" && running.length > 0 ? running[command.pick % running.length]! : undefined
      picked = c?.id
      if (c !== undefined) exited(c, command.crash)
    } else if (command._tag === "plan") {
      const id = known.length > 0 ? pickId(command.pick)! : undefined
      picked = id
      const c = children.find((x) => x.id === id)
      if (c !== undefined) plans.set(c.key, [...command.outcomes])
    } else if (command._tag === "start") {
      const key = `d${++dynamicSerial}`
      const id = s.dynamic ? `${key}/${dynamicSerial}` : key
      const c: ModelChild = { id, key, restart: command.restart, significant: command.significant, status: "stopped", restarts: 0, retry: 0 }
      plans.set(key, [command.outcome])
      if (end !== "running") answers.push("stopped")
      else if (!s.dynamic && children.some((x) => x.id === id)) answers.push("duplicate")
      else if (!s.dynamic && command.significant && (command.restart === "permanent" || s.autoShutdown === "never")) answers.push("invalid")
      else if (s.dynamic && children.length >= s.maxChildren) answers.push("max children")
      else {
        known.push(id)
        children.push(c)
        const outcome = outcomeOf(c)
        if (outcome === "ok") (c.status = "running"), answers.push("started")
        else if (outcome === "ignore") answers.push("ignored"), forgets(c) && remove(c)
        else answers.push("failed"), remove(c)
      }
    } else {
      const id = known.length > 0 ? pickId(command.pick)! : "none"
      picked = id
      const c = children.find((x) => x.id === id)
      if (command._tag === "restart" && end !== "running") answers.push("stopped")
      else if (c === undefined) answers.push("not found")
      else if (command._tag === "terminate") {
        stop(c)
        if (forgets(c)) remove(c)
        answers.push("ok")
      } else if (c.status !== "stopped") answers.push(c.status)
      else if (command._tag === "delete") remove(c), answers.push("ok")
      else {
        const outcome = outcomeOf(c)
        if (outcome === "ok") c.status = "running"
        answers.push(outcome === "ok" ? "started" : outcome === "ignore" ? "ignored" : "failed")
      }
    }
    picks.push(picked)
    drainRetries()
  }
  return { log, answers, picks, children: children.map((c) => `${c.id}:${c.status}:${c.restarts}`), end }
}

// ---- the real supervisor, driven by the same commands ------------------------
const runReal = (s: Scenario, picks: ReadonlyArray<string | undefined>) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const answers: Array<string> = []
    const plans = new Map<string, Array<Outcome>>()
    const commands = new Map<string, Deferred.Deferred<void, string>>()
    const phased = (key: string) => ({
      start: Effect.gen(function*() {
        const next = plans.get(key)?.shift() ?? "ok"
        if (next === "fail") return yield* Effect.sync(() => log.push(`fail ${key}`)).pipe(Effect.andThen(Effect.fail("no")))
        if (next === "ignore") return yield* Effect.sync(() => log.push(`ignore ${key}`)).pipe(Effect.as(Supervisor.ignore))
        const command = yield* Deferred.make<void, string>()
        commands.set(key, command)
        yield* Effect.acquireRelease(Effect.sync(() => log.push(`start ${key}`)), () => Effect.sync(() => log.push(`exit ${key}`)))
        return command
      }),
      run: (command: Deferred.Deferred<void, string>) => Deferred.await(command)
    })
    const options = { name: "model", strategy: s.strategy, autoShutdown: s.autoShutdown, maxRestarts: s.maxRestarts, period: s.period }
    s.children.forEach((c, i) => plans.set(`c${i}`, [...c.plan]))
    const scope = yield* Scope.make()
    type Dyn = Supervisor.DynamicSupervisor<{ readonly key: string; readonly restart: Supervisor.RestartType }>
    const made: Exit.Exit<Supervisor.Supervisor | Dyn, Supervisor.StartFailed> = s.dynamic
      ? yield* Effect.exit(
        Supervisor.dynamic(
          { name: "model", maxRestarts: s.maxRestarts, period: s.period, maxChildren: s.maxChildren },
          (c: { readonly key: string; readonly restart: Supervisor.RestartType }) => ({ label: c.key, restart: c.restart, ...phased(c.key) })
        ).pipe(Scope.provide(scope))
      )
      : yield* Effect.exit(
        Supervisor.make(
          options,
          s.children.map((c, i) => ({ id: `c${i}`, restart: c.restart, significant: c.significant, ...phased(`c${i}`) }))
        ).pipe(Scope.provide(scope))
      )
    if (Exit.isFailure(made)) {
      const error = made.cause.reasons.find((r) => r._tag === "Fail")?.error as unknown as Supervisor.StartFailed
      yield* Scope.close(scope, Exit.void)
      return { log, answers, children: [], end: `failed to start: ${error.child}` }
    }
    const sup = made.value
    const ended = yield* Effect.forkChild(Effect.exit(sup.await), { startImmediately: true })
    const progress = () => log.length + answers.length + (ended.pollUnsafe() !== undefined ? 1 : 0)
    yield* settle(progress)
    const name = (error: { readonly _tag: string }) =>
      ({ StartFailed: "failed", DuplicateChild: "duplicate", InvalidChildSpec: "invalid", MaxChildren: "max children", SupervisorStopped: "stopped", ChildNotFound: "not found" } as Record<string, string>)[error._tag]
    const answer = <A>(effect: Effect.Effect<A, { readonly _tag: string }>, ok: (a: A) => string) =>
      Effect.exit(effect).pipe(Effect.map((exit) => {
        if (Exit.isSuccess(exit)) return answers.push(ok(exit.value))
        const error = exit.cause.reasons.find((r) => r._tag === "Fail")!.error as { readonly _tag: string; readonly status?: string }
        return answers.push(error._tag === "ChildRunning" ? error.status! : name(error)!)
      }))
    let serial = 0
    for (let i = 0; i < s.commands.length; i++) {
      const command = s.commands[i]!
      const id = picks[i]
      switch (command._tag) {
        case "advance":
          yield* TestClock.adjust(command.millis)
          break
        case "exit": {
          if (id === undefined) break
          const key = id.split("/")[0]!
          if (command.crash) yield* Deferred.fail(commands.get(key)!, "boom")
          else yield* Deferred.succeed(commands.get(key)!, undefined)
          break
        }
        case "plan":
          if (id !== undefined) plans.set(id.split("/")[0]!, [...command.outcomes])
          break
        case "start": {
          const key = `d${++serial}`
          plans.set(key, [command.outcome])
          if (s.dynamic) {
            const dyn = sup as Dyn
            yield* answer(dyn.startChild({ key, restart: command.restart }), (o) => (Option.isSome(o) ? "started" : "ignored"))
          } else {
            const stat = sup as Supervisor.Supervisor
            yield* answer(
              stat.startChild({ id: key, restart: command.restart, significant: command.significant, ...phased(key) }),
              (o) => (Option.isSome(o) ? "started" : "ignored")
            )
          }
          break
        }
        case "terminate":
          yield* answer(sup.terminateChild(id!), () => "ok")
          break
        case "restart":
          yield* answer((sup as Supervisor.Supervisor).restartChild(id!), (o) => (Option.isSome(o) ? "started" : "ignored"))
          break
        case "delete":
          yield* answer((sup as Supervisor.Supervisor).deleteChild(id!), () => "ok")
          break
      }
      yield* settle(progress)
    }
    const exit = ended.pollUnsafe()
    const end = exit === undefined ? "running" : Exit.isSuccess(exit) && Exit.isSuccess(exit.value) ? "shut down" : "gave up"
    const children = (yield* sup.children).map((c) => `${c.id}:${c.status}:${c.restarts}`)
    const trace = log.slice() // closing the scope stops what runs: not part of the scenario
    yield* Scope.close(scope, Exit.void)
    return { log: trace, answers, children, end }
  })

// ---- scenarios ----------------------------------------------------------------
const outcome = fc.constantFrom<Outcome>("ok", "ok", "ok", "fail", "ignore")
const restartType = fc.constantFrom<Supervisor.RestartType>("permanent", "transient", "temporary")
const staticChild = (autoShutdown: Supervisor.AutoShutdown): fc.Arbitrary<StaticChild> =>
  fc.record({ restart: restartType, significant: fc.boolean(), plan: fc.array(outcome, { maxLength: 2 }) }).map((c) => ({
    ...c,
    // a static spec the supervisor refuses is a bug (it dies): keep them valid
    significant: c.significant && c.restart !== "permanent" && autoShutdown !== "never"
  }))
const command = (dynamic: boolean): fc.Arbitrary<Command> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ _tag: fc.constant("exit" as const), pick: fc.nat(7), crash: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("plan" as const), pick: fc.nat(7), outcomes: fc.array(outcome, { minLength: 1, maxLength: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("start" as const), restart: restartType, significant: fc.boolean(), outcome }) },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("terminate" as const), pick: fc.nat(7) }) },
    ...(dynamic
      ? []
      : [
        { weight: 1, arbitrary: fc.record({ _tag: fc.constant("restart" as const), pick: fc.nat(7) }) },
        { weight: 1, arbitrary: fc.record({ _tag: fc.constant("delete" as const), pick: fc.nat(7) }) }
      ]),
    { weight: 2, arbitrary: fc.record({ _tag: fc.constant("advance" as const), millis: fc.integer({ min: 0, max: 3000 }) }) }
  )
const staticScenario: fc.Arbitrary<Scenario> = fc
  .record({
    strategy: fc.constantFrom<Supervisor.Strategy>("one-for-one", "one-for-all", "rest-for-one"),
    autoShutdown: fc.constantFrom<Supervisor.AutoShutdown>("never", "any-significant", "all-significant"),
    maxRestarts: fc.integer({ min: 0, max: 4 }),
    period: fc.integer({ min: 1000, max: 5000 })
  })
  .chain((flags) =>
    fc.record({
      children: fc.array(staticChild(flags.autoShutdown), { minLength: 1, maxLength: 4 }),
      commands: fc.array(command(false), { maxLength: 14 })
    }).map((rest) => ({ ...flags, ...rest, dynamic: false, maxChildren: 0 }))
  )
const dynamicScenario: fc.Arbitrary<Scenario> = fc.record({
  maxChildren: fc.integer({ min: 1, max: 4 }),
  maxRestarts: fc.integer({ min: 0, max: 4 }),
  period: fc.integer({ min: 1000, max: 5000 }),
  commands: fc.array(command(true), { maxLength: 16 })
}).map((s) => ({ ...s, dynamic: true, strategy: "one-for-one" as const, autoShutdown: "never" as const, children: [] }))

const check = (s: Scenario) =>
  Effect.gen(function*() {
    const expected = model(s)
    const real = yield* runReal(s, expected.picks)
    assert.deepStrictEqual(real.log, expected.log, "trace")
    assert.deepStrictEqual(real.answers, expected.answers, "answers")
    assert.deepStrictEqual(real.children, expected.children, "children")
    assert.strictEqual(real.end, expected.end, "end")
  })

describe("Supervisor start phase and child API (OTP model)", () => {
  it.effect("static supervisors: start errors, ignore, startChild/terminate/restart/delete, significant children", () =>
    Property.assert([staticScenario], check, { numRuns: 300 }))

  it.effect("dynamic supervisors: one template, maxChildren, children forgotten once they end for good", () =>
    Property.assert([dynamicScenario], check, { numRuns: 200 }))

  it.effect("one-for-all, c1's restart fails: the attempt stops at c1, and the retry starts the whole group again (OTP's trace)", () =>
    Effect.gen(function*() {
      const ok = { restart: "permanent", significant: false, plan: [] } as const
      const scenario: Scenario = {
        dynamic: false,
        maxChildren: 0,
        strategy: "one-for-all",
        autoShutdown: "never",
        maxRestarts: 5,
        period: 5000,
        children: [ok, { ...ok, plan: ["ok", "fail"] }, ok],
        commands: [{ _tag: "exit", pick: 0, crash: true }]
      }
      yield* check(scenario)
      // c0 crashed; the group restarts and c1 fails; one more restart (counted) stops c0 and starts all three
      assert.deepStrictEqual(
        model(scenario).log.slice(3),
        ["exit c0", "exit c2", "exit c1", "start c0", "fail c1", "exit c0", "start c0", "start c1", "start c2"]
      )
    }))

  it.effect("a child that cannot start at the supervisor's start: the started ones stop in reverse and make fails with StartFailed", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const ok = (id: string): Supervisor.ChildSpec => ({
        id,
        start: Effect.acquireRelease(Effect.sync(() => log.push(`start ${id}`)), () => Effect.sync(() => log.push(`stop ${id}`))),
        run: () => Effect.never
      })
      const error = yield* Effect.flip(Effect.scoped(Supervisor.make({ name: "boot" }, [
        ok("a"),
        ok("b"),
        { id: "c", start: Effect.fail("port in use"), run: () => Effect.never },
        ok("d")
      ])))
      assert.strictEqual(error._tag, "StartFailed")
      assert.strictEqual(error.child, "c")
      assert.deepStrictEqual(log, ["start a", "start b", "stop b", "stop a"])
    }))

  it.effect("startChild returns the start's value, or the start error with no child kept", () =>
    Effect.gen(function*() {
      const sup = yield* Supervisor.make({ name: "api" }, [])
      const port = yield* sup.startChild({ id: "web", start: Effect.succeed(8080), run: () => Effect.never })
      assert.deepStrictEqual(port, Option.some(8080))
      const error = yield* Effect.flip(sup.startChild({ id: "bad", start: Effect.fail("nope"), run: () => Effect.never }))
      assert.strictEqual(error._tag, "StartFailed")
      assert.deepStrictEqual((yield* sup.children).map((c) => c.id), ["web"])
      assert.deepStrictEqual(yield* sup.startChild({ id: "later", start: Effect.succeed(Supervisor.ignore), run: () => Effect.never }), Option.none())
      assert.deepStrictEqual((yield* sup.children).map((c) => `${c.id}:${c.status}`), ["web:running", "later:stopped"])
    }))

  it.effect("autoShutdown: a nested supervisor whose significant child ends stops by itself, a normal exit for its parent", () =>
    Effect.gen(function*() {
      const job = yield* Deferred.make<void>()
      const parent = yield* Supervisor.make({ name: "parent" }, [
        Supervisor.asChild({ name: "job", restart: "transient", autoShutdown: "any-significant" }, [
          { id: "helper", start: Effect.never },
          { id: "main", restart: "transient", significant: true, start: Deferred.await(job) }
        ])
      ])
      yield* settle(() => 0)
      yield* Deferred.succeed(job, undefined)
      yield* settle(() => 0)
      // the transient nested supervisor ended normally: stopped, not restarted
      assert.deepStrictEqual((yield* parent.children).map((c) => `${c.id}:${c.status}:${c.restarts}`), ["job:stopped:0"])
    }))

  it.effect("a stopped supervisor answers starts with SupervisorStopped instead of hanging", () =>
    Effect.gen(function*() {
      const sup = yield* Supervisor.make({ name: "brief", maxRestarts: 0 }, [{ id: "x", start: Effect.fail("crash") }])
      const gaveUp = yield* Effect.flip(sup.await)
      assert.strictEqual(gaveUp._tag, "SupervisorGaveUp")
      const error = yield* Effect.flip(sup.startChild({ id: "y", start: Effect.never }))
      assert.strictEqual(error._tag, "SupervisorStopped")
    }))

  it.effect("dynamic: maxChildren, and a stopped child's place is free again", () =>
    Effect.gen(function*() {
      const dyn = yield* Supervisor.dynamic({ name: "pool", maxChildren: 2 }, (n: number) => ({ label: `job${n}`, restart: "temporary", start: Effect.never }))
      const a = yield* dyn.startChild(1)
      yield* dyn.startChild(2)
      const full = yield* Effect.flip(dyn.startChild(3))
      assert.strictEqual(full._tag, "MaxChildren")
      yield* dyn.terminateChild(Option.getOrThrow(a))
      assert.deepStrictEqual(yield* dyn.startChild(4), Option.some("job4/4"))
      assert.deepStrictEqual((yield* dyn.children).map((c) => c.id), ["job2/2", "job4/4"])
    }))
})

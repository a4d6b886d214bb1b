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
import * as Supervisor from "../../src/actors/Supervisor.ts"
import { Property } from "../../src/testkit/index.ts"
import { settle } from "../../src/testkit/Script.ts"
import { dynamicScenario, model, type Outcome, type Scenario, staticScenario } from "./SupervisorModel.ts"

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

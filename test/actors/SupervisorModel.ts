/**
 * A model of OTP's documented supervisor semantics (supervisor.erl, OTP 25)
 * for the start phase and the child API, with the command scenarios that
 * drive it. Checked against fiberd's Supervisor (`SupervisorStart.test.ts`)
 * and against real OTP supervisors (`SupervisorOtp.test.ts`).
 */
import * as fc from "fast-check"
import type * as Supervisor from "../../src/actors/Supervisor.ts"

export type Outcome = "ok" | "fail" | "ignore"
export interface StaticChild {
  readonly restart: Supervisor.RestartType
  readonly significant: boolean
  readonly plan: ReadonlyArray<Outcome>
}
export type Command =
  | { readonly _tag: "exit"; readonly pick: number; readonly crash: boolean }
  | { readonly _tag: "plan"; readonly pick: number; readonly outcomes: ReadonlyArray<Outcome> }
  | { readonly _tag: "start"; readonly restart: Supervisor.RestartType; readonly significant: boolean; readonly outcome: Outcome }
  | { readonly _tag: "terminate"; readonly pick: number }
  | { readonly _tag: "restart"; readonly pick: number }
  | { readonly _tag: "delete"; readonly pick: number }
  | { readonly _tag: "advance"; readonly millis: number }
export interface Scenario {
  readonly dynamic: boolean
  readonly maxChildren: number
  readonly strategy: Supervisor.Strategy
  readonly autoShutdown: Supervisor.AutoShutdown
  readonly maxRestarts: number
  readonly period: number
  readonly children: ReadonlyArray<StaticChild>
  readonly commands: ReadonlyArray<Command>
}
export interface Observed {
  readonly log: ReadonlyArray<string>
  readonly answers: ReadonlyArray<string>
  readonly children: ReadonlyArray<string>
  readonly end: string
}

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
export const model = (s: Scenario): Observed & { readonly picks: ReadonlyArray<string | undefined> } => {
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

const outcome = fc.constantFrom<Outcome>("ok", "ok", "ok", "fail", "ignore")
const restartType = fc.constantFrom<Supervisor.RestartType>("permanent", "transient", "temporary")
export const staticChild = (autoShutdown: Supervisor.AutoShutdown): fc.Arbitrary<StaticChild> =>
  fc.record({ restart: restartType, significant: fc.boolean(), plan: fc.array(outcome, { maxLength: 2 }) }).map((c) => ({
    ...c,
    // a static spec the supervisor refuses is a bug (it dies): keep them valid
    significant: c.significant && c.restart !== "permanent" && autoShutdown !== "never"
  }))
export const command = (dynamic: boolean): fc.Arbitrary<Command> =>
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
export const staticScenario: fc.Arbitrary<Scenario> = fc
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
export const dynamicScenario: fc.Arbitrary<Scenario> = fc.record({
  maxChildren: fc.integer({ min: 1, max: 4 }),
  maxRestarts: fc.integer({ min: 0, max: 4 }),
  period: fc.integer({ min: 1000, max: 5000 }),
  commands: fc.array(command(true), { maxLength: 16 })
}).map((s) => ({ ...s, dynamic: true, strategy: "one-for-one" as const, autoShutdown: "never" as const, children: [] }))


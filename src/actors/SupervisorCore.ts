/**
 * A supervisor's control loop, with Erlang/OTP's rules (supervisor.erl). One
 * fiber takes events (a child exited, an API call, a back-off or a retry came
 * due) one at a time, so the children's table has one writer.
 *
 * - Start phase: children start in order; a child with `run` is awaited until
 *   its `start` succeeds, fails or answers `ignore`. A failure at the
 *   supervisor's start stops the children already started (reverse order) and
 *   fails with `StartFailed`; during a group restart the attempt stops at the
 *   failing child, which waits as `restarting` while a retry goes through the
 *   event queue (so calls in between are answered) and counts as one more
 *   restart toward the intensity, for the failing child's own group.
 * - Restarts: the restart type decides, the strategy picks the group, the
 *   intensity (monotonic clock) decides when to give up, an optional back-off
 *   delays the restart as a later event.
 * - Significant children and `autoShutdown` stop the supervisor when they end
 *   by themselves; a dynamic supervisor (one spec, `maxChildren`) forgets every
 *   child that is not restarted and stops its children concurrently.
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Metric, Option, Queue } from "effect"
import type { Scope } from "effect"
import type { ChildInfo, ChildSpec, RestartType, SupervisorOptions } from "./SupervisorSpec.ts"
import {
  ChildNotFound,
  ChildRunning,
  DuplicateChild,
  ignore,
  InvalidChildSpec,
  MaxChildren,
  StartFailed,
  SupervisorGaveUp,
  SupervisorStopped
} from "./SupervisorSpec.ts"

const restartsTotal = Metric.counter("fiberd_supervisor_restarts_total", { description: "child restarts", incremental: true })
const giveUpsTotal = Metric.counter("fiberd_supervisor_giveups_total", {
  description: "supervisors that exceeded their restart intensity",
  incremental: true
})

/** Options of the loop: a static supervisor, or a dynamic one (one-for-one, children forgotten when not restarted). */
export interface CoreOptions extends SupervisorOptions {
  readonly dynamic?: { readonly maxChildren: number }
}

interface Child {
  readonly spec: ChildSpec<unknown, unknown, unknown>
  /** Forks the child with the supervisor's services, plus the caller's for a child added by `startChild`. */
  readonly fork: (effect: Effect.Effect<unknown, unknown>) => Fiber.Fiber<unknown, unknown>
  readonly restart: RestartType
  fiber: Fiber.Fiber<unknown, unknown> | undefined
  /** Bumped per start and stop: an exit event of an older generation is stale. */
  generation: number
  restarts: number
  readonly recent: Array<number>
  /** The token of the restart (back-off or retry) this child waits for, or 0. */
  pending: number
}

type Outcome =
  | { readonly _tag: "Started"; readonly value: unknown }
  | { readonly _tag: "Ignored" }
  | { readonly _tag: "Failed"; readonly cause: Cause.Cause<unknown> }

/** What a `Start` event can answer. */
export type StartError = StartFailed | DuplicateChild | InvalidChildSpec | MaxChildren | SupervisorStopped

export type Event =
  | { readonly _tag: "Exited"; readonly child: Child; readonly generation: number; readonly exit: Exit.Exit<unknown, unknown> }
  | {
    readonly _tag: "Start"
    readonly spec: ChildSpec<unknown, unknown, unknown>
    readonly context: Context.Context<never>
    readonly done: Deferred.Deferred<Option.Option<unknown>, StartError>
  }
  | { readonly _tag: "Terminate"; readonly id: string; readonly done: Deferred.Deferred<void, ChildNotFound> }
  | { readonly _tag: "RestartChild"; readonly id: string; readonly done: Deferred.Deferred<Option.Option<unknown>, ChildNotFound | ChildRunning | StartFailed | SupervisorStopped> }
  | { readonly _tag: "Delete"; readonly id: string; readonly done: Deferred.Deferred<void, ChildNotFound | ChildRunning> }
  /** A back-off ended: these children start again (those still waiting for this token). */
  | { readonly _tag: "Restart"; readonly children: ReadonlyArray<Child>; readonly token: number }
  /** A restart attempt stopped at this child's failed start: try again (OTP's try_again_restart). */
  | { readonly _tag: "TryAgain"; readonly child: Child; readonly token: number }

/** The running loop as the public API sees it. */
export interface Core {
  readonly children: Effect.Effect<ReadonlyArray<ChildInfo>>
  readonly send: (event: Event) => Effect.Effect<void>
  readonly await: Effect.Effect<void, SupervisorGaveUp>
}

/** Problems of a spec (OTP's check_childspec), undefined when fine. */
export const checkSpec = (spec: ChildSpec<unknown, unknown, unknown>, options: SupervisorOptions): InvalidChildSpec | undefined => {
  if (spec.significant !== true) return undefined
  if ((spec.restart ?? "permanent") === "permanent") return new InvalidChildSpec({ id: spec.id, reason: "a permanent child cannot be significant" })
  if ((options.autoShutdown ?? "never") === "never") {
    return new InvalidChildSpec({ id: spec.id, reason: "a significant child needs the supervisor's autoShutdown" })
  }
  return undefined
}

/** Starts the loop with `specs` started in order; fails with StartFailed (the started ones stopped) when one cannot start. */
export const start = <R>(
  options: CoreOptions,
  specs: ReadonlyArray<ChildSpec<unknown, R, unknown>>
): Effect.Effect<Core, StartFailed, R | Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name
    const strategy = options.dynamic !== undefined ? "one-for-one" : options.strategy ?? "one-for-one"
    const maxRestarts = options.maxRestarts ?? 3
    const period = Duration.fromInputUnsafe(options.period ?? "5 seconds")
    const periodMillis = Duration.toMillis(period)
    const autoShutdown = options.autoShutdown ?? "never"
    const restarted = Metric.withAttributes(restartsTotal, { supervisor: name })
    const gaveUpMetric = Metric.withAttributes(giveUpsTotal, { supervisor: name })
    const context = (yield* Effect.context<R>()) as Context.Context<unknown>
    const scope = yield* Effect.scope
    const forkWith = Effect.runForkWith(context)
    const events = yield* Queue.unbounded<Event>()
    const done = yield* Deferred.make<void, SupervisorGaveUp>()
    const children: Array<Child> = []
    const intensity: Array<number> = []
    let stopped = false
    let nextToken = 1
    const log = (effect: Effect.Effect<void>) => effect.pipe(Effect.annotateLogs({ supervisor: name }))

    const record = (spec: ChildSpec<unknown, unknown, unknown>, extra?: Context.Context<never>): Child => ({
      spec,
      fork: extra === undefined ? forkWith : Effect.runForkWith(Context.merge(context, extra)),
      restart: spec.restart ?? "permanent",
      fiber: undefined,
      generation: 0,
      restarts: 0,
      recent: [],
      pending: 0
    })
    const find = (id: string) => children.find((c) => c.spec.id === id)
    const remove = (child: Child) => {
      const i = children.indexOf(child)
      if (i >= 0) children.splice(i, 1)
    }
    /** A child that ended and is not restarted: a dynamic supervisor and temporary children forget it. */
    const forgets = (child: Child) => options.dynamic !== undefined || child.restart === "temporary"

    /** Starts one child; with a start phase, waits for its outcome (a failed or ignored child's fiber has ended after). */
    const launch = (child: Child): Effect.Effect<Outcome> =>
      Effect.suspend(() => {
        const generation = ++child.generation
        const { run, start: begin } = child.spec
        const watch = (fiber: Fiber.Fiber<unknown, unknown>) => {
          child.fiber = fiber
          fiber.addObserver((exit) => Queue.offerUnsafe(events, { _tag: "Exited", child, generation, exit }))
        }
        if (run === undefined) {
          watch(child.fork(Effect.scoped(begin as Effect.Effect<unknown, unknown, Scope.Scope>)))
          return Effect.succeed<Outcome>({ _tag: "Started", value: undefined })
        }
        const signal = Deferred.makeUnsafe<Outcome>()
        const life = Effect.scoped(
          Effect.gen(function*() {
            const started = yield* Effect.exit(begin as Effect.Effect<unknown, unknown, Scope.Scope>)
            if (Exit.isFailure(started)) {
              Deferred.doneUnsafe(signal, Exit.succeed<Outcome>({ _tag: "Failed", cause: started.cause }))
              return yield* started
            }
            if (started.value === ignore) return Deferred.doneUnsafe(signal, Exit.succeed<Outcome>({ _tag: "Ignored" }))
            Deferred.doneUnsafe(signal, Exit.succeed<Outcome>({ _tag: "Started", value: started.value }))
            return yield* (run(started.value) as Effect.Effect<unknown, unknown, Scope.Scope>)
          })
        )
        const fiber = child.fork(life)
        watch(fiber)
        return Deferred.await(signal).pipe(
          Effect.tap((outcome) => {
            if (outcome._tag === "Started") return Effect.void
            child.fiber = undefined
            child.generation++ // its exit is not a crash
            return Fiber.await(fiber)
          })
        )
      })

    const stopChild = (child: Child): Effect.Effect<void> =>
      Effect.suspend(() => {
        child.pending = 0
        const fiber = child.fiber
        if (fiber === undefined) return Effect.void
        child.fiber = undefined
        child.generation++ // its exit event is now stale
        const shutdown = child.spec.shutdown ?? "5 seconds"
        if (shutdown === "brutal") return Effect.sync(() => fiber.interruptUnsafe())
        return Fiber.interrupt(fiber).pipe(
          Effect.timeoutOption(shutdown),
          Effect.flatMap((stopped) =>
            stopped._tag === "None"
              ? log(Effect.logWarning(`child ${child.spec.id} did not stop within ${Duration.format(Duration.fromInputUnsafe(shutdown))}`))
              : Effect.void
          )
        )
      })

    /** Stops children in reverse order (a dynamic supervisor's, which have no order, all at once). */
    const stopAll = (list: ReadonlyArray<Child>) =>
      Effect.forEach([...list].reverse(), stopChild, { discard: true, concurrency: options.dynamic !== undefined ? "unbounded" : 1 })

    /** Stops everything; the supervisor answers no more starts. */
    const stopSupervisor = (outcome: Exit.Exit<void, SupervisorGaveUp>) =>
      Effect.suspend(() => {
        stopped = true
        return stopAll(children).pipe(Effect.andThen(Deferred.done(done, outcome)), Effect.asVoid)
      })

    const logStartError = (child: Child, cause: Cause.Cause<unknown>) => log(Effect.logError(`child ${child.spec.id} failed to start`, cause))

    /** The back-off before a child's restart (0 without one): `initial`, doubling per recent restart of that child, up to `max`. */
    const backoffMillis = (child: Child, now: number): number => {
      if (options.backoff === undefined) return 0
      while (child.recent.length > 0 && now - child.recent[0]! > periodMillis) child.recent.shift()
      child.recent.push(now)
      const initial = Duration.toMillis(Duration.fromInputUnsafe(options.backoff.initial))
      return Math.min(Duration.toMillis(Duration.fromInputUnsafe(options.backoff.max)), initial * 2 ** (child.recent.length - 1))
    }

    /** Starts a restart group in order; at the first failed start the rest waits and a retry is queued. */
    const startGroup = (list: ReadonlyArray<Child>) =>
      Effect.gen(function*() {
        for (const c of list) c.pending = 0
        for (const c of list) {
          if (!children.includes(c)) continue
          c.restarts++ // before the child runs: whoever it answers sees the count
          const outcome = yield* launch(c)
          if (outcome._tag !== "Started") c.restarts--
          if (outcome._tag === "Ignored") {
            if (forgets(c)) remove(c)
          } else if (outcome._tag === "Failed") {
            yield* logStartError(c, outcome.cause)
            const token = nextToken++
            c.pending = token
            yield* Queue.offer(events, { _tag: "TryAgain", child: c, token })
            return
          }
        }
      })

    /** One restart of `child`'s group (OTP's restart/2): counted toward the intensity, maybe after a back-off. */
    const restartGroup = (child: Child, cause: Cause.Cause<unknown>) =>
      Effect.gen(function*() {
        // monotonic: a wall-clock step (NTP) neither forgets restarts nor invents them
        const now = Number((yield* Clock.monotonicTimeNanos) / 1_000n) / 1000
        intensity.push(now)
        while (intensity.length > 0 && now - intensity[0]! > periodMillis) intensity.shift()
        if (intensity.length > maxRestarts) {
          const error = new SupervisorGaveUp({ supervisor: name, child: child.spec.id, maxRestarts, period, cause })
          yield* log(Effect.logError(error.message))
          yield* Metric.update(gaveUpMetric, 1)
          return yield* stopSupervisor(Exit.fail(error))
        }
        yield* log(Effect.logWarning(`restarting child ${child.spec.id} (${strategy})`))
        yield* Metric.update(restarted, 1)
        const delay = backoffMillis(child, now)
        const at = children.indexOf(child)
        const group = strategy === "one-for-one" ? [child] : strategy === "one-for-all" ? children.slice() : children.slice(at)
        const others = group.filter((c) => c !== child)
        yield* stopAll(others)
        for (const c of others) if (c.restart === "temporary") remove(c)
        const list = group.filter((c) => children.includes(c))
        if (delay <= 0) return yield* startGroup(list)
        // the back-off is a delayed event, not a sleep of the loop: the supervisor goes on answering
        const token = nextToken++
        for (const c of list) c.pending = token
        yield* Effect.forkIn(
          Effect.sleep(Duration.millis(delay)).pipe(Effect.andThen(Queue.offer(events, { _tag: "Restart", children: list, token }))),
          scope
        )
      })

    /** A significant child ended by itself: maybe the supervisor stops (OTP's do_auto_shutdown). */
    const autoShutdownAfter = (child: Child) => {
      if (autoShutdown === "never" || child.spec.significant !== true) return Effect.void
      const last = !children.some((c) => c.spec.significant === true && (c.fiber !== undefined || c.pending !== 0))
      if (autoShutdown === "all-significant" && !last) return Effect.void
      return log(Effect.logInfo(`child ${child.spec.id} ended: shutting down (${autoShutdown})`)).pipe(
        Effect.andThen(stopSupervisor(Exit.void))
      )
    }

    const onExit = (child: Child, exit: Exit.Exit<unknown, unknown>) =>
      Effect.gen(function*() {
        child.fiber = undefined
        const crashed = Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)
        if (crashed) yield* log(Effect.logError(`child ${child.spec.id} crashed`, exit.cause))
        if (child.restart === "permanent" || (child.restart === "transient" && crashed)) {
          return yield* restartGroup(child, Exit.isFailure(exit) ? exit.cause : Cause.empty)
        }
        if (forgets(child)) remove(child)
        yield* autoShutdownAfter(child)
      })

    /** startChild (OTP's handle_start_child): the start error goes back to the caller and no child is kept. */
    const add = (spec: ChildSpec<unknown, unknown, unknown>, extra: Context.Context<never>) =>
      Effect.gen(function*() {
        if (stopped) return yield* Effect.fail(new SupervisorStopped({ supervisor: name }))
        const existing = find(spec.id)
        if (existing !== undefined) return yield* Effect.fail(new DuplicateChild({ id: spec.id, running: existing.fiber !== undefined }))
        const invalid = checkSpec(spec, options)
        if (invalid !== undefined) return yield* Effect.fail(invalid)
        if (options.dynamic !== undefined && children.length >= options.dynamic.maxChildren) {
          return yield* Effect.fail(new MaxChildren({ supervisor: name, maxChildren: options.dynamic.maxChildren }))
        }
        const child = record(spec, extra)
        children.push(child)
        const outcome = yield* launch(child)
        // a child that failed to start is not kept, nor an ignored one that would be forgotten anyway
        if (outcome._tag === "Failed" || (outcome._tag === "Ignored" && forgets(child))) remove(child)
        return yield* answer(child, outcome)
      })

    /** What startChild and restartChild answer: the start's value, None after `ignore`, or the start error (not logged: the caller gets it). */
    const answer = (child: Child, outcome: Outcome): Effect.Effect<Option.Option<unknown>, StartFailed> =>
      outcome._tag === "Started"
        ? Effect.succeed(Option.some(outcome.value))
        : outcome._tag === "Ignored"
        ? Effect.succeed(Option.none())
        : Effect.fail(new StartFailed({ supervisor: name, child: child.spec.id, cause: outcome.cause }))

    /** restartChild: starts a stopped child from its kept spec (not a restart: the intensity does not count it). */
    const restartKept = (id: string) =>
      Effect.gen(function*() {
        if (stopped) return yield* Effect.fail(new SupervisorStopped({ supervisor: name }))
        const child = find(id)
        if (child === undefined) return yield* Effect.fail(new ChildNotFound({ id }))
        if (child.fiber !== undefined || child.pending !== 0) {
          return yield* Effect.fail(new ChildRunning({ id, status: child.fiber !== undefined ? "running" : "restarting" }))
        }
        return yield* answer(child, yield* launch(child))
      })

    const handle = (event: Event): Effect.Effect<void> => {
      switch (event._tag) {
        case "Exited":
          if (stopped || event.generation !== event.child.generation || !children.includes(event.child)) return Effect.void
          return onExit(event.child, event.exit)
        case "Start":
          return Effect.exit(add(event.spec, event.context)).pipe(Effect.flatMap((exit) => Deferred.done(event.done, exit)), Effect.asVoid)
        case "RestartChild":
          return Effect.exit(restartKept(event.id)).pipe(Effect.flatMap((exit) => Deferred.done(event.done, exit)), Effect.asVoid)
        case "Terminate": {
          const child = find(event.id)
          if (child === undefined) return Deferred.fail(event.done, new ChildNotFound({ id: event.id })).pipe(Effect.asVoid)
          return stopChild(child).pipe(
            Effect.andThen(Effect.sync(() => forgets(child) && remove(child))),
            Effect.andThen(Deferred.succeed(event.done, undefined)),
            Effect.asVoid
          )
        }
        case "Delete": {
          const child = find(event.id)
          if (child === undefined) return Deferred.fail(event.done, new ChildNotFound({ id: event.id })).pipe(Effect.asVoid)
          if (child.fiber !== undefined || child.pending !== 0) {
            const status = child.fiber !== undefined ? "running" : "restarting"
            return Deferred.fail(event.done, new ChildRunning({ id: event.id, status })).pipe(Effect.asVoid)
          }
          remove(child)
          return Deferred.succeed(event.done, undefined).pipe(Effect.asVoid)
        }
        case "Restart":
          if (stopped) return Effect.void
          return startGroup(event.children.filter((c) => c.pending === event.token && c.fiber === undefined && children.includes(c)))
        case "TryAgain":
          if (stopped || event.child.pending !== event.token || !children.includes(event.child)) return Effect.void
          return restartGroup(event.child, Cause.empty)
      }
    }

    // the children stop when the scope closes, also when it closes during the start phase
    yield* Effect.addFinalizer(() => stopAll(children))
    for (const spec of specs) {
      const invalid = checkSpec(spec as ChildSpec<unknown, unknown, unknown>, options)
      if (invalid !== undefined) return yield* Effect.die(invalid)
      if (find(spec.id) !== undefined) return yield* Effect.die(new DuplicateChild({ id: spec.id, running: false }))
      children.push(record(spec as ChildSpec<unknown, unknown, unknown>))
    }
    // the start phase (OTP's start_children): in order, up to the first failure
    for (const child of children.slice()) {
      const outcome = yield* launch(child)
      if (outcome._tag === "Ignored" && forgets(child)) remove(child)
      if (outcome._tag === "Failed") {
        yield* logStartError(child, outcome.cause)
        yield* stopAll(children)
        return yield* Effect.fail(new StartFailed({ supervisor: name, child: child.spec.id, cause: outcome.cause }))
      }
    }
    const loop = yield* Effect.forkScoped(Effect.forever(Queue.take(events).pipe(Effect.flatMap(handle))), { startImmediately: true })
    yield* Effect.addFinalizer(() => Fiber.interrupt(loop))

    return {
      children: Effect.sync(() =>
        children.map((c): ChildInfo => ({
          id: c.spec.id,
          restart: c.restart,
          status: c.fiber !== undefined ? "running" : c.pending !== 0 ? "restarting" : "stopped",
          restarts: c.restarts
        }))
      ),
      send: (event) => Queue.offer(events, event).pipe(Effect.asVoid),
      await: Deferred.await(done)
    }
  })

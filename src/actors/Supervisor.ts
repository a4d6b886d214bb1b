/**
 * Supervisors with Erlang/OTP semantics, in Effect's idiom.
 *
 * A child is an Effect that runs for the child's whole life (like an OTP
 * process): returning is a normal exit, failing or dying is a crash, and the
 * supervisor stopping it is an interruption. Children start in order and stop
 * in reverse order. On an exit the restart type decides (permanent: always
 * restart; transient: only after a crash; temporary: never, and the child is
 * removed), the strategy decides who restarts with it (one-for-one,
 * one-for-all, rest-for-one), and the intensity decides when to give up: more
 * than `maxRestarts` restarts within `period` makes the supervisor stop every
 * child and fail with `SupervisorGaveUp`, which escalates to its parent when
 * it is itself a child (see `asChild`). Restarts are stamped with Effect's
 * monotonic clock, so a wall-clock step (NTP) changes nothing; the window is
 * exact to the millisecond (OTP truncates it to whole seconds, so fiberd is
 * never stricter than OTP).
 */
import { Cause, Clock, Data, Deferred, Duration, Effect, Exit, Fiber, Metric, Queue } from "effect"
import { Context, Layer } from "effect"
import type { Scope } from "effect"

/** When a child that exited is restarted. */
export type RestartType = "permanent" | "transient" | "temporary"

/** Which children restart when one exits. */
export type Strategy = "one-for-one" | "one-for-all" | "rest-for-one"

/** How one child is run. */
export interface ChildSpec<E = unknown, R = never> {
  /** Unique among the supervisor's children. */
  readonly id: string
  /** The child's life. Its Scope closes when it ends or is stopped. */
  readonly start: Effect.Effect<unknown, E, R | Scope.Scope>
  /** Default `permanent`. */
  readonly restart?: RestartType
  /** How long a stop may take (its finalizers) before the supervisor moves on, or `brutal` (no wait). Default 5 seconds. */
  readonly shutdown?: Duration.Input | "brutal"
}

/** Supervisor behaviour. */
export interface SupervisorOptions {
  /** Name in logs, errors and metric attributes. */
  readonly name: string
  /** Default `one-for-one`. */
  readonly strategy?: Strategy
  /** Restarts allowed within `period` before giving up. Default 3. */
  readonly maxRestarts?: number
  /** Default 5 seconds. */
  readonly period?: Duration.Input
  /**
   * Optional exponential back-off before a restart: `initial`, doubling per recent restart of that child,
   * up to `max`. The supervisor keeps answering while a child waits (its status is `restarting`).
   */
  readonly backoff?: { readonly initial: Duration.Input; readonly max: Duration.Input }
}

/** A child's state, for status pages. */
export interface ChildInfo {
  readonly id: string
  readonly restart: RestartType
  readonly status: "running" | "stopped" | "restarting"
  /** Times this child was (re)started after its first start. */
  readonly restarts: number
}

/** The supervisor exceeded its restart intensity and stopped. */
export class SupervisorGaveUp extends Data.TaggedError("SupervisorGaveUp")<{
  readonly supervisor: string
  readonly child: string
  readonly maxRestarts: number
  readonly period: Duration.Duration
  readonly cause: Cause.Cause<unknown>
}> {
  override get message() {
    return `supervisor ${this.supervisor} gave up: more than ${this.maxRestarts} restarts in ${
      Duration.format(this.period)
    } (last: ${this.child})`
  }
}

/** A child with this id already exists. */
export class DuplicateChild extends Data.TaggedError("DuplicateChild")<{ readonly id: string }> {
  override get message() {
    return `a child with id ${this.id} already exists`
  }
}

/** A running supervisor. */
export interface Supervisor {
  readonly name: string
  /** The children in start order with status and restart counts. */
  readonly children: Effect.Effect<ReadonlyArray<ChildInfo>>
  /** Adds and starts a child at run time (OTP start_child). */
  readonly startChild: <E = never, R = never>(spec: ChildSpec<E, R>) => Effect.Effect<void, DuplicateChild, Exclude<R, Scope.Scope>>
  /** Stops a child and removes it (OTP terminate_child + delete_child). */
  readonly terminateChild: (id: string) => Effect.Effect<void>
  /** Never succeeds; fails with SupervisorGaveUp when the supervisor gives up. */
  readonly await: Effect.Effect<never, SupervisorGaveUp>
}

const restartsTotal = Metric.counter("fiberd_supervisor_restarts_total", {
  description: "child restarts",
  incremental: true
})
const giveUpsTotal = Metric.counter("fiberd_supervisor_giveups_total", {
  description: "supervisors that exceeded their restart intensity",
  incremental: true
})

interface Child {
  readonly spec: ChildSpec<unknown, unknown>
  /** Runs the child with the supervisor's services, plus the caller's for a child added by `startChild`. */
  readonly run: (effect: Effect.Effect<unknown, unknown>) => Fiber.Fiber<unknown, unknown>
  readonly restart: RestartType
  fiber: Fiber.Fiber<unknown, unknown> | undefined
  generation: number
  restarts: number
  readonly recent: Array<number>
  /** The restart this child waits for (its back-off), or 0. */
  pending: number
}

type Event =
  | { readonly _tag: "Exited"; readonly child: Child; readonly generation: number; readonly exit: Exit.Exit<unknown, unknown> }
  | {
    readonly _tag: "Start"
    readonly spec: ChildSpec<unknown, unknown>
    readonly context: Context.Context<never>
    readonly done: Deferred.Deferred<void, DuplicateChild>
  }
  | { readonly _tag: "Terminate"; readonly id: string; readonly done: Deferred.Deferred<void> }
  /** A back-off ended: these children start again (those still waiting for this restart). */
  | { readonly _tag: "Restart"; readonly children: ReadonlyArray<Child>; readonly token: number }

/**
 * Starts a supervisor with its static children (in order). Closing the scope
 * stops the children in reverse order.
 *
 * @example
 * const sup = yield* Supervisor.make({ name: "root", strategy: "one-for-one", maxRestarts: 3, period: "5 seconds" }, [
 *   { id: "echo", start: Effect.andThen(Listener.make({ name: "echo", port: 7007 }, Echo.handler), Effect.never) },
 *   { id: "daytime", start: Effect.andThen(Listener.make({ name: "daytime", port: 7013 }, Daytime.handler), Effect.never) }
 * ])
 */
export const make = <R = never>(
  options: SupervisorOptions,
  specs: ReadonlyArray<ChildSpec<unknown, R>>
): Effect.Effect<Supervisor, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name
    const strategy = options.strategy ?? "one-for-one"
    const maxRestarts = options.maxRestarts ?? 3
    const period = Duration.fromInputUnsafe(options.period ?? "5 seconds")
    const periodMillis = Duration.toMillis(period)
    const attributes = { supervisor: name }
    const restarted = Metric.withAttributes(restartsTotal, attributes)
    const gaveUpMetric = Metric.withAttributes(giveUpsTotal, attributes)
    const context = (yield* Effect.context<R>()) as Context.Context<unknown>
    const scope = yield* Effect.scope
    const runFork = Effect.runForkWith(context)
    const events = yield* Queue.unbounded<Event>()
    const failed = yield* Deferred.make<never, SupervisorGaveUp>()
    const children: Array<Child> = []
    const intensity: Array<number> = []
    const log = (effect: Effect.Effect<void>) => effect.pipe(Effect.annotateLogs({ supervisor: name }))

    const record = (spec: ChildSpec<unknown, unknown>, extra?: Context.Context<never>): Child => ({
      spec,
      run: extra === undefined ? runFork : Effect.runForkWith(Context.merge(context, extra)),
      restart: spec.restart ?? "permanent",
      fiber: undefined,
      generation: 0,
      restarts: 0,
      recent: [],
      pending: 0
    })

    const startChild = (child: Child) =>
      Effect.sync(() => {
        const generation = ++child.generation
        const fiber = child.run(Effect.scoped(child.spec.start as Effect.Effect<unknown, unknown, Scope.Scope>))
        child.fiber = fiber
        fiber.addObserver((exit) => Queue.offerUnsafe(events, { _tag: "Exited", child, generation, exit }))
      })

    const stopChild = (child: Child): Effect.Effect<void> =>
      Effect.suspend(() => {
        const fiber = child.fiber
        if (fiber === undefined) return Effect.void
        child.fiber = undefined
        child.generation++ // its exit event is now stale
        const shutdown = child.spec.shutdown ?? "5 seconds"
        if (shutdown === "brutal") return Effect.sync(() => fiber.interruptUnsafe())
        return Fiber.interrupt(fiber).pipe(
          Effect.timeoutOption(shutdown),
          Effect.flatMap((done) =>
            done._tag === "None"
              ? log(Effect.logWarning(`child ${child.spec.id} did not stop within ${Duration.format(Duration.fromInputUnsafe(shutdown))}`))
              : Effect.void
          )
        )
      })

    const stopAll = (list: ReadonlyArray<Child>) => Effect.forEach([...list].reverse(), stopChild, { discard: true })

    const remove = (child: Child) => {
      const i = children.indexOf(child)
      if (i >= 0) children.splice(i, 1)
    }

    const giveUp = (child: Child, cause: Cause.Cause<unknown>) =>
      Effect.gen(function*() {
        const error = new SupervisorGaveUp({ supervisor: name, child: child.spec.id, maxRestarts, period, cause })
        yield* log(Effect.logError(error.message))
        yield* Metric.update(gaveUpMetric, 1)
        yield* stopAll(children)
        yield* Deferred.fail(failed, error)
      })

    /** The back-off before a child's restart (0 without one): `initial`, doubling per recent restart of that child, up to `max`. */
    const backoffMillis = (child: Child, now: number): number => {
      if (options.backoff === undefined) return 0
      while (child.recent.length > 0 && now - child.recent[0]! > periodMillis) child.recent.shift()
      child.recent.push(now)
      const initial = Duration.toMillis(options.backoff.initial)
      return Math.min(Duration.toMillis(options.backoff.max), initial * 2 ** (child.recent.length - 1))
    }

    const restart = (list: ReadonlyArray<Child>) =>
      Effect.forEach(list, (c) =>
        Effect.gen(function*() {
          c.pending = 0
          c.restarts++
          yield* startChild(c)
        }), { discard: true })

    /**
     * Restarts `list` after `delay`. The back-off is a delayed event, not a sleep of the loop: while
     * it runs, the supervisor goes on answering (startChild, terminateChild, other exits).
     */
    let nextToken = 1
    const restartAfter = (list: ReadonlyArray<Child>, delay: number) => {
      if (delay <= 0) return restart(list)
      const token = nextToken++
      for (const c of list) c.pending = token
      return Effect.forkIn(
        Effect.sleep(Duration.millis(delay)).pipe(Effect.andThen(Queue.offer(events, { _tag: "Restart", children: list, token }))),
        scope
      ).pipe(Effect.asVoid)
    }

    const onExit = (child: Child, exit: Exit.Exit<unknown, unknown>) =>
      Effect.gen(function*() {
        child.fiber = undefined
        const crashed = Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)
        if (crashed) {
          yield* log(Effect.logError(`child ${child.spec.id} crashed`, exit.cause))
        }
        const restartIt = child.restart === "permanent" || (child.restart === "transient" && crashed)
        if (!restartIt) {
          if (child.restart === "temporary") remove(child)
          return
        }
        // monotonic: a wall-clock step (NTP) neither forgets restarts nor invents them
        const now = Number((yield* Clock.monotonicTimeNanos) / 1_000n) / 1000
        intensity.push(now)
        while (intensity.length > 0 && now - intensity[0]! > periodMillis) intensity.shift()
        if (intensity.length > maxRestarts) {
          return yield* giveUp(child, Exit.isFailure(exit) ? exit.cause : Cause.empty)
        }
        yield* log(Effect.logWarning(`restarting child ${child.spec.id} (${strategy})`))
        yield* Metric.update(restarted, 1)
        const delay = backoffMillis(child, now)
        const at = children.indexOf(child)
        const affected = strategy === "one-for-one"
          ? [child]
          : strategy === "one-for-all"
          ? children.slice()
          : children.slice(at)
        const others = affected.filter((c) => c !== child)
        yield* stopAll(others)
        for (const c of others) if (c.restart === "temporary") remove(c)
        yield* restartAfter(affected.filter((c) => children.includes(c)), delay)
      })

    const handle = (event: Event): Effect.Effect<void> => {
      switch (event._tag) {
        case "Exited":
          if (event.generation !== event.child.generation || !children.includes(event.child)) return Effect.void
          return onExit(event.child, event.exit)
        case "Start":
          if (children.some((c) => c.spec.id === event.spec.id)) {
            return Deferred.fail(event.done, new DuplicateChild({ id: event.spec.id })).pipe(Effect.asVoid)
          }
          return Effect.suspend(() => {
            const child = record(event.spec, event.context)
            children.push(child)
            return startChild(child)
          }).pipe(Effect.andThen(Deferred.succeed(event.done, undefined)), Effect.asVoid)
        case "Restart":
          return restart(event.children.filter((c) => c.pending === event.token && c.fiber === undefined && children.includes(c)))
        case "Terminate": {
          const child = children.find((c) => c.spec.id === event.id)
          if (child === undefined) return Deferred.succeed(event.done, undefined).pipe(Effect.asVoid)
          return stopChild(child).pipe(
            Effect.andThen(Effect.sync(() => remove(child))),
            Effect.andThen(Deferred.succeed(event.done, undefined)),
            Effect.asVoid
          )
        }
      }
    }

    for (const spec of specs) {
      if (children.some((c) => c.spec.id === spec.id)) return yield* Effect.die(new DuplicateChild({ id: spec.id }))
      const child = record(spec as ChildSpec<unknown, unknown>)
      children.push(child)
      yield* startChild(child)
    }
    const loop = Effect.forever(Queue.take(events).pipe(Effect.flatMap(handle)))
    const loopFiber = yield* Effect.forkScoped(loop.pipe(Effect.raceFirst(Deferred.await(failed).pipe(Effect.ignore))), {
      startImmediately: true
    })
    yield* Effect.addFinalizer(() => Fiber.interrupt(loopFiber).pipe(Effect.andThen(stopAll(children))))

    return {
      name,
      children: Effect.sync(() =>
        children.map((c): ChildInfo => ({
          id: c.spec.id,
          restart: c.restart,
          status: c.fiber !== undefined ? "running" : c.pending !== 0 ? "restarting" : "stopped",
          restarts: c.restarts
        }))
      ),
      startChild: <E, R2>(spec: ChildSpec<E, R2>) =>
        Effect.gen(function*() {
          // the child runs with the caller's services (what its type asks for), over the supervisor's own
          const callerContext = yield* Effect.context<Exclude<R2, Scope.Scope>>()
          const done = yield* Deferred.make<void, DuplicateChild>()
          yield* Queue.offer(events, {
            _tag: "Start",
            spec: spec as ChildSpec<unknown, unknown>,
            context: callerContext as Context.Context<never>,
            done
          })
          return yield* Deferred.await(done)
        }),
      terminateChild: (id) =>
        Effect.gen(function*() {
          const done = yield* Deferred.make<void>()
          yield* Queue.offer(events, { _tag: "Terminate", id, done })
          yield* Deferred.await(done)
        }),
      await: Deferred.await(failed)
    }
  })

/**
 * A supervisor as a child of another: it runs until it gives up, and then
 * fails, so its parent applies its own restart rules (escalation).
 */
export const asChild = <R>(
  options: SupervisorOptions & { readonly restart?: RestartType; readonly shutdown?: Duration.Input | "brutal" },
  specs: ReadonlyArray<ChildSpec<unknown, R>>
): ChildSpec<SupervisorGaveUp, R> => ({
  id: options.name,
  restart: options.restart ?? "permanent",
  shutdown: options.shutdown ?? "30 seconds",
  start: Effect.flatMap(make(options, specs), (supervisor) => supervisor.await)
})

/** The service a supervisor layer provides. */
export class Root extends Context.Service<Root, Supervisor>()("fiberd/Supervisor") {}

/**
 * A supervisor as a Layer: its children start in order when the layer is
 * built and stop in reverse order when it is released.
 */
export const layer = <R = never>(options: SupervisorOptions, specs: ReadonlyArray<ChildSpec<unknown, R>>): Layer.Layer<Root, never, R> =>
  Layer.effect(Root, make(options, specs))

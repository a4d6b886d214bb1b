/**
 * Supervisors with Erlang/OTP semantics, in Effect's idiom: the public API.
 *
 * A child is an Effect (like an OTP process): returning is a normal exit,
 * failing or dying is a crash, and the supervisor stopping it is an
 * interruption. A child may have a start phase (`start`, then `run`): the
 * supervisor waits for it, so a child that cannot start is a start error, not
 * a crash (see `SupervisorSpec.ChildSpec`). Children start in order and stop in
 * reverse order. On an exit the restart type decides (permanent: always
 * restart; transient: only after a crash; temporary: never, and the child is
 * removed), the strategy decides who restarts with it (one-for-one,
 * one-for-all, rest-for-one), and the intensity decides when to give up: more
 * than `maxRestarts` restarts within `period` makes the supervisor stop every
 * child and fail with `SupervisorGaveUp`, which escalates to its parent when
 * it is itself a child (see `asChild`). Restarts are stamped with Effect's
 * monotonic clock, so a wall-clock step (NTP) changes nothing; the window is
 * exact to the millisecond (OTP truncates it to whole seconds, so fiberd is
 * never stricter than OTP). The rules themselves are in `SupervisorCore`.
 */
import { Context, Deferred, Effect, Layer, Option } from "effect"
import type { Duration, Scope } from "effect"
import * as Core from "./SupervisorCore.ts"
import type {
  ChildInfo,
  ChildNotFound,
  ChildRunning,
  ChildSpec,
  DuplicateChild,
  InvalidChildSpec,
  MaxChildren,
  RestartType,
  StartFailed,
  SupervisorGaveUp,
  SupervisorOptions,
  SupervisorStopped
} from "./SupervisorSpec.ts"

export * from "./SupervisorSpec.ts"

/** A running supervisor. */
export interface Supervisor {
  readonly name: string
  /** The children in start order with status and restart counts (OTP which_children). */
  readonly children: Effect.Effect<ReadonlyArray<ChildInfo>>
  /**
   * Adds and starts a child at run time (OTP start_child): `Some(value)` of its start phase (`Some(undefined)`
   * without one), `None` when it answered `ignore`. A start error is returned and no child is kept.
   */
  readonly startChild: <A = unknown, E = never, R = never>(
    spec: ChildSpec<E, R, A>
  ) => Effect.Effect<Option.Option<A>, StartFailed | DuplicateChild | InvalidChildSpec | SupervisorStopped, Exclude<R, Scope.Scope>>
  /** Stops a child; its spec is kept unless it is temporary (OTP terminate_child). */
  readonly terminateChild: (id: string) => Effect.Effect<void, ChildNotFound>
  /** Starts a stopped child again from its kept spec (OTP restart_child). */
  readonly restartChild: (id: string) => Effect.Effect<Option.Option<unknown>, ChildNotFound | ChildRunning | StartFailed | SupervisorStopped>
  /** Forgets a stopped child's spec (OTP delete_child). */
  readonly deleteChild: (id: string) => Effect.Effect<void, ChildNotFound | ChildRunning>
  /** Stops a child and forgets it: `terminateChild` then `deleteChild`. */
  readonly removeChild: (id: string) => Effect.Effect<void, ChildNotFound>
  /** Succeeds when the supervisor shuts down by itself (`autoShutdown`); fails with SupervisorGaveUp when it gives up. */
  readonly await: Effect.Effect<void, SupervisorGaveUp>
}

const call = <A, E>(core: Core.Core, event: (done: Deferred.Deferred<A, E>) => Core.Event) =>
  Effect.gen(function*() {
    const done = yield* Deferred.make<A, E>()
    yield* core.send(event(done))
    return yield* Deferred.await(done)
  })

/**
 * Starts a supervisor with its static children, in order, each child's start
 * phase awaited. When one cannot start, the ones started stop in reverse order
 * and the supervisor fails with `StartFailed`. Closing the scope stops the
 * children in reverse order.
 *
 * @example
 * const sup = yield* Supervisor.make({ name: "root", strategy: "one-for-one", maxRestarts: 3, period: "5 seconds" }, [
 *   { id: "echo", start: Listener.make({ name: "echo", port: 7007 }, Echo.handler), run: () => Effect.never },
 *   { id: "daytime", start: Listener.make({ name: "daytime", port: 7013 }, Daytime.handler), run: () => Effect.never }
 * ])
 */
export const make = <R = never>(
  options: SupervisorOptions,
  specs: ReadonlyArray<ChildSpec<unknown, R>>
): Effect.Effect<Supervisor, StartFailed, R | Scope.Scope> =>
  Effect.map(Core.start(options, specs), (core): Supervisor => {
    const terminateChild = (id: string) => call<void, ChildNotFound>(core, (done) => ({ _tag: "Terminate", id, done }))
    const deleteChild = (id: string) => call<void, ChildNotFound | ChildRunning>(core, (done) => ({ _tag: "Delete", id, done }))
    return {
      name: options.name,
      children: core.children,
      startChild: <A, E, R2>(spec: ChildSpec<E, R2, A>) =>
        Effect.gen(function*() {
          // the child runs with the caller's services (what its type asks for), over the supervisor's own
          const context = yield* Effect.context<Exclude<R2, Scope.Scope>>()
          const started = call<Option.Option<unknown>, Core.StartError>(
            core,
            (done) => ({ _tag: "Start", spec: spec as ChildSpec<unknown, unknown, unknown>, context: context as Context.Context<never>, done })
          )
          // only a dynamic supervisor has a maximum
          return (yield* started.pipe(Effect.catchTag("MaxChildren", Effect.die))) as Option.Option<A>
        }),
      terminateChild,
      restartChild: (id) => call(core, (done) => ({ _tag: "RestartChild", id, done })),
      deleteChild,
      // once terminated, a child is stopped (deleting it cannot meet ChildRunning) or, temporary, already forgotten
      removeChild: (id) => terminateChild(id).pipe(Effect.andThen(deleteChild(id).pipe(Effect.catchTags({ ChildRunning: () => Effect.void, ChildNotFound: () => Effect.void })))),
      await: core.await
    }
  })

/**
 * A supervisor as a child of another: its start phase is the supervisor's
 * (a child that cannot start makes it fail to start); it runs until it gives
 * up, and then fails, so its parent applies its own restart rules (escalation),
 * or until it shuts down by itself (`autoShutdown`), a normal exit.
 */
export const asChild = <R>(
  options: SupervisorOptions & { readonly restart?: RestartType; readonly shutdown?: Duration.Input | "brutal"; readonly significant?: boolean },
  specs: ReadonlyArray<ChildSpec<unknown, R>>
): ChildSpec<SupervisorGaveUp | StartFailed, R, Supervisor> => ({
  id: options.name,
  restart: options.restart ?? "permanent",
  shutdown: options.shutdown ?? "30 seconds",
  ...(options.significant !== undefined ? { significant: options.significant } : {}),
  start: make(options, specs),
  run: (supervisor) => supervisor.await
})

/** The service a supervisor layer provides. */
export class Root extends Context.Service<Root, Supervisor>()("fiberd/Supervisor") {}

/**
 * A supervisor as a Layer: its children start in order when the layer is
 * built (a start error fails the layer) and stop in reverse order when it is released.
 */
export const layer = <R = never>(options: SupervisorOptions, specs: ReadonlyArray<ChildSpec<unknown, R>>): Layer.Layer<Root, StartFailed, R> =>
  Layer.effect(Root, make(options, specs))

/** A child of a dynamic supervisor: a spec without id (it gets `label/N`, N counting up from 1). */
export type DynamicChild<E = unknown, R = never, A = any> = Omit<ChildSpec<E, R, A>, "id" | "significant"> & {
  /** The first part of the child's id, default the supervisor's name. */
  readonly label?: string
}

/** Options of a dynamic supervisor (always one-for-one, like OTP's simple_one_for_one). */
export interface DynamicOptions extends Omit<SupervisorOptions, "strategy" | "autoShutdown"> {
  /** Children at most (running or waiting for a restart); `startChild` fails with MaxChildren beyond. Default unbounded. */
  readonly maxChildren?: number
}

/** A running dynamic supervisor: many children of one template (Elixir's DynamicSupervisor). */
export interface DynamicSupervisor<Arg> {
  readonly name: string
  readonly children: Effect.Effect<ReadonlyArray<ChildInfo>>
  /** Starts a child for `arg`: `Some(id)`, or `None` when its start answered `ignore` (nothing is kept). */
  readonly startChild: (arg: Arg) => Effect.Effect<Option.Option<string>, StartFailed | MaxChildren | SupervisorStopped>
  /** Stops a child and forgets it. */
  readonly terminateChild: (id: string) => Effect.Effect<void, ChildNotFound>
  /** Fails with SupervisorGaveUp when it gives up. */
  readonly await: Effect.Effect<void, SupervisorGaveUp>
}

/**
 * A dynamic supervisor of one child template (OTP's simple_one_for_one,
 * Elixir's DynamicSupervisor): children are added with `startChild(arg)`,
 * restarted one for one by their restart type, and forgotten once they end
 * for good; at most `maxChildren` at once; stopped all at once when the scope closes.
 *
 * @example
 * const rooms = yield* Supervisor.dynamic({ name: "rooms", maxChildren: 1000 }, (room: string) => ({
 *   label: room,
 *   restart: "transient",
 *   start: Effect.andThen(Effect.logInfo(`room ${room} opened`), Effect.never)
 * }))
 * const id = yield* rooms.startChild("lobby") // Some("lobby/1")
 */
export const dynamic = <Arg, R = never>(
  options: DynamicOptions,
  template: (arg: Arg) => DynamicChild<unknown, R>
): Effect.Effect<DynamicSupervisor<Arg>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const maxChildren = options.maxChildren ?? Number.POSITIVE_INFINITY
    // no static children: nothing can fail to start
    const core = yield* Core.start<R>({ ...options, dynamic: { maxChildren } }, []).pipe(Effect.orDie)
    const context = (yield* Effect.context<never>()) as Context.Context<never>
    let next = 0
    return {
      name: options.name,
      children: core.children,
      startChild: (arg) =>
        Effect.suspend(() => {
          const { label, ...child } = template(arg)
          const spec = { ...child, id: `${label ?? options.name}/${++next}` } as ChildSpec<unknown, unknown, unknown>
          return call<Option.Option<unknown>, Core.StartError>(
            core,
            (done) => ({ _tag: "Start", spec, context, done })
          ).pipe(
            Effect.map(Option.map(() => spec.id)),
            // ids are fresh and templates cannot be significant
            Effect.catchTags({ DuplicateChild: Effect.die, InvalidChildSpec: Effect.die })
          )
        }),
      terminateChild: (id) => call<void, ChildNotFound>(core, (done) => ({ _tag: "Terminate", id, done })),
      await: core.await
    }
  })

/**
 * fast-check properties inside Effect tests.
 *
 * `@effect/vitest`'s `it.prop` takes Effect Schemas, not fast-check
 * arbitraries; these helpers run a fast-check property whose body is an
 * Effect. Every run gets a fresh TestClock (time starts at 0) and its own
 * Scope, so a property can fork fibers and advance time freely.
 */
import { Cause, Effect, Exit, Layer, Scope } from "effect"
import type { Context } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"

type Arbitraries<Ts extends ReadonlyArray<unknown>> = { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }

/** A property body: fails (or returns false) when the property does not hold. */
export type Body<Ts extends ReadonlyArray<unknown>, E, R> = (...args: Ts) => Effect.Effect<boolean | void, E, R>

/** Why a run failed, as an Error fast-check keeps (`errorInstance`): the body's own error, or its Effect failure rendered. */
const failureOf = <E>(cause: Cause.Cause<E>): Error => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error : new Error(Cause.pretty(cause))
}

const runner = <R>(context: Context.Context<R>) => <E>(effect: Effect.Effect<boolean | void, E, R | Scope.Scope>) =>
  Effect.runPromiseWith(context)(
    Effect.exit(effect.pipe(Effect.scoped, Effect.provide(TestClock.layer() as Layer.Layer<never>))) as Effect.Effect<
      Exit.Exit<boolean | void, E>,
      never,
      R
    >
  ).then((exit) => {
    if (Exit.isFailure(exit)) throw failureOf(exit.cause)
    return exit.value
  })

/**
 * fast-check's report with the body's own failure under it (once): what was
 * expected and what came, beside the counterexample and the seed. An
 * assertion's `actual`/`expected` are kept, so the test runner shows its diff.
 */
export const failureReport = <Ts>(details: fc.RunDetails<Ts>): Error => {
  const cause = details.errorInstance
  const why = cause instanceof Error ? cause.message : cause === undefined ? "the body returned false" : String(cause)
  // the body's failure is in the message (once): not also as a `cause`, which runners print again
  const report = new Error(`${fc.defaultReportMessage(details) ?? "property failed"}\n\nThe body failed with: ${why}`)
  if (cause instanceof Error && "actual" in cause && "expected" in cause) {
    Object.assign(report, { actual: cause.actual, expected: cause.expected, showDiff: true })
  }
  return report
}

/**
 * Runs the property and returns fast-check's report (it does not fail):
 * for tests about properties themselves, e.g. that a broken protocol is caught.
 */
export const check = <Ts extends [unknown, ...Array<unknown>], E, R>(
  arbitraries: Arbitraries<Ts>,
  body: Body<Ts, E, R>,
  parameters: fc.Parameters<Ts> = {}
): Effect.Effect<fc.RunDetails<Ts>, never, Exclude<R, Scope.Scope>> =>
  Effect.gen(function*() {
    const run = runner((yield* Effect.context<Exclude<R, Scope.Scope>>()) as Context.Context<R>)
    const property = (fc.asyncProperty as unknown as (...a: Array<unknown>) => fc.IAsyncProperty<Ts>)(
      ...arbitraries,
      (...args: Ts) => run(body(...args))
    )
    return yield* Effect.promise(() => fc.check(property, parameters))
  })

/**
 * Asserts the property: on failure the test fails with fast-check's report,
 * including the shrunk counterexample (bytes shown readably, chunks marked)
 * and the seed to replay it.
 *
 * @example
 * it.effect("echo returns any input, however it is chunked", () =>
 *   Property.assert([Arbitraries.chunked(fc.uint8Array())], (input) =>
 *     Script.run(Echo.handler, [...input.steps, Script.endWrite]).pipe(
 *       Effect.map((r) => Buffer.from(r.output).equals(input.bytes)))))
 */
export const assert = <Ts extends [unknown, ...Array<unknown>], E, R>(
  arbitraries: Arbitraries<Ts>,
  body: Body<Ts, E, R>,
  parameters: fc.Parameters<Ts> = {}
): Effect.Effect<void, never, Exclude<R, Scope.Scope>> =>
  check(arbitraries, body, parameters).pipe(
    Effect.flatMap((details) =>
      details.failed ? Effect.die(failureReport(details)) : Effect.void
    )
  )

/**
 * The property as a test function for vitest's own `it`: resolves when it
 * holds; otherwise rejects with `failureReport` — the counterexample, the
 * seed and the body's own failure — which vitest prints once. (`it.effect`
 * from @effect/vitest prints a failing Effect twice: as the test's error and
 * as an ERROR log line of its own; use this where that matters.)
 *
 * @example
 * it("echo returns any input, however it is chunked", Property.run([Arbitraries.chunked(fc.uint8Array())], (input) =>
 *   Script.run(Echo.handler, [...input.steps, Script.endWrite]).pipe(
 *     Effect.map((r) => Buffer.from(r.output).equals(input.bytes)))))
 */
export const run = <Ts extends [unknown, ...Array<unknown>], E>(
  arbitraries: Arbitraries<Ts>,
  body: Body<Ts, E, Scope.Scope>,
  parameters: fc.Parameters<Ts> = {}
): (() => Promise<void>) =>
async () => {
  const details = await Effect.runPromise(check(arbitraries, body, parameters))
  if (details.failed) throw failureReport(details)
}

/** A model-based command whose `run` is an Effect (see `fc.commands`). */
export interface Command<Model extends object, Real, E = unknown, R = never> {
  /** May this command run in this model state? */
  readonly check: (model: Readonly<Model>) => boolean
  /** Applies the command to the real system, checks it against the model, updates the model. */
  readonly run: (model: Model, real: Real) => Effect.Effect<void, E, R>
  /** How the command prints in a counterexample. */
  readonly toString: () => string
}

/**
 * Runs a sequence of commands (from `fc.commands`) against a model and a real
 * system built by `setup`, inside one Scope (closed at the end of the run).
 */
export const modelRun = <Model extends object, Real, E, R>(
  setup: Effect.Effect<{ readonly model: Model; readonly real: Real }, E, R>,
  commands: Iterable<Command<Model, Real, unknown, never>> | Iterable<unknown>
): Effect.Effect<void, unknown, R> =>
  Effect.gen(function*() {
    const built = yield* setup
    const context = yield* Effect.context<never>()
    const adapted = [...(commands as Iterable<Command<Model, Real, unknown, never>>)].map((command): fc.AsyncCommand<Model, Real> => ({
      check: (model) => command.check(model),
      run: (model, real) => Effect.runPromiseWith(context)(command.run(model, real)),
      toString: () => command.toString()
    }))
    yield* Effect.tryPromise({
      try: () => fc.asyncModelRun(() => ({ model: built.model, real: built.real }), adapted),
      catch: (error) => error
    })
  })

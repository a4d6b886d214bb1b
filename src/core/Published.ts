/**
 * Plain numbers published as Effect metrics: the hot path adds to ordinary
 * fields, and a metric reads them only when a snapshot is taken (a
 * `Metric.registerUnsafe` hook), so moving bytes never touches the metric
 * registry. Used by the listeners, UDP, and the HTTP engine.
 */
import { Effect, Metric } from "effect"
import type { HistogramState, Registration } from "effect/Metric"
import type { Context, Scope } from "effect"

/** One metric and how to read its state. */
export interface Published {
  readonly register: (context: Context.Context<never>) => Registration
}

const noop = () => {}

/** A counter whose value is `get()`. */
export const counter = (name: string, description: string, attributes: Record<string, string>, get: () => number): Published => ({
  register: (context) =>
    Metric.registerUnsafe(Metric.counter(name, { description, attributes, incremental: true }), context, {
      get: () => ({ count: get(), incremental: true }),
      update: noop,
      modify: noop
    })
})

/** A gauge whose value is `get()`. */
export const gauge = (name: string, description: string, attributes: Record<string, string>, get: () => number): Published => ({
  register: (context) =>
    Metric.registerUnsafe(Metric.gauge(name, { description, attributes }), context, { get: () => ({ value: get() }), update: noop, modify: noop })
})

/** A histogram whose state is `get()` (cumulative buckets, as Effect's own). */
export const histogram = (
  name: string,
  description: string,
  attributes: Record<string, string>,
  boundaries: ReadonlyArray<number>,
  get: () => HistogramState
): Published => ({
  register: (context) =>
    Metric.registerUnsafe(Metric.histogram(name, { description, boundaries, attributes }), context, { get, update: noop, modify: noop })
})

/** Registers `metrics` in the current metric registry until the scope closes. */
export const publish = (metrics: ReadonlyArray<Published>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = (yield* Effect.context<never>()) as Context.Context<never>
    const registrations = metrics.map((m) => m.register(context))
    yield* Effect.addFinalizer(() => Effect.sync(() => registrations.forEach((r) => r.remove())))
  })

/**
 * One timeout manager shared by all connections of a listener (Warp's design).
 *
 * Instead of one timer per connection, each connection records the manager's
 * current epoch whenever bytes move (a single property store on the hot path).
 * One fiber advances the epoch every `resolution` and expires the entries
 * that have been idle for their whole timeout. A timeout therefore fires
 * between `timeout` and `timeout + resolution` after the last activity. The
 * sweep sleeps on Effect's Clock, so tests drive it with TestClock.
 */
import { Duration, Effect } from "effect"
import type { Scope } from "effect"

/** Something with an idle deadline: a connection, a lingering close. */
export interface Timed {
  /** The manager epoch of the last activity; stored by the owner on every I/O. */
  lastActive: number
  /** How many whole epochs of inactivity expire it. */
  timeoutTicks: number
  /** Called once, from the sweep, when the entry expires; it is removed first. */
  readonly onTimeout: () => void
}

/** The shared manager: register entries, read the epoch to mark activity. */
export class TimeoutManager {
  /** Advances by one every `resolutionMillis`. */
  epoch = 0
  private readonly entries = new Set<Timed>()
  readonly resolutionMillis: number

  constructor(resolutionMillis: number) {
    this.resolutionMillis = resolutionMillis
  }

  /** Number of whole epochs that cover `millis` (at least one). */
  ticksFor(millis: number): number {
    return Math.max(1, Math.ceil(millis / this.resolutionMillis))
  }

  /** Starts watching `entry`, counting its idleness from now. */
  add(entry: Timed): void {
    entry.lastActive = this.epoch
    this.entries.add(entry)
  }

  /** Stops watching `entry` (it will not fire). */
  remove(entry: Timed): void {
    this.entries.delete(entry)
  }

  /** Advances the epoch and fires every entry idle for more than its ticks. */
  sweep(): void {
    const epoch = ++this.epoch
    let expired: Array<Timed> | undefined
    for (const entry of this.entries) {
      if (epoch - entry.lastActive > entry.timeoutTicks) (expired ??= []).push(entry)
    }
    if (expired === undefined) return
    for (const entry of expired) {
      this.entries.delete(entry)
      entry.onTimeout()
    }
  }
}

/**
 * Picks a sweep resolution for a timeout: a quarter of it, at most one second
 * and at least 10 ms, so that a timeout fires at most 25 % late.
 */
export const resolutionFor = (timeout: Duration.Duration): number =>
  Math.min(1000, Math.max(10, Math.floor(Duration.toMillis(timeout) / 4)))

/** Creates a manager whose sweep fiber lives as long as the current scope. */
export const make = (resolution: Duration.Input): Effect.Effect<TimeoutManager, never, Scope.Scope> =>
  Effect.gen(function*() {
    const manager = new TimeoutManager(Duration.toMillis(Duration.fromInputUnsafe(resolution)))
    const tick = Effect.sleep(Duration.millis(manager.resolutionMillis)).pipe(
      Effect.andThen(Effect.sync(() => manager.sweep()))
    )
    yield* Effect.forkScoped(Effect.forever(tick), { startImmediately: true })
    return manager
  })

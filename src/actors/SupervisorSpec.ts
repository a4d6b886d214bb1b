/**
 * What a supervisor is told and what it answers: child specs, supervisor
 * options, the child listing and the typed errors of the child API. The
 * control loop is `SupervisorCore`; the public API is `Supervisor`.
 */
import type { Cause, Effect, Scope } from "effect"
import { Data, Duration } from "effect"

/** When a child that exited is restarted. */
export type RestartType = "permanent" | "transient" | "temporary"

/** Which children restart when one exits. */
export type Strategy = "one-for-one" | "one-for-all" | "rest-for-one"

/** When a supervisor stops by itself because significant children ended (OTP's `auto_shutdown`). */
export type AutoShutdown = "never" | "any-significant" | "all-significant"

/** What a child's start answers to say "do not run me" (OTP's `ignore`): the child is kept, not running. */
export const ignore: unique symbol = Symbol.for("fiberd/Supervisor/ignore")
/** The type of `ignore`. */
export type Ignore = typeof ignore

/**
 * How one child is run.
 *
 * Without `run`, `start` is the child's whole life and starting cannot fail: the
 * child counts as started once its fiber is forked (a failure is a crash).
 * With `run`, `start` is the **start phase** (OTP's start function): the
 * supervisor waits for it; its failure is a start error, `ignore` keeps the
 * child without running it, and its value is handed to `run`, the child's
 * life. One Scope spans both and closes when the child ends or is stopped.
 */
export interface ChildSpec<E = unknown, R = never, A = any> {
  /** Unique among the supervisor's children. */
  readonly id: string
  /** The start phase when `run` is given, else the child's whole life. */
  readonly start: Effect.Effect<A | Ignore, E, R | Scope.Scope>
  /** The child's life after a successful start phase. */
  readonly run?: (started: A) => Effect.Effect<unknown, E, R | Scope.Scope>
  /** Default `permanent`. */
  readonly restart?: RestartType
  /** How long a stop may take (its finalizers) before the supervisor moves on, or `brutal` (no wait). Default 5 seconds. */
  readonly shutdown?: Duration.Input | "brutal"
  /** An exit of its own (not restarted) may stop the supervisor, per its `autoShutdown`. Not for permanent children. */
  readonly significant?: boolean
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
  /** Default `never`. */
  readonly autoShutdown?: AutoShutdown
}

/** A child's state, for status pages (OTP's `which_children`). */
export interface ChildInfo {
  readonly id: string
  readonly restart: RestartType
  /** `restarting`: waiting for its back-off or for another attempt after a failed start. */
  readonly status: "running" | "stopped" | "restarting"
  /** Times the supervisor restarted this child (successful restarts after its first start). */
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

/** A child's start phase failed (at the supervisor's start, `startChild` or `restartChild`). */
export class StartFailed extends Data.TaggedError("StartFailed")<{
  readonly supervisor: string
  readonly child: string
  readonly cause: Cause.Cause<unknown>
}> {
  override get message() {
    return `supervisor ${this.supervisor}: child ${this.child} failed to start`
  }
}

/** A child with this id already exists (OTP's `already_started` when running, `already_present` when not). */
export class DuplicateChild extends Data.TaggedError("DuplicateChild")<{ readonly id: string; readonly running: boolean }> {
  override get message() {
    return `a child with id ${this.id} already exists${this.running ? " and runs" : ""}`
  }
}

/** No child with this id. */
export class ChildNotFound extends Data.TaggedError("ChildNotFound")<{ readonly id: string }> {
  override get message() {
    return `no child with id ${this.id}`
  }
}

/** `restartChild` / `deleteChild` of a child that runs or waits for its restart. */
export class ChildRunning extends Data.TaggedError("ChildRunning")<{ readonly id: string; readonly status: "running" | "restarting" }> {
  override get message() {
    return `child ${this.id} is ${this.status}`
  }
}

/** A child spec the supervisor cannot take (a permanent significant child, or significant without `autoShutdown`). */
export class InvalidChildSpec extends Data.TaggedError("InvalidChildSpec")<{ readonly id: string; readonly reason: string }> {
  override get message() {
    return `child ${this.id}: ${this.reason}`
  }
}

/** A dynamic supervisor has `maxChildren` children. */
export class MaxChildren extends Data.TaggedError("MaxChildren")<{ readonly supervisor: string; readonly maxChildren: number }> {
  override get message() {
    return `supervisor ${this.supervisor} has its maximum of ${this.maxChildren} children`
  }
}

/** The supervisor has stopped (gave up or shut down by itself): it starts nothing more. */
export class SupervisorStopped extends Data.TaggedError("SupervisorStopped")<{ readonly supervisor: string }> {
  override get message() {
    return `supervisor ${this.supervisor} has stopped`
  }
}

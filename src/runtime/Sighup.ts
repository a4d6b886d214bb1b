/**
 * SIGHUP, one path for the single process and the prefork primary: reopen
 * the logs (rotation); with a table file, read it again — an invalid table
 * is logged and the old one keeps running — warn about the keys a reload
 * does not apply (ReloadPlan.restartOnly), then apply the new table (the
 * runtime's reload plan, and in prefork mode a roll of the workers).
 */
import { Effect } from "effect"
import * as ReloadPlan from "./ReloadPlan.ts"
import type * as ServiceTable from "./ServiceTable.ts"

/** What a process does on SIGHUP. */
export interface SighupHandler {
  readonly mode: "single" | "prefork"
  /** The table the process started with (the keys only a restart changes are compared with it). */
  readonly startedWith: ServiceTable.Table
  /** Reopens every log of the process. */
  readonly reopenLogs: Effect.Effect<void>
  /** Reads the table file again; undefined when running the built-in table. */
  readonly load: Effect.Effect<ServiceTable.Table, { readonly message: string }> | undefined
  /** Applies a valid new table. */
  readonly apply: (next: ServiceTable.Table) => Effect.Effect<void>
}

/** One SIGHUP. */
export const handle = (handler: SighupHandler): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* handler.reopenLogs
    if (handler.load === undefined) return yield* Effect.logInfo("SIGHUP: logs reopened (built-in table, nothing to re-read)")
    const next = yield* Effect.result(handler.load)
    if (next._tag === "Failure") {
      return yield* Effect.logError(`SIGHUP: the new table is invalid; the old one keeps running\n${next.failure.message}`)
    }
    const ignored = ReloadPlan.restartOnly(handler.startedWith, next.success, handler.mode)
    if (ignored.length > 0) {
      yield* Effect.logWarning(`SIGHUP: ${ignored.join(", ")} changed; they keep their old values until fiberd is restarted`)
    }
    yield* handler.apply(next.success)
  })

/**
 * systemd's service notifications (sd_notify(3)) for a `Type=notify` unit:
 * `READY=1` once every service listens, `RELOADING=1` with `MONOTONIC_USEC=`
 * at SIGHUP and `READY=1` when the reload is done, `STOPPING=1` when the
 * drain begins, `STATUS=` lines for `systemctl status`, and `WATCHDOG=1` at
 * half of `WATCHDOG_USEC`, sent from the event loop itself (a loop that
 * stalls misses it, and systemd restarts fiberd). Node has no Unix datagram
 * sockets, so each notification is sent by systemd's own `systemd-notify`
 * tool (present wherever systemd is; path and abstract-namespace sockets
 * alike): no native addon to build. It runs as a child process, so the unit
 * needs `NotifyAccess=all` (what `fiberd unit` writes). Nothing happens
 * without `NOTIFY_SOCKET`.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { execFile } from "node:child_process"

/** Where notifications go, or undefined when fiberd does not run under systemd (no `NOTIFY_SOCKET`). */
export interface Notifier {
  /** Sends `assignments` (`READY=1`, `STATUS=...`), in one datagram, in the background. */
  readonly send: (...assignments: ReadonlyArray<string>) => void
}

/** The notifier for this process's environment (sd_notify: `NOTIFY_SOCKET`). */
export const fromEnv = (env: NodeJS.ProcessEnv = process.env): Notifier | undefined => {
  const socket = env["NOTIFY_SOCKET"]
  if (socket === undefined || socket === "") return undefined
  return {
    send: (...assignments) => {
      // the tool reads NOTIFY_SOCKET from its environment, which it inherits; a failure is not fatal to serving
      execFile("systemd-notify", [...assignments], { env: { ...env, NOTIFY_SOCKET: socket } }, () => {})
    }
  }
}

/** A `STATUS=` text: services, open connections and (given the last reading) requests per second. */
export const summary = (
  services: ReadonlyArray<{ readonly name: string; readonly stats?: { readonly active: number }; readonly requests?: () => number }>,
  last: { readonly before: ReadonlyMap<string, number>; readonly seconds: number } | undefined
): string => {
  const connections = services.reduce((n, s) => n + (s.stats?.active ?? 0), 0)
  const parts = [`${services.length} services`, `${connections} connections`]
  if (last !== undefined) {
    const requests = services.reduce((n, s) => n + Math.max(0, (s.requests?.() ?? 0) - (last.before.get(s.name) ?? 0)), 0)
    parts.push(`${(requests / last.seconds).toFixed(1)} requests/s`)
  }
  return parts.join(", ")
}

/** `MONOTONIC_USEC=` now, on CLOCK_MONOTONIC (what libuv's hrtime reads on Linux). */
export const monotonicUsec = (): string => `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`

/**
 * Ready (once every service listens): the watchdog starts, `READY=1` with `status` is sent, and
 * `STOPPING=1` when the scope begins to close — made after the services, it runs before their
 * finalizers, as the drain begins. Nothing without a notifier.
 */
export const ready = (notifier: Notifier | undefined, status: string): Effect.Effect<void, never, Scope.Scope> =>
  notifier === undefined ? Effect.void : Effect.gen(function*() {
    yield* watchdog(notifier)
    yield* Effect.addFinalizer(() => Effect.sync(() => notifier.send("STOPPING=1", "STATUS=draining")))
    notifier.send("READY=1", `STATUS=${status}`)
  })

/** `reload` (a SIGHUP's work) between `RELOADING=1` (with `MONOTONIC_USEC=`) and `READY=1` with `status()`, however it ends. */
export const reloading = <A, E, R>(notifier: Notifier | undefined, reload: Effect.Effect<A, E, R>, status: () => string): Effect.Effect<A, E, R> =>
  notifier === undefined ? reload : Effect.ensuring(
    Effect.andThen(Effect.sync(() => notifier.send("RELOADING=1", monotonicUsec())), reload),
    Effect.sync(() => notifier.send("READY=1", `STATUS=${status()}`))
  )

/**
 * The watchdog: `WATCHDOG=1` every half of `WATCHDOG_USEC` (when set for this process: `WATCHDOG_PID`
 * unset or ours), from a timer on the event loop, until the scope closes.
 */
export const watchdog = (notifier: Notifier, env: NodeJS.ProcessEnv = process.env): Effect.Effect<void, never, Scope.Scope> =>
  Effect.suspend(() => {
    const usec = Number(env["WATCHDOG_USEC"] ?? 0)
    const pid = env["WATCHDOG_PID"]
    if (!(usec > 0) || (pid !== undefined && pid !== String(process.pid))) return Effect.void
    return Effect.acquireRelease(
      Effect.sync(() => setInterval(() => notifier.send("WATCHDOG=1"), Math.max(1, Math.floor(usec / 2000)))),
      (timer) => Effect.sync(() => clearInterval(timer))
    ).pipe(Effect.asVoid)
  })

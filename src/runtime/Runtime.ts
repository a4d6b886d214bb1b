/**
 * The service-table runtime: turns a table into running services under one
 * root supervisor, and applies a new table as a difference (SIGHUP).
 *
 * The access log starts before the supervisor and stops after it, so every
 * service's last entries are written. Every service is a permanent child of
 * the root supervisor, started in table order; a service that cannot bind at
 * startup fails the start (the CLI exits 1 naming it).
 */
import { Cause, Duration, Effect, Exit, Scope, Stream } from "effect"
import * as AccessLog from "../actors/AccessLog.ts"
import * as LogWriter from "../actors/LogWriter.ts"
import * as Supervisor from "../actors/Supervisor.ts"
import * as Options from "../core/Options.ts"
import * as Listener from "../io/Listener.ts"
import type * as Chat from "../protocols/chat/Chat.ts"
import * as Kinds from "./kinds/index.ts"
import type * as Kind from "./kinds/Kind.ts"
import * as Offload from "../actors/Offload.ts"
import { Pbkdf2Jobs, type Pbkdf2Pool, threadEntry } from "./Pbkdf2Jobs.ts"
import * as ReloadPlan from "./ReloadPlan.ts"
import * as ServiceTable from "./ServiceTable.ts"
import { StartError } from "./StartError.ts"
import * as Status from "./Status.ts"
import * as StatusFeed from "./StatusFeed.ts"

export type StartOptions = Kind.StartOptions

/** Where a table's access log goes. */
const accessLogPath = (t: ServiceTable.Table) => AccessLog.options.resolve(t.accessLog).path

/**
 * The process's offload pool when the table has an http service and `offload.threads` is not 0
 * (default 1 thread). A first job is sent at once so the threads load while the services start,
 * not on the first request. (A change of `offload` on SIGHUP needs a restart, or a worker roll.)
 */
const startOffload = (table: ServiceTable.Table): Effect.Effect<Pbkdf2Pool | undefined, never, Scope.Scope> =>
  Effect.gen(function*() {
    const threads = Offload.options.resolve(table.offload).threads
    if (threads === 0 || !table.services.some((s) => s.protocol === "http")) return undefined
    const pool = yield* Offload.make(Pbkdf2Jobs, { ...table.offload, entry: threadEntry })
    yield* Effect.forkScoped(Effect.ignore(Effect.forEach(Array.from({ length: threads }), () => pool.run((jobs) => jobs.Pbkdf2({ rounds: 1 })), { concurrency: "unbounded" })))
    return pool
  })

/** A running server. */
export interface Running {
  /** Running services in table order. */
  readonly services: () => ReadonlyArray<Status.ServiceEntry>
  readonly supervisor: Supervisor.Supervisor
  /** What the status page reads. */
  readonly status: Status.StatusSource
  readonly accessLog: LogWriter.LogWriter<AccessLog.AccessEntry>
  /** Reopens the access log's file (log rotation). */
  readonly reopenLogs: Effect.Effect<void>
  /**
   * Applies a new table: new services start, removed ones drain and stop, changed ones restart (also
   * when a table-wide key that shapes them changed: drainTimeout, maxConnections); a changed
   * accessLog switches the access log.
   */
  readonly reload: (table: ServiceTable.Table) => Effect.Effect<{ readonly started: ReadonlyArray<string>; readonly stopped: ReadonlyArray<string>; readonly failed: ReadonlyArray<string> }>
}

/**
 * Starts every service of `table` under a root supervisor, in the current
 * scope. `errorLogStats` feeds the status page.
 */
export const start = (
  table: ServiceTable.Table,
  options: StartOptions = {}
): Effect.Effect<Running, StartError, Scope.Scope> =>
  Effect.gen(function*() {
    // the access log can be switched by SIGHUP (path or format changed): services tell the current one
    const openAccessLog = (t: ServiceTable.Table) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const writer = yield* AccessLog.make(t.accessLog ?? {}).pipe(Scope.provide(scope))
        return { writer, scope, key: JSON.stringify(t.accessLog ?? null) }
      })
    // a log path that is not a regular file (a FIFO could freeze, a device swallow) is refused before anything starts
    yield* LogWriter.checkDestination("access log", accessLogPath(table), LogWriter.limits.resolve(table.accessLog)).pipe(
      Effect.mapError((e) => new StartError({ service: "access log", reason: `${e.reason} (${e.path})` }))
    )
    let access = yield* openAccessLog(table)
    // registered before the supervisor: it closes after every service stopped, so their last entries are written
    yield* Effect.addFinalizer(() => Scope.close(access.scope, Exit.void))
    const accessLog: LogWriter.LogWriter<AccessLog.AccessEntry> = {
      tellUnsafe: (entry) => access.writer.tellUnsafe(entry),
      tell: (entry) => Effect.suspend(() => access.writer.tell(entry)),
      reopen: Effect.suspend(() => access.writer.reopen),
      flush: Effect.suspend(() => access.writer.flush),
      get stats() {
        return access.writer.stats
      },
      depth: () => access.writer.depth()
    }
    // before the supervisor: the pool closes after every service drained (a request in flight keeps its thread),
    // and the node leaves the cluster after its chat services stopped
    const offload = yield* startOffload(table)
    // cluster mode's modules (effect/cluster, PostgreSQL) load only when the table asks for it
    const cluster = table.cluster === undefined
      ? undefined
      : yield* Effect.flatMap(Effect.promise(() => import("./ClusterMode.ts")), (ClusterMode) => ClusterMode.start(table))
    // no static children (services are added by launch): nothing can fail to start
    const root = yield* Supervisor.make({ name: "root", strategy: "one-for-one", maxRestarts: 5, period: "10 seconds" }, []).pipe(Effect.orDie)
    const running = new Map<string, { readonly config: ServiceTable.Service; readonly entry: Status.ServiceEntry }>()
    let current = table
    const order = () => current.services.map((s) => running.get(s.name)?.entry).filter((e) => e !== undefined)
    let feed: StatusFeed.StatusFeed | undefined = undefined
    const status: Status.StatusSource = {
      feed: () => feed?.stream ?? Stream.empty,
      startedAt: Date.now(),
      offload: () => offload?.stats(),
      ...(cluster !== undefined ? { cluster: cluster.status } : {}),
      ...(options.server !== undefined ? { server: options.server } : {}),
      services: order,
      supervisor: () => root.children,
      logsQueued: () => ({ access: accessLog.depth(), error: options.errorLogQueued?.() ?? 0 }),
      logs: () => ({
        access: accessLog.stats,
        error: options.errorLogStats?.() ?? { written: 0, dropped: 0, writeErrors: 0, batches: 0 }
      })
    }
    // the live feed of /_status/stream, after the supervisor: at shutdown its viewers' streams end first,
    // so an open status page does not hold the drain
    feed = yield* StatusFeed.make(status)
    const runtimeScope = yield* Effect.scope
    const sockets = new Map<string, Listener.ListenSocket>()
    const socketFor = (service: Kind.CommonService) => {
      const key = ReloadPlan.addressKey(service)
      let socket = sockets.get(key)
      if (socket === undefined) sockets.set(key, socket = new Listener.ListenSocket())
      return socket
    }
    const chats = new Map<string, Chat.ChatServer>()
    const deps = (): Kind.Deps => ({ table: current, accessLog, status, socketFor, chats, offload, options, clusterRooms: cluster?.rooms })
    /** The supervisor child id of each running service: its name, then name~N for later generations (hand-over reloads). */
    const childIds = new Map<string, string>()
    let generation = 1
    const shutdownOf = () => Duration.sum(Options.toDuration(current.drainTimeout ?? Listener.limits.resolve().drainTimeout), Duration.seconds(5))

    /** Starts a service as a child whose start phase is the service's start (a bind error is its start error). */
    const launch = (service: ServiceTable.Service) =>
      Effect.gen(function*() {
        const id = childIds.has(service.name) ? `${service.name}~${++generation}` : service.name
        yield* root.startChild({
          id,
          restart: "permanent",
          shutdown: shutdownOf(),
          start: Effect.gen(function*() {
            const entry = yield* Kinds.start(service, deps())
            const mine = { config: service, entry }
            running.set(service.name, mine)
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                if (running.get(service.name) === mine) running.delete(service.name)
              })
            )
          }),
          run: () => Effect.never
        }).pipe(
          Effect.catchTags({
            StartFailed: (failed) => Effect.failCause(failed.cause as Cause.Cause<StartError>),
            DuplicateChild: Effect.die,
            InvalidChildSpec: Effect.die,
            SupervisorStopped: Effect.die
          })
        )
        return id
      })

    /** Stops a service's running generation, if any. */
    const stop = (name: string) =>
      Effect.suspend(() => {
        const id = childIds.get(name)
        childIds.delete(name)
        return id === undefined ? Effect.void : Effect.ignore(root.removeChild(id))
      })

    for (const service of table.services) childIds.set(service.name, yield* launch(service))

    /** Applies `next`: executes the reload plan (ReloadPlan.plan) from the table running now. */
    const reload = (next: ServiceTable.Table) =>
      Effect.gen(function*() {
        const steps = ReloadPlan.plan(current, next)
        const started: Array<string> = []
        const stopped: Array<string> = []
        const failed: Array<string> = []
        // a new access log first, so that restarted services log to it; the old one is flushed and closed
        const usable = yield* Effect.result(
          LogWriter.checkDestination("access log", accessLogPath(next), LogWriter.limits.resolve(next.accessLog))
        )
        if (usable._tag === "Failure") yield* Effect.logError(`SIGHUP: the access log stays where it was: ${usable.failure.message}`)
        else if (steps.switchAccessLog) {
          const opened = yield* Effect.result(openAccessLog(next))
          if (opened._tag === "Success") {
            const old = access
            access = opened.success
            yield* Scope.close(old.scope, Exit.void)
            yield* Effect.logInfo(`SIGHUP: access log switched to ${accessLogPath(next)}`)
          }
        }
        current = next
        for (const old of steps.stop) {
          yield* stop(old.name)
          sockets.delete(ReloadPlan.addressKey(old)) // its listener closed the socket; a restart binds anew
          stopped.push(old.name)
        }
        // unchanged TLS services read their certificates again in place (renewed files); on error the old ones stay
        for (const name of steps.reloadTls) {
          const reloadTls = running.get(name)?.entry.reloadTls
          if (reloadTls === undefined) continue
          const result = yield* Effect.result(reloadTls)
          if (result._tag === "Failure") yield* Effect.logError(`SIGHUP: ${name}: keeping the current certificate: ${result.failure.message}`)
          else yield* Effect.logInfo(`SIGHUP: ${name}: certificates reloaded`)
        }
        // a changed service on the same TCP/unix address is handed over: the new generation takes the
        // listening socket, then the old one drains what it has (nothing is refused, nothing is dropped)
        for (const { handOver, service } of steps.launch) {
          const exit = yield* Effect.exit(launch(service))
          if (Exit.isFailure(exit)) {
            failed.push(service.name)
            yield* Effect.logError(`reload: ${service.name} did not start`, exit.cause)
            continue
          }
          const previousId = childIds.get(service.name)
          childIds.set(service.name, exit.value)
          if (handOver && previousId !== undefined) {
            yield* Effect.forkIn(Effect.ignore(root.removeChild(previousId)), runtimeScope) // drains in the background
            stopped.push(service.name)
          }
          started.push(service.name)
        }
        return { started, stopped, failed }
      })

    return { services: order, supervisor: root, status, accessLog, reload, reopenLogs: accessLog.reopen }
  })

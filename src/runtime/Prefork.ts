/**
 * Prefork (Apache's and nginx's model, Ranch's acceptor pool across
 * processes): the primary forks `workers` processes (node:cluster), each
 * serving the table's stateless services, and supervises them as children of
 * a `Supervisor` (OTP intensity: more than `maxRestarts` crashes within
 * `period` stops fiberd, exit 1). A worker that dies (a crash, `kill -9`) is
 * replaced; only its own connections are lost.
 *
 * Where things run:
 * - http, echo, daytime, exec over TCP/TLS: in every worker. With
 *   `round-robin` the primary accepts and hands each connection to the next
 *   worker; with `reuse-port` each worker binds its own `SO_REUSEPORT`
 *   socket and the kernel spreads connections.
 * - Unix-socket services: in every worker, through the primary's one socket
 *   (SO_REUSEPORT does not apply to Unix sockets) in both modes.
 * - UDP: in every worker, reading the one socket the primary binds (the
 *   cluster shares the handle; datagram services are stateless).
 * - chat: in the primary, so a room is one room for the whole server (and
 *   outlives worker rolls); a worker's WebSocket `/chat` bridges to it. In
 *   cluster mode the primary is the node's cluster runner.
 * Ports given as 0 are resolved once by the primary, so every worker and
 * every later generation listens on the same port.
 *
 * SIGHUP re-reads the table and rolls the workers one at a time: start the
 * new one, wait until it listens, then drain the old one (the access log is
 * reopened by the new workers; the primary reopens its own logs). SIGTERM /
 * SIGINT fan a drain out to every worker at once and exit 0 after all exited.
 */
import { Data, Deferred, Duration, Effect, Exit, FiberSet, type Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import cluster, { type Worker } from "node:cluster"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import * as Supervisor from "../actors/Supervisor.ts"
import * as Options from "../core/Options.ts"
import * as Listener from "../io/Listener.ts"
import * as Notify from "./Notify.ts"
import * as Runtime from "./Runtime.ts"
import * as Sighup from "./Sighup.ts"
import { StartError } from "./StartError.ts"
import * as ServiceTable from "./ServiceTable.ts"
import * as Status from "./Status.ts"
import type { PortSharing, ProcessSnapshot, ProcessView, ServerView, ServiceLine, ToPrimary, ToWorker } from "./WorkerProtocol.ts"
import { isMessage, makeAsks, serviceLine } from "./WorkerProtocol.ts"

/** A worker process ended without being asked to. */
export class WorkerExited extends Data.TaggedError("WorkerExited")<{
  readonly slot: number
  readonly pid: number
  readonly code: number | null
  readonly signal: string | null
}> {
  override get message() {
    return `worker ${this.slot} (pid ${this.pid}) ${this.signal !== null ? `was killed by ${this.signal}` : `exited with code ${this.code}`}`
  }
}

/** How the primary runs. */
export interface PreforkOptions {
  readonly workers: number
  readonly portSharing: PortSharing
  /** The module every worker runs (fiberd's main). */
  readonly script: string
  /** Re-reads the table for SIGHUP (undefined: the built-in table, nothing to re-read). */
  readonly reload: Effect.Effect<ServiceTable.Table, ServiceTable.ConfigError> | undefined
  /** Feeds the primary's error-log counters. */
  readonly errorLogStats?: Runtime.StartOptions["errorLogStats"]
  readonly errorLogQueued?: Runtime.StartOptions["errorLogQueued"]
  /** systemd's notifications (Type=notify): the primary says ready, reloading, stopping, and feeds the watchdog. */
  readonly notifier?: Notify.Notifier | undefined
  /**
   * Listening sockets systemd handed the primary (service name → descriptor): a worker's listener for
   * such a service asks the primary (node:cluster) for the descriptor's handle instead of binding.
   */
  readonly inherited?: ReadonlyMap<string, number> | undefined
  /** Reopens the primary's error log (SIGHUP). */
  readonly reopenErrorLog: Effect.Effect<void>
}

/** Worker count from the table: a number, or "auto" for one per CPU. */
export const workerCount = (table: ServiceTable.Table, cpus: number): number =>
  table.workers === "auto" ? Math.max(1, cpus) : ServiceTable.server.resolve(table).workers as number

/** The table without its `cluster` key. */
const withoutCluster = (t: ServiceTable.Table): ServiceTable.Table => {
  const { cluster: _, ...rest } = t
  return rest
}

/** Services that keep state for the whole server and so run in the primary. */
const runsInPrimary = (s: ServiceTable.Service) => s.protocol === "chat"

const freePort = (host: string, transport: "tcp" | "udp"): Promise<number> =>
  new Promise((resolve, reject) => {
    if (transport === "udp") {
      const socket = Dgram.createSocket(Net.isIPv6(host) ? "udp6" : "udp4")
      socket.once("error", reject)
      socket.bind({ address: host, port: 0, exclusive: true }, () => {
        const port = socket.address().port
        socket.close(() => resolve(port))
      })
      return
    }
    const server = Net.createServer()
    server.once("error", reject)
    server.listen({ host, port: 0, exclusive: true }, () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/**
 * The table with every port 0 replaced by a free port, so all workers (and
 * later generations) share one. `resolved` remembers the choices (service,
 * transport and listen as written → the address chosen): a table re-read on
 * SIGHUP keeps the port a service already has.
 */
export const resolvePorts = (table: ServiceTable.Table, resolved: Map<string, string>): Effect.Effect<ServiceTable.Table, StartError> =>
  Effect.forEach(table.services, (service) => {
    const transport = service.transport ?? "tcp"
    if (transport === "unix") return Effect.succeed(service)
    const address = ServiceTable.parseListen(service.listen, transport)
    if (typeof address === "string" || address._tag !== "inet" || address.port !== 0) return Effect.succeed(service)
    const key = `${service.name} ${transport} ${service.listen}`
    const known = resolved.get(key)
    if (known !== undefined) return Effect.succeed({ ...service, listen: known })
    return Effect.tryPromise({
      try: () => freePort(address.host, transport),
      catch: (e) => new StartError({ service: service.name, reason: `cannot find a free port on ${address.host} (${(e as Error).message})` })
    }).pipe(Effect.map((port) => {
      const listen = `${address.host.includes(":") ? `[${address.host}]` : address.host}:${port}`
      resolved.set(key, listen)
      return { ...service, listen }
    }))
  }).pipe(Effect.map((services) => ({ ...table, services })))

/** One worker process, while it lives. */
interface Process {
  readonly slot: number
  readonly worker: Worker
  readonly pid: number
  readonly startedAt: number
  readonly ready: Deferred.Deferred<ReadonlyArray<ServiceLine>, string>
  readonly exit: Deferred.Deferred<{ readonly code: number | null; readonly signal: string | null }>
  /** Sent when the worker says hello. */
  readonly start: ToWorker
  answering: boolean
}

const send = (worker: Worker, message: ToWorker) => {
  if (worker.isConnected()) worker.send(message)
}

/**
 * Runs the primary until interrupted (SIGTERM/SIGINT) or until the workers
 * crash beyond the restart intensity (fails with `SupervisorGaveUp`). Calls
 * `printed` with every service line once the first workers listen.
 */
export const run = (
  initial: ServiceTable.Table,
  options: PreforkOptions,
  hups: Effect.Effect<void>,
  printed: (lines: ReadonlyArray<ServiceLine>) => Effect.Effect<void>
): Effect.Effect<void, StartError | Supervisor.SupervisorGaveUp, Scope.Scope> =>
  Effect.gen(function*() {
    const startedAt = Date.now()
    cluster.schedulingPolicy = options.portSharing === "round-robin" ? cluster.SCHED_RR : cluster.SCHED_NONE
    cluster.setupPrimary({ exec: options.script, args: [], serialization: "advanced" })
    const resolved = new Map<string, string>()
    const table = yield* resolvePorts(initial, resolved)
    const split = (t: ServiceTable.Table) => ({
      primary: { ...t, services: t.services.filter(runsInPrimary) },
      // the cluster (chat rooms) is joined by the primary, which runs the chat: a worker never joins it
      workers: { ...withoutCluster(t), services: t.services.filter((s) => !runsInPrimary(s)) },
      chats: Object.fromEntries(t.services.filter(runsInPrimary).map((s) => [s.name, s.listen]))
    })

    // the primary's own services (chat): one set of rooms for the whole server
    const own = split(table).primary
    const primaryRuntime = own.services.length > 0 ? yield* Runtime.start(own, {
        ...(options.errorLogStats ? { errorLogStats: options.errorLogStats } : {}),
        ...(options.errorLogQueued ? { errorLogQueued: options.errorLogQueued } : {})
      }) : undefined

    const processes = new Set<Process>()
    const restarts = new Map<number, number>()
    let stopping = false
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const snapshots = makeAsks<ProcessSnapshot>()
    const drainWait = Duration.sum(Options.toDuration(table.drainTimeout ?? Listener.limits.resolve().drainTimeout), Duration.seconds(5))

    const snapshotOf = (p: Process) => snapshots.ask((id) => send(p.worker, { type: "fiberd:snapshot?", id }), "2 seconds")

    const primarySnapshot: Effect.Effect<ProcessSnapshot> = primaryRuntime !== undefined
      ? Status.processSnapshot(primaryRuntime.status)
      : PrometheusMetrics.format().pipe(Effect.map((metrics) => ({ status: { services: [] }, metrics })))

    /** Every process of the server, each with its snapshot (a worker that does not answer in 2 s shows without). */
    const view: Effect.Effect<ServerView> = Effect.gen(function*() {
      const workers = [...processes].filter((p) => p.answering).sort((a, b) => a.slot - b.slot || a.startedAt - b.startedAt)
      const [primary, snapshots] = yield* Effect.all([
        primarySnapshot,
        Effect.forEach(workers, snapshotOf, { concurrency: "unbounded" })
      ], { concurrency: 2 })
      const now = Date.now()
      const processViews: Array<ProcessView> = [
        { name: "primary", pid: process.pid, uptimeSeconds: Math.round((now - startedAt) / 1000), restarts: 0, snapshot: primary },
        ...workers.map((p, i): ProcessView => ({
          name: String(p.slot),
          pid: p.pid,
          uptimeSeconds: Math.round((now - p.startedAt) / 1000),
          restarts: restarts.get(p.slot) ?? 0,
          snapshot: snapshots[i]!._tag === "Some" ? snapshots[i]!.value : undefined
        }))
      ]
      return { portSharing: options.portSharing, processes: processViews }
    })

    const onMessage = (p: Process) => (message: unknown) => {
      if (!isMessage(message)) return
      const m = message as ToPrimary
      switch (m.type) {
        case "fiberd:hello":
          send(p.worker, p.start)
          return
        case "fiberd:ready":
          p.answering = true
          Deferred.doneUnsafe(p.ready, Exit.succeed(m.services))
          return
        case "fiberd:failed":
          Deferred.doneUnsafe(p.ready, Exit.fail(m.message))
          return
        case "fiberd:snapshot":
          snapshots.answer(m.id, m.snapshot)
          return
        case "fiberd:view?":
          run(Effect.flatMap(view, (v) => Effect.sync(() => send(p.worker, { type: "fiberd:view", id: m.id, view: v }))))
          return
      }
    }

    /** Stops a worker: SIGTERM (it drains), then SIGKILL if it has not exited within the drain timeout + 5 s. */
    const stopProcess = (p: Process) =>
      Effect.gen(function*() {
        p.answering = false
        if (!(yield* Deferred.isDone(p.exit))) {
          p.worker.process.kill("SIGTERM")
          const exited = yield* Deferred.await(p.exit).pipe(Effect.timeoutOption(drainWait))
          if (exited._tag === "None") {
            yield* Effect.logWarning(`worker ${p.slot} (pid ${p.pid}) did not exit within ${Duration.format(drainWait)}; killing it`)
            p.worker.process.kill("SIGKILL")
            yield* Deferred.await(p.exit)
          }
        }
        processes.delete(p)
      })

    /** A worker slot as a supervisor child: forks, waits until it listens, then lives as long as the process. */
    const child = (slot: number, id: string, workerTable: ServiceTable.Table, chats: Record<string, string>, ready: Deferred.Deferred<ReadonlyArray<ServiceLine>, StartError>): Supervisor.ChildSpec => ({
      id,
      restart: "permanent",
      shutdown: Duration.sum(drainWait, Duration.seconds(5)),
      start: Effect.gen(function*() {
        const worker = cluster.fork({ FIBERD_WORKER_SLOT: String(slot) })
        const p: Process = {
          slot,
          worker,
          pid: worker.process.pid ?? 0,
          startedAt: Date.now(),
          ready: Deferred.makeUnsafe(),
          exit: Deferred.makeUnsafe(),
          answering: false,
          start: { type: "fiberd:start", slot, table: workerTable, portSharing: options.portSharing, chats, inherited: [...(options.inherited ?? [])] }
        }
        processes.add(p)
        worker.on("message", onMessage(p))
        worker.on("exit", (code, signal) => {
          Deferred.doneUnsafe(p.ready, Exit.fail(`exited before listening (${signal ?? `code ${code}`})`))
          Deferred.doneUnsafe(p.exit, Exit.succeed({ code, signal }))
        })
        worker.on("error", () => {}) // an IPC send to a worker that just died; its exit event follows
        yield* Effect.addFinalizer(() => stopProcess(p))
        const started = yield* Effect.exit(Deferred.await(p.ready))
        if (Exit.isFailure(started)) {
          const reason = started.cause.reasons.find((r) => r._tag === "Fail")?.error ?? "did not start"
          yield* Deferred.fail(ready, new StartError({ service: `worker ${slot}`, reason: String(reason) }))
          return yield* Effect.fail(new StartError({ service: `worker ${slot}`, reason: String(reason) }))
        }
        yield* Effect.logInfo(`worker ${slot} (pid ${p.pid}) listening`)
        yield* Deferred.succeed(ready, started.value)
        const { code, signal } = yield* Deferred.await(p.exit)
        if (stopping) return yield* Effect.never // shutting down: the supervisor stops this child
        restarts.set(slot, (restarts.get(slot) ?? 0) + 1)
        const exited = new WorkerExited({ slot, pid: p.pid, code, signal })
        return yield* Effect.fail(exited)
      })
    })

    const workersSupervisor = yield* Supervisor.make({
      name: "workers",
      strategy: "one-for-one",
      maxRestarts: ServiceTable.server.resolve(table).workerRestarts.maxRestarts,
      period: Options.toDuration(ServiceTable.server.resolve(table).workerRestarts.period),
      backoff: { initial: "100 millis", max: "2 seconds" }
    }, []).pipe(Effect.orDie) // no static children: nothing can fail to start
    // runs before the supervisor stops its children (finalizers run in reverse): every worker starts draining at once
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopping = true
        for (const p of processes) if (p.worker.isConnected() || p.worker.process.exitCode === null) p.worker.process.kill("SIGTERM")
      })
    )

    const current = new Map<number, string>()
    let generation = 0
    /** Starts slot `slot` from `t` and waits until it listens; the previous generation of the slot is drained after. */
    const launch = (slot: number, t: ServiceTable.Table) =>
      Effect.gen(function*() {
        const id = `worker-${slot}${generation > 0 ? `~${generation}` : ""}`
        const ready = yield* Deferred.make<ReadonlyArray<ServiceLine>, StartError>()
        const parts = split(t)
        yield* workersSupervisor.startChild(child(slot, id, parts.workers, parts.chats, ready)).pipe(Effect.orDie)
        const lines = yield* Effect.exit(Deferred.await(ready))
        if (Exit.isFailure(lines)) {
          yield* Effect.ignore(workersSupervisor.removeChild(id))
          return yield* Effect.failCause(lines.cause)
        }
        const previous = current.get(slot)
        current.set(slot, id)
        if (previous !== undefined) yield* Effect.ignore(workersSupervisor.removeChild(previous))
        return lines.value
      })

    // the first workers start together (a roll replaces them one at a time)
    const slots = Array.from({ length: options.workers }, (_, i) => i + 1)
    const lines = (yield* Effect.forEach(slots, (slot) => launch(slot, table), { concurrency: "unbounded" }))[0]!
    const primaryLines = primaryRuntime?.services().map(serviceLine) ?? []
    const byName = new Map([...lines, ...primaryLines].map((l) => [l.name, l]))
    yield* printed(table.services.map((s) => byName.get(s.name)).filter((l) => l !== undefined))
    // made after the workers: at shutdown STOPPING=1 goes first, as the drain begins
    yield* Notify.ready(options.notifier, `${options.workers} workers, ${table.services.length} services`)

    const onHup = Sighup.handle({
      mode: "prefork",
      startedWith: table,
      reopenLogs: primaryRuntime === undefined ? options.reopenErrorLog : Effect.andThen(options.reopenErrorLog, primaryRuntime.reopenLogs),
      // with the built-in table the workers are rolled all the same: that is how their access logs reopen
      load: options.reload?.pipe(Effect.flatMap((t) => resolvePorts(t, resolved))) ?? Effect.succeed(table),
      apply: (next) =>
        Effect.gen(function*() {
          if (primaryRuntime !== undefined) yield* primaryRuntime.reload(split(next).primary)
          generation++
          for (let slot = 1; slot <= options.workers; slot++) {
            const rolled = yield* Effect.exit(launch(slot, next))
            if (Exit.isFailure(rolled)) {
              return yield* Effect.logError(`SIGHUP: the new worker ${slot} did not start; the roll stops and the old workers keep serving`, rolled.cause)
            }
          }
          yield* Effect.logInfo(`SIGHUP: ${options.workers} workers rolled`)
        })
    })

    yield* Effect.raceFirst(
      Effect.forever(Effect.andThen(
        hups,
        Notify.reloading(options.notifier, onHup, () => `${options.workers} workers; rolled at ${new Date().toISOString()}`)
      )),
      workersSupervisor.await
    )
  })

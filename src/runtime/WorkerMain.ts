/**
 * A prefork worker process: waits for the primary's start message (the
 * table, the port-sharing mode, where the chat services run), starts the
 * services, tells the primary it listens, and answers the primary's
 * snapshot requests; `/_status` and `/metrics` ask the primary for the whole
 * server. SIGTERM (or losing the primary) drains and exits 0; SIGINT and
 * SIGHUP are the primary's to act on (it rolls the workers on SIGHUP).
 * A service that cannot start is reported to the primary; the worker exits 1.
 */
import { Effect, FiberSet } from "effect"
import * as ErrorLog from "../actors/ErrorLog.ts"
import * as ErrorLogConfig from "./ErrorLogConfig.ts"
import * as Runtime from "./Runtime.ts"
import * as Status from "./Status.ts"
import { isMessage, makeAsks, type ServerView, serviceLine, type ToPrimary, type ToWorker } from "./WorkerProtocol.ts"

type Start = Extract<ToWorker, { type: "fiberd:start" }>

const tell = (message: ToPrimary) => {
  if (process.connected) process.send!(message)
}

/** The first start message from the primary. */
const startMessage = Effect.callback<Start>((resume) => {
  const onMessage = (m: unknown) => {
    if (isMessage(m) && m.type === "fiberd:start") {
      process.off("message", onMessage)
      resume(Effect.succeed(m as Start))
    }
  }
  process.on("message", onMessage)
  tell({ type: "fiberd:hello" })
  return Effect.sync(() => process.off("message", onMessage))
})

const serve = (start: Start) =>
  Effect.gen(function*() {
    const errorLog = yield* ErrorLog.ErrorLog
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const views = makeAsks<ServerView>()
    let status: Status.StatusSource | undefined
    /** The whole server, from the primary; this process alone if the primary does not answer in 3 s. */
    const server = () =>
      Effect.gen(function*() {
        const view = yield* views.ask((id) => tell({ type: "fiberd:view?", id }), "3 seconds")
        if (view._tag === "Some") return view.value
        const own = yield* Status.processSnapshot(status!)
        return { portSharing: start.portSharing, processes: [{ name: String(start.slot), pid: process.pid, uptimeSeconds: Math.round(process.uptime()), restarts: 0, snapshot: own }] }
      })
    const running = yield* Runtime.start(start.table, {
      errorLogStats: () => errorLog.stats,
      errorLogQueued: () => errorLog.depth(),
      reusePort: start.portSharing === "reuse-port",
      server,
      remoteChats: start.chats,
      inherited: new Map(start.inherited ?? [])
    })
    status = running.status
    const onMessage = (m: unknown) => {
      if (!isMessage(m)) return
      const message = m as ToWorker
      switch (message.type) {
        case "fiberd:snapshot?":
          run(Effect.flatMap(Status.processSnapshot(running.status), (snapshot) => Effect.sync(() => tell({ type: "fiberd:snapshot", id: message.id, snapshot }))))
          return
        case "fiberd:view":
          views.answer(message.id, message.view)
          return
      }
    }
    process.on("message", onMessage)
    yield* Effect.addFinalizer(() => Effect.sync(() => process.off("message", onMessage)))
    tell({ type: "fiberd:ready", services: running.services().map(serviceLine) })
    return yield* Effect.never
  }).pipe(
    Effect.catchTag("StartError", (e) =>
      Effect.sync(() => {
        tell({ type: "fiberd:failed", message: e.message })
        process.exitCode = 1
      }))
  )

/** The worker's whole life: until interrupted (SIGTERM, the primary gone), or a failed start. */
export const program: Effect.Effect<void> = Effect.gen(function*() {
  const start = yield* startMessage
  yield* serve(start).pipe(Effect.scoped, Effect.provide(ErrorLogConfig.layer(start.table)))
})

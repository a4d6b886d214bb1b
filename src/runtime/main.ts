/**
 * The fiberd program: reads the service table (or uses the defaults), starts
 * every service, prints one line per service, and runs until SIGTERM/SIGINT
 * (drain, flush the logs, exit 0; a second signal exits at once). SIGHUP
 * re-reads the table and applies the difference. Exit codes: 0 after a
 * signal, 1 when a service cannot start (e.g. its port is in use), 2 for a
 * bad table or bad arguments (or workers crashing beyond their restart intensity).
 * With `workers` > 1 this process is the prefork primary (see Prefork.ts);
 * the workers it forks run this module too, as `WorkerMain`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Console, Effect, Option, Queue, Scope } from "effect"
import { CliError, Command } from "effect/cli"
import * as ChildProcess from "node:child_process"
import cluster from "node:cluster"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as ErrorLog from "../actors/ErrorLog.ts"
import * as LogWriter from "../actors/LogWriter.ts"
import * as Cli from "./Cli.ts"
import * as ErrorLogConfig from "./ErrorLogConfig.ts"
import * as Prefork from "./Prefork.ts"
import * as Runtime from "./Runtime.ts"
import * as Sighup from "./Sighup.ts"
import * as WorkerMain from "./WorkerMain.ts"
import * as Notify from "./Notify.ts"
import * as SocketActivation from "./SocketActivation.ts"
import * as Top from "./Top.ts"
import * as Units from "./Units.ts"
import { type ServiceLine, serviceLine } from "./WorkerProtocol.ts"
import * as ServiceTable from "./ServiceTable.ts"

const packageJson = JSON.parse(Fs.readFileSync(Path.resolve(import.meta.dirname, "../../package.json"), "utf8")) as {
  version: string
}

const loadTable = (args: Cli.Args) =>
  (args.config === undefined ? Effect.succeed(ServiceTable.defaults) : ServiceTable.load(args.config)).pipe(
    Effect.map((table) => Cli.override(table, args))
  )

const fail = (code: number) => (error: { readonly message: string }) =>
  Console.error(`fiberd: ${error.message}`).pipe(Effect.andThen(Effect.sync(() => {
    process.exitCode = code
  })))

/** The line each listening service gets on stdout: `name protocol/transport address` (tests and scripts read it). */
const printService = (service: ServiceLine & { readonly tls?: boolean }) => {
  const s = serviceLine(service)
  return Console.log(`${s.name}\t${s.protocol}/${s.transport}\t${s.address}`)
}

/** systemd's notifier for this process, if any; the variable is then removed (not for workers or exec's programs). */
const takeNotifier = () => {
  const notifier = Notify.fromEnv()
  delete process.env["NOTIFY_SOCKET"]
  return notifier
}

/** `--pid-file`: the process id written once the services listen (atomically: a temp file renamed), removed at exit. */
const pidFile = (path: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const temp = `${path}.${process.pid}.tmp`
      Fs.writeFileSync(temp, `${process.pid}\n`)
      Fs.renameSync(temp, path)
    }),
    () => Effect.sync(() => Fs.rmSync(path, { force: true }))
  )

/** Runs until interrupted; SIGHUP reopens the logs and, with a table file, reloads it. */
const serve = (args: Cli.Args) =>
  Effect.gen(function*() {
    // SIGHUP: the handler only enqueues, and it is installed before anything is printed,
    // so a SIGHUP sent as soon as the services are up is never fatal.
    const hups = yield* Queue.unbounded<void>()
    const onHup = () => Queue.offerUnsafe(hups, undefined)
    process.on("SIGHUP", onHup)
    yield* Effect.addFinalizer(() => Effect.sync(() => process.off("SIGHUP", onHup)))
    const table = yield* loadTable(args)
    const errorLog = yield* ErrorLog.ErrorLog
    const workers = Prefork.workerCount(table, Os.availableParallelism())
    let pidWritten = false
    const scope = yield* Effect.scope
    // systemd socket activation: the sockets handed to this process, by name or in table order
    const inherited = SocketActivation.takeInherited(table.services.map((x) => x.name))
    if (workers > 1) {
      return yield* Prefork.run(table, {
        workers,
        portSharing: ServiceTable.server.resolve(table).portSharing,
        script: import.meta.filename,
        reload: args.config === undefined ? undefined : loadTable(args),
        errorLogStats: () => errorLog.stats,
        errorLogQueued: () => errorLog.depth(),
        reopenErrorLog: errorLog.reopen,
        notifier: takeNotifier(),
        inherited
      }, Queue.take(hups), (lines) =>
        Effect.andThen(
          Effect.forEach(lines, printService, { discard: true }),
          // the primary's pid, once the workers listen (the first time they report)
          pidWritten || args.pidFile === undefined ? Effect.void : Effect.andThen(Effect.sync(() => (pidWritten = true)), Scope.provide(pidFile(args.pidFile), scope))
        ))
    }
    const running = yield* Runtime.start(table, { errorLogStats: () => errorLog.stats, errorLogQueued: () => errorLog.depth(), inherited })
    for (const s of running.services()) yield* printService(s)
    if (args.pidFile !== undefined) yield* pidFile(args.pidFile)
    // under systemd (Type=notify): ready once every service listens, the watchdog from the loop, STOPPING=1
    // when the drain begins (this finalizer runs before the services' own), and a status line every 10 s
    const notifier = takeNotifier()
    yield* Notify.ready(notifier, Notify.summary(running.services(), undefined))
    if (notifier !== undefined) {
      let before: ReadonlyMap<string, number> | undefined
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("10 seconds"), Effect.sync(() => {
        const now = new Map(running.services().map((e) => [e.name, e.requests?.() ?? 0]))
        notifier.send(`STATUS=${Notify.summary(running.services(), before === undefined ? undefined : { before, seconds: 10 })}`)
        before = now
      }))))
    }
    yield* Effect.forever(Effect.andThen(Queue.take(hups), Notify.reloading(
      notifier,
      Sighup.handle({
        mode: "single",
        startedWith: table,
        reopenLogs: Effect.andThen(errorLog.reopen, running.reopenLogs),
        load: args.config === undefined ? undefined : loadTable(args),
        apply: (next) =>
          Effect.gen(function*() {
            const report = yield* running.reload(next)
            yield* Effect.logInfo(`SIGHUP: table reloaded`, report)
            for (const s of running.services()) if (report.started.includes(s.name)) yield* printService(s)
          })
      }),
      () => `reloaded at ${new Date().toISOString()}; ${Notify.summary(running.services(), undefined)}`
    )))
  }).pipe(
    Effect.scoped,
    Effect.catchTag("ConfigError", fail(2)),
    Effect.catchTag("StartError", fail(1)),
    // prefork: the workers crashed more often than the restart intensity allows
    Effect.catchTag("SupervisorGaveUp", fail(1))
  )

const withErrorLog = (args: Cli.Args, table: ServiceTable.Table) => serve(args).pipe(Effect.provide(ErrorLogConfig.layer(table)))

const check = Command.make("check", { config: Cli.config }, (flags) =>
  Effect.gen(function*() {
    const args = Cli.toArgs(flags)
    const table = yield* loadTable(args)
    yield* Console.log(`${args.config ?? "built-in defaults"}: ok, ${table.services.length} services`)
  })).pipe(Command.withDescription("validate the service table and exit (0 valid, 2 invalid)"))

const unit = Command.make("unit", { config: Cli.config, out: Cli.unitOut }, (flags) =>
  Effect.gen(function*() {
    const args = Cli.toArgs(flags)
    const table = yield* loadTable(args)
    const made = Units.units(table, {
      command: [process.execPath, Path.resolve(import.meta.dirname, "../../bin/fiberd.js")],
      config: args.config === undefined ? undefined : Path.resolve(args.config),
      cwd: process.cwd()
    })
    const out = Option.getOrUndefined(flags.out)
    if (out === undefined) return yield* Console.log(made.map((u) => `# ${u.name}\n${u.text}`).join("\n"))
    yield* Effect.sync(() => {
      Fs.mkdirSync(out, { recursive: true })
      for (const u of made) Fs.writeFileSync(Path.join(out, u.name), u.text)
    })
    yield* Console.log(made.map((u) => Path.join(out, u.name)).join("\n"))
  })).pipe(Command.withDescription("print (or write with --out DIR) systemd units for the table: a Type=notify service and a socket unit per stream service"))

const top = Command.make("top", { url: Cli.topUrl }, (flags) =>
  Top.run(flags.url).pipe(Effect.catchTag("TopError", (error) => Effect.andThen(Console.error(error.message), Effect.sync(() => {
    process.exitCode = 1
  }))))).pipe(Command.withDescription("the live status of a running fiberd in the terminal (its /_status/stream), one screen a second"))

const fiberd = Command.make("fiberd", Cli.runFlags, (flags) =>
  Effect.gen(function*() {
    const args = Cli.toArgs(flags)
    const table = yield* loadTable(args)
    // an error log path that cannot be used is refused before anything starts (exit 1)
    yield* LogWriter.checkDestination("error log", ErrorLog.options.resolve(table.errorLog).path, LogWriter.limits.resolve(table.errorLog)).pipe(
      Effect.andThen(withErrorLog(args, table)),
      Effect.catchTag("LogPathError", fail(1))
    )
  })).pipe(Command.withDescription(Cli.description), Command.withSubcommands([check, top, unit]))

const main = Command.run(fiberd, { version: packageJson.version }).pipe(
  Effect.catchTag("ConfigError", fail(2)),
  // effect/cli has printed the problem and the usage: bad arguments exit 2
  Effect.catchIf(CliError.isCliError, () => Effect.sync(() => {
    process.exitCode = 2
  })),
  Effect.provide(NodeServices.layer)
)

/**
 * Kills every child process of fiberd (exec services) with SIGKILL. Run on every way out of the
 * process, so no child is left running under init: exec's own finalizers stop children on a normal
 * shutdown, this catches the paths that skip finalizers (a second signal, a crash).
 */
const killChildren = () => {
  let listed = ""
  try {
    listed = ChildProcess.execFileSync("ps", ["-o", "pid=", "--ppid", String(process.pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
  } catch {
    return // no ps, or no children
  }
  for (const pid of listed.split("\n").map((p) => Number(p.trim())).filter((p) => p > 0)) {
    try {
      process.kill(-pid, "SIGKILL") // an exec child leads its own process group: it and what it started
    } catch {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // already gone (ps itself, a child that just exited)
      }
    }
  }
}
process.on("exit", killChildren)

if (cluster.isWorker) {
  // a prefork worker: the primary decides about SIGINT (it fans SIGTERM out) and SIGHUP (it rolls the workers)
  process.on("SIGINT", () => {})
  process.on("SIGHUP", () => {})
  const worker = Effect.runFork(WorkerMain.program)
  const stop = () => worker.interruptUnsafe()
  process.on("SIGTERM", stop)
  process.on("disconnect", stop) // the primary is gone
  worker.addObserver((exit) => {
    if (exit._tag === "Failure" && !exit.cause.reasons.every((r) => r._tag === "Interrupt")) {
      console.error("fiberd worker:", exit.cause)
      process.exitCode = 1
    }
    process.exit()
  })
} else {
  // A second SIGTERM/SIGINT while draining exits at once (and kills the children: see killChildren).
  let signals = 0
  const hardExit = () => {
    if (++signals > 1) process.exit(130)
  }
  process.on("SIGTERM", hardExit)
  process.on("SIGINT", hardExit)

  NodeRuntime.runMain(main, {
    disableErrorReporting: false,
    // a defect that escaped (a bug) must not look like a clean exit
    teardown: (exit, onExit) =>
      onExit(typeof process.exitCode === "number" ? process.exitCode : exit._tag === "Failure" && !exit.cause.reasons.every((r) => r._tag === "Interrupt") ? 1 : 0)
  })
}

/**
 * exec: inetd's `nowait` services. For each connection a command (an argv
 * array, never a shell) is spawned with its stdin and stdout wired to the
 * connection, both ways with backpressure; its stderr goes to the error log
 * line by line. `maxInstances` caps the children running at once (a
 * connection over the cap gets a busy line and is closed). The child is
 * killed when its connection ends or on shutdown, and always waited for, so
 * no zombie is left behind. Nothing it starts outlives fiberd: each child
 * leads a process group of its own, killed as a group (its own children
 * too), and on Linux it is started through util-linux's `setpriv
 * --pdeathsig KILL`, so the kernel kills it if the process that spawned it
 * dies without running any cleanup (`kill -9` of a prefork worker).
 */
import { Cause, Effect, Fiber, Option, Queue, Schema } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Options from "../core/Options.ts"
import type { Connection } from "../io/Connection.ts"

/** exec options, declared once (a service table's exec entry takes the same keys, its name being the service's). */
export const options = Options.declare({
  command: Schema.Array(Schema.String).check(Schema.isMinLength(1)).annotate({ description: "argv: the program and its arguments, never a shell" }),
  maxInstances: Options.option(Options.PositiveInt, "children running at once; a connection over the cap gets a busy line", 16),
  killGrace: Options.option(Options.Duration, "after SIGTERM, how long a child has before SIGKILL", "2 seconds")
})

/** exec options: `options` and the service name, for logs. */
export type ExecOptions = typeof options.schema.Type & { readonly name: string }

const Exec = options

/** A running exec service. */
export interface ExecServer {
  readonly handler: (conn: Connection) => Effect.Effect<void>
  /** Children running now. */
  readonly running: () => number
  /** Children spawned since start. */
  readonly spawned: () => number
}

/** util-linux's setpriv, when this machine has it (Linux): it sets the parent-death signal, then execs the command. */
const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => {
  try {
    Fs.accessSync(p, Fs.constants.X_OK)
    return true
  } catch {
    return false
  }
})

/** The program's path as execvp would find it (PATH search for a bare name), or an error saying why it cannot run. */
const resolveProgram = async (program: string): Promise<string> => {
  const candidates = program.includes("/") ? [program] : (process.env["PATH"] ?? "/usr/bin:/bin").split(":").filter((d) => d !== "").map((d) => Path.join(d, program))
  for (const candidate of candidates) {
    const ok = await Fs.promises.access(candidate, Fs.constants.X_OK).then(() => Fs.promises.stat(candidate)).then((st) => st.isFile(), () => false)
    if (ok) return candidate
  }
  throw new Error(program.includes("/") ? `${program}: not an executable file` : `${program}: not found in PATH`)
}

/** Sends `signal` to the child's process group (it and whatever it started); nothing if it is gone. */
const killGroup = (child: ChildProcess.ChildProcess, signal: NodeJS.Signals) => {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    child.kill(signal)
  }
}

/**
 * Builds the exec handler.
 *
 * @example
 * const wc = Exec.make({ name: "wc", command: ["wc", "-c"], maxInstances: 4 })
 * yield* Listener.make({ name: "wc", port: 7100 }, wc.handler)
 */
export const make = (given: ExecOptions): ExecServer => {
  const options = { ...Exec.resolve(given), name: given.name }
  const max = options.maxInstances
  const grace = Options.millis(options.killGrace)
  let running = 0
  let spawned = 0

  const handler = (conn: Connection): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (running >= max) {
        yield* conn.write(Buffer.from(`*** busy: ${max} instances of ${options.name} are running, try again later\r\n`)).pipe(Effect.ignore)
        return yield* conn.close
      }
      running++
      spawned++
      const [program, ...args] = options.command
      const path = yield* Effect.promise(() => resolveProgram(program!).then((p) => p, (e: Error) => e))
      if (path instanceof Error) {
        running--
        yield* Effect.logError(`${options.name}: cannot run ${options.command.join(" ")}: ${path.message}`)
        return yield* conn.write(Buffer.from(`*** ${options.name} is unavailable\r\n`)).pipe(Effect.ignore)
      }
      // a process group of its own (detached), and killed by the kernel if its parent dies (setpriv)
      const child = setpriv !== undefined
        ? ChildProcess.spawn(setpriv, ["--pdeathsig", "KILL", "--", path, ...args], { stdio: ["pipe", "pipe", "pipe"], detached: true })
        : ChildProcess.spawn(path, args, { stdio: ["pipe", "pipe", "pipe"], detached: true })
      let spawnError: Error | undefined
      child.once("error", (error) => {
        spawnError = error
      })
      /** Completes when the child has exited (or could not be spawned). */
      const exited = Effect.callback<void>((resume) => {
        const done = () => resume(Effect.void)
        if (child.exitCode !== null || child.signalCode !== null || spawnError !== undefined) return done()
        child.once("exit", done)
        child.once("error", done)
        return Effect.sync(() => {
          child.off("exit", done)
          child.off("error", done)
        })
      })
      // the child is killed (SIGTERM, then SIGKILL after the grace time) and always reaped
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          if (child.exitCode === null && child.signalCode === null && spawnError === undefined) {
            killGroup(child, "SIGTERM")
            const timer = setTimeout(() => killGroup(child, "SIGKILL"), grace)
            yield* exited
            clearTimeout(timer)
          }
          running--
        })
      )
      child.stdin.on("error", () => {}) // EPIPE when the child exits first
      // stderr → error log, a line at a time (logged by a fiber of this connection)
      const errLines = yield* Queue.unbounded<string, Cause.Done>()
      let errText = ""
      child.stderr.on("data", (chunk: Buffer) => {
        errText += chunk.toString("utf8")
        const lines = errText.split("\n")
        errText = lines.pop()!
        for (const line of lines) if (line !== "") Queue.offerUnsafe(errLines, line)
      })
      child.stderr.once("end", () => Queue.endUnsafe(errLines))
      yield* Effect.forkScoped(
        Effect.forever(Queue.take(errLines).pipe(Effect.flatMap((line) => Effect.logWarning(`${options.name}[${child.pid}]: ${line}`)))).pipe(Effect.ignore)
      )
      // child stdout → connection; the child is paused while 8 chunks wait
      const out = yield* Queue.unbounded<Buffer, Cause.Done>()
      child.stdout.on("data", (chunk: Buffer) => {
        Queue.offerUnsafe(out, chunk)
        if (Queue.sizeUnsafe(out) >= 8) child.stdout.pause()
      })
      child.stdout.once("end", () => Queue.endUnsafe(out))
      const toClient = yield* Effect.forkChild(
        Effect.gen(function*() {
          while (true) {
            const chunk = yield* Queue.take(out)
            if (child.stdout.isPaused() && Queue.sizeUnsafe(out) < 4) child.stdout.resume()
            yield* conn.write(chunk)
          }
        }).pipe(Effect.catchIf(Cause.isDone, () => conn.endWrite), Effect.ignore),
        { startImmediately: true }
      )
      // connection → child stdin
      const toChild = yield* Effect.forkChild(
        Effect.gen(function*() {
          while (true) {
            const chunk = yield* conn.read
            if (Option.isNone(chunk)) return child.stdin.end()
            if (!child.stdin.write(chunk.value)) {
              yield* Effect.callback<void>((resume) => {
                child.stdin.once("drain", () => resume(Effect.void))
                child.stdin.once("close", () => resume(Effect.void))
              })
            }
          }
        }).pipe(Effect.ignore),
        { startImmediately: true }
      )
      yield* exited
      if (spawnError !== undefined) {
        yield* Effect.logError(`${options.name}: cannot run ${options.command.join(" ")}: ${spawnError.message}`)
        yield* conn.write(Buffer.from(`*** ${options.name} is unavailable\r\n`)).pipe(Effect.ignore)
        return
      }
      // the child exited: deliver what it wrote, then the connection is done
      yield* Fiber.await(toClient)
      yield* Fiber.interrupt(toChild)
      if (child.exitCode !== 0 && child.exitCode !== null) {
        yield* Effect.logDebug(`${options.name}[${child.pid}] exited with ${child.exitCode}`)
      }
    }).pipe(Effect.scoped)

  return { handler, running: () => running, spawned: () => spawned }
}

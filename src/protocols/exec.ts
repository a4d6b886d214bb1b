/**
 * exec: inetd's `nowait` services. For each connection a command (an argv
 * array, never a shell) is spawned with its stdin and stdout wired to the
 * connection, both ways with backpressure; its stderr goes to the error log
 * line by line. `maxInstances` caps the children running at once (a
 * connection over the cap gets a busy line and is closed). The child is
 * killed when its connection ends or on shutdown, and always waited for, so
 * no zombie is left behind.
 */
import { Cause, Effect, Fiber, Option, Queue } from "effect"
import * as ChildProcess from "node:child_process"
import type { Connection } from "../io/Connection.ts"

/** exec options. */
export interface ExecOptions {
  /** Service name, for logs. */
  readonly name: string
  /** argv: the program and its arguments. */
  readonly command: ReadonlyArray<string>
  /** Children running at once. Default 16. */
  readonly maxInstances?: number
  /** After SIGTERM, how long before SIGKILL (ms). Default 2000. */
  readonly killGraceMillis?: number
}

/** A running exec service. */
export interface ExecServer {
  readonly handler: (conn: Connection) => Effect.Effect<void>
  /** Children running now. */
  readonly running: () => number
  /** Children spawned since start. */
  readonly spawned: () => number
}

/**
 * Builds the exec handler.
 *
 * @example
 * const wc = Exec.make({ name: "wc", command: ["wc", "-c"], maxInstances: 4 })
 * yield* Listener.make({ name: "wc", port: 7100 }, wc.handler)
 */
export const make = (options: ExecOptions): ExecServer => {
  const max = options.maxInstances ?? 16
  const grace = options.killGraceMillis ?? 2000
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
      const child = ChildProcess.spawn(program!, args, { stdio: ["pipe", "pipe", "pipe"] })
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
            child.kill("SIGTERM")
            const timer = setTimeout(() => child.kill("SIGKILL"), grace)
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

/**
 * Runs a protocol handler against a scripted in-memory client and reports
 * what happened: the bytes the handler wrote, how the connection ended and
 * the handler's Exit.
 *
 * A script is a list of steps: send bytes, wait (advances TestClock, so idle
 * and header timeouts fire without real waiting), half-close, reset, or read
 * a few bytes (with `reader: "manual"`, a slow reader). Between steps the
 * runner lets every fiber run until nothing moves any more.
 */
import { Duration, Effect, Exit, Fiber, Option, Queue } from "effect"
import { TestClock } from "effect/testing"
import type { Handler, RemoteAddress } from "../io/Connection.ts"
import * as Timeouts from "../core/Timeouts.ts"
import { makePair } from "./MemoryConnection.ts"
import * as Show from "./Show.ts"

/** One thing the scripted client does. */
export type Step =
  | { readonly _tag: "Send"; readonly bytes: Uint8Array }
  | { readonly _tag: "Wait"; readonly duration: Duration.Duration }
  | { readonly _tag: "EndWrite" }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Read"; readonly bytes: number }
  | { readonly _tag: "ReadRest" }
  | { readonly _tag: "Drain" }

/** Send bytes (a string is sent as UTF-8). */
export const send = (data: string | Uint8Array): Step => ({
  _tag: "Send",
  bytes: typeof data === "string" ? Buffer.from(data, "utf8") : data
})

/** Send each chunk as its own write. */
export const sendChunks = (chunks: ReadonlyArray<string | Uint8Array>): Array<Step> => chunks.map(send)

/** Let time pass: advances the TestClock by `duration` (after everything has settled). */
export const wait = (duration: Duration.Input): Step => ({ _tag: "Wait", duration: Duration.fromInputUnsafe(duration) })

/** Half-close: the handler reads EOF after everything sent before. */
export const endWrite: Step = { _tag: "EndWrite" }

/** Abrupt reset (RST): pending and later I/O on both ends fails. */
export const reset: Step = { _tag: "Reset" }

/** With `reader: "manual"`: read up to `bytes` of what the handler has written. */
export const read = (bytes: number): Step => ({ _tag: "Read", bytes })

/** With `reader: "manual"`: catch up, reading until the handler writes nothing more. */
export const readRest: Step = { _tag: "ReadRest" }

/** The server starts to shut down, as a listener does: `draining` completes and an idle `readIdle` ends. */
export const drain: Step = { _tag: "Drain" }

/** How to run. */
export interface RunOptions {
  /** Bytes each direction holds before writes wait. Default 64 KiB. */
  readonly bufferSize?: number
  /** `eager` (default): the client reads everything at once. `manual`: only `read` steps read. */
  readonly reader?: "eager" | "manual"
  /** Close the connection after this long without bytes either way (as the listener does). */
  readonly idleTimeout?: Duration.Input
  /** The peer address the handler sees. */
  readonly remote?: RemoteAddress
  /**
   * The handler does real asynchronous I/O (files, timers of the real clock):
   * between steps, also wait in real time (up to 5 s) until it waits on the
   * connection again or ends.
   */
  readonly realIo?: boolean
}

/** What a run produced. */
export interface RunResult<E> {
  /** Every byte the handler wrote, in order. */
  readonly output: Uint8Array
  /** `output` as UTF-8 text. */
  readonly text: string
  /** The handler ended its write side (endWrite or close). */
  readonly serverEnded: boolean
  /** The connection was reset (by the script or the handler). */
  readonly reset: boolean
  /** The idle timeout closed the connection. */
  readonly timedOut: boolean
  /** The handler's Exit, or undefined if it was still running when the script ended (it is then interrupted). */
  readonly exit: Exit.Exit<void, E> | undefined
}

/** Renders a result for assertion messages. */
export const describe = <E>(result: RunResult<E>): string =>
  `output ${Show.bytes(result.output)}, serverEnded=${result.serverEnded}, reset=${result.reset}, ` +
  `timedOut=${result.timedOut}, exit=${result.exit === undefined ? "still running" : result.exit._tag}`

/**
 * Lets forked fibers run until no bytes have moved and no fiber has ended for
 * several scheduler turns.
 */
export const settle = (progress: () => number, busy?: () => boolean): Effect.Effect<void> =>
  Effect.gen(function*() {
    let quiet = 0
    const until = Date.now() + 5000
    while (quiet < 5) {
      const before = progress()
      yield* Effect.yieldNow
      quiet = progress() === before ? quiet + 1 : 0
      if (quiet === 5 && busy !== undefined && busy() && Date.now() < until) {
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
        quiet = 0
      }
    }
  })

/**
 * Runs `handler` on the server end of an in-memory pair while the client end
 * follows `steps`. Needs a TestClock (it.effect provides one) for `wait`.
 *
 * @example
 * const result = yield* Script.run(Echo.handler, [Script.send("hi"), Script.endWrite])
 * assert.strictEqual(result.text, "hi")
 */
export const run = <E, R>(
  handler: Handler<E, R>,
  steps: ReadonlyArray<Step>,
  options: RunOptions = {}
): Effect.Effect<RunResult<E>, never, R> =>
  Effect.scoped(Effect.gen(function*() {
    const { client, server } = makePair({
      ...(options.bufferSize !== undefined ? { bufferSize: options.bufferSize } : {}),
      ...(options.remote !== undefined ? { remote: options.remote } : {})
    })
    let moved = 0
    const progress = () => moved
    const output: Array<Uint8Array> = []
    let timedOut = false

    const fiber = yield* Effect.forkChild(Effect.suspend(() => handler(server)), { startImmediately: true })
    // as the listener does: a handler that returns closes politely, one that fails or is interrupted aborts
    // (but not when the runner itself stops a handler that is still running at the end of the script)
    let finishing = false
    fiber.addObserver((exit) => {
      moved++
      if (Exit.isSuccess(exit)) server.closeNow()
      else if (!finishing && !server.closed && server.failure === undefined) server.resetNow("ECONNABORTED")
    })

    const busy = options.realIo === true ? () => fiber.pollUnsafe() === undefined && !server.waiting : undefined
    let onActivity = () => {
      moved++
    }
    if (options.idleTimeout !== undefined) {
      const idle = Duration.fromInputUnsafe(options.idleTimeout)
      const timeouts = yield* Timeouts.make(Timeouts.resolutionFor(idle))
      const entry: Timeouts.Timed = {
        lastActive: 0,
        timeoutTicks: timeouts.ticksFor(Duration.toMillis(idle)),
        onTimeout: () => {
          timedOut = true
          fiber.interruptUnsafe()
          server.timeOut()
        }
      }
      timeouts.add(entry)
      onActivity = () => {
        moved++
        entry.lastActive = timeouts.epoch
      }
    }
    server.onActivity = () => onActivity()

    // Sends and half-closes go through one writer fiber, so a handler that does not
    // read (a full buffer) cannot block the script itself.
    const outbox = yield* Queue.unbounded<Step>()
    yield* Effect.forkScoped(
      Effect.forever(Queue.take(outbox).pipe(Effect.flatMap((step) =>
        step._tag === "Send" ? client.write(step.bytes) : client.endWrite
      ), Effect.ignore, Effect.andThen(Effect.sync(() => moved++)))),
      { startImmediately: true }
    )
    if (options.reader !== "manual") {
      const readAll: Effect.Effect<void> = client.read.pipe(
        Effect.flatMap((chunk) => {
          if (Option.isNone(chunk)) return Effect.void
          output.push(chunk.value)
          return readAll
        }),
        Effect.ignore
      )
      yield* Effect.forkScoped(readAll, { startImmediately: true })
    }

    for (const step of steps) {
      yield* settle(progress, busy)
      switch (step._tag) {
        case "Send":
        case "EndWrite":
          yield* Queue.offer(outbox, step)
          break
        case "Wait":
          yield* TestClock.adjust(step.duration)
          break
        case "Reset":
          // as the listener does when its socket closes under a running handler
          yield* client.reset
          fiber.interruptUnsafe()
          break
        case "Read":
          output.push(client.readAvailable(step.bytes))
          break
        case "Drain":
          server.drain()
          break
        case "ReadRest":
          while (true) {
            const chunk = client.readAvailable()
            if (chunk.byteLength === 0) break
            output.push(chunk)
            yield* settle(progress, busy)
          }
          break
      }
    }
    yield* settle(progress, busy)
    const exit = fiber.pollUnsafe()
    finishing = true
    if (exit === undefined) yield* Fiber.interrupt(fiber)
    if (options.reader === "manual") output.push(client.readAvailable())
    const bytes = Buffer.concat(output)
    return {
      output: bytes,
      text: bytes.toString("utf8"),
      serverEnded: client.peerEnded,
      reset: server.failure?._tag === "ConnectionReset",
      timedOut,
      exit
    }
  }))

/**
 * The batching log-writer actor that the access log and the error log share.
 *
 * Entries are told (from fibers, or synchronously from plain-JS hot paths)
 * and formatted at once into the current batch, as bytes in a reused chunk
 * (no entry object outlives its tell, no string is concatenated); one fiber
 * takes each batch and appends it to the file (`LogSink`) with one write.
 * On `reopen` (log rotation) the file is closed and opened again by path. When the owning scope closes, everything told before
 * is written and the file closed before the scope finishes. A file that cannot
 * be written (permissions, disk full) is reported on stderr once per failure
 * streak and in metrics; its entries are dropped and counted, and the next
 * batch tries again. The server never stops for its logs: no synchronous
 * file-system call runs on the event loop, the queue is bounded (`maxQueued`,
 * beyond it entries are dropped and counted), an append that makes no
 * progress for `writeStallTimeout` counts as failed, a FIFO without a reader
 * cannot block an open, and a log file deleted or replaced under the server
 * (its directory removed) is noticed within a second and reopened by path.
 */
import { Cause, Clock, Data, Deferred, Duration, Effect, Fiber, Metric, Queue, Schema } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Options from "../core/Options.ts"
import { LogBatch, type Sealed } from "./LogBatch.ts"
import { type Destination, errno, Sink } from "./LogSink.ts"

export type { Destination } from "./LogSink.ts"

/** The limits every log shares (the access log's and the error log's options include them). */
/** The limits every log takes, declared once (the access log's and the error log's options include them). */
export const limits = Options.declare({
  maxQueued: Options.option(Options.PositiveInt, "entries waiting to be written at most; more are dropped and counted (a stuck disk cannot grow memory)", 100_000),
  writeStallTimeout: Options.option(Options.Duration, "an append that makes no progress this long counts as failed: its entries are dropped and counted, the file reopened", "5 seconds"),
  allowNonRegular: Options.option(Schema.Boolean, "accept a FIFO, device or socket as the file (otherwise only regular files, `-` and `stderr`)", false)
})

/** The limits every log takes. */
export type LogLimits = typeof limits.schema.Type

/** The LogLimits fields of `options` that are set. */
export const limitsOf = (options: LogLimits): LogLimits => ({
  ...(options.maxQueued !== undefined ? { maxQueued: options.maxQueued } : {}),
  ...(options.writeStallTimeout !== undefined ? { writeStallTimeout: options.writeStallTimeout } : {}),
  ...(options.allowNonRegular !== undefined ? { allowNonRegular: options.allowNonRegular } : {})
})

/** Options of a log writer. */
export interface LogWriterOptions<A> extends LogLimits {
  /** Name in metrics (`log` attribute) and error messages, e.g. "access-log". */
  readonly name: string
  readonly destination: Destination
  /** Formats one entry as one line (with its newline). */
  readonly format: (entry: A) => string
  /** Every formatted line is ASCII (the access log's are: it escapes the rest), so it is copied byte for byte. Default false (UTF-8). */
  readonly ascii?: boolean
  /** Most entries per append. Default 8192. */
  readonly batchSize?: number
  /**
   * How long a small batch waits for more entries before it is written
   * (nginx's `flush=`): fewer, larger appends. Real time, not Effect's Clock
   * (it is I/O coalescing, not a timeout); `flush`, `reopen` and shutdown
   * do not wait for it. Default 0 (write what is there).
   */
  readonly flushInterval?: Duration.Input
  /** A second sink for every formatted batch of entries (e.g. syslog), called after the file append. */
  readonly alsoSend?: (entries: ReadonlyArray<A>) => void
}

/** Counters of one log writer. */
export interface LogWriterStats {
  written: number
  dropped: number
  writeErrors: number
  batches: number
}

/** A running log writer. */
export interface LogWriter<A> {
  /** Tells an entry; never blocks, never drops while the file can be written. */
  readonly tellUnsafe: (entry: A) => void
  /** The same, as an Effect. */
  readonly tell: (entry: A) => Effect.Effect<void>
  /** Closes and reopens the file (after the entries told before). Completes once reopened. */
  readonly reopen: Effect.Effect<void>
  /** Waits until everything told so far is written. */
  readonly flush: Effect.Effect<void>
  readonly stats: LogWriterStats
  /** Entries waiting to be written. */
  readonly depth: () => number
}

class Control {
  readonly kind: "reopen" | "flush"
  readonly done: Deferred.Deferred<void>
  constructor(kind: "reopen" | "flush", done: Deferred.Deferred<void>) {
    this.kind = kind
    this.done = done
  }
}

/** Formatted entries waiting to be written: one append. */
class Segment<A> {
  readonly sealed: Sealed
  /** The entries themselves, kept only for `alsoSend`. */
  readonly entries: ReadonlyArray<A> | undefined
  constructor(sealed: Sealed, entries: ReadonlyArray<A> | undefined) {
    this.sealed = sealed
    this.entries = entries
  }
  get count(): number {
    return this.sealed.count
  }
}

/** "Entries were told": wakes the writer (offered when the current segment gets its first entry). */
const WAKE = "wake" as const

/** A log destination that cannot be used: not a regular file, in a directory that cannot exist... */
export class LogPathError extends Data.TaggedError("LogPathError")<{
  readonly name: string
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `${this.name}: ${this.reason} (${this.path})`
  }
}

/** Log files never go under /proc or /sys (their files look regular, and writing them changes the kernel). */
const refuseKernelFs = (real: string): void => {
  for (const root of ["/proc", "/sys"]) {
    if (real === root || real.startsWith(`${root}/`)) throw errno("EINVAL", `cannot write log files under ${root} (the path leads to ${real})`)
  }
}

/**
 * Checks a log destination at startup, without creating anything: `-` and
 * `stderr` are fine; a file must be a regular file (a FIFO, a device or a
 * socket only with `allowNonRegular`), or not exist yet under a path whose
 * existing part is a directory.
 */
export const checkDestination = (
  name: string,
  destination: Destination,
  options: { readonly allowNonRegular?: boolean } = {}
): Effect.Effect<void, LogPathError> =>
  destination === "-" || destination === "stderr"
    ? Effect.void
    : Effect.tryPromise({
      try: async () => {
        // judge the real place: `..` and symlinks resolved (a path may reach /proc through either)
        const resolved = Path.resolve(destination)
        refuseKernelFs(resolved)
        const realOr = (path: string) => Fs.promises.realpath(path).catch(() => path)
        const stat = await Fs.promises.stat(resolved).catch((e: NodeJS.ErrnoException) => {
          if (e.code === "ENOENT") return undefined
          throw e
        })
        if (stat !== undefined) {
          if (stat.isDirectory()) throw errno("EISDIR", "is a directory")
          refuseKernelFs(await realOr(resolved))
          if (!stat.isFile() && options.allowNonRegular !== true) {
            throw errno("ENOTREG", "is not a regular file (a FIFO, device or socket needs allowNonRegular)")
          }
          return
        }
        let dir = Path.dirname(resolved)
        for (;;) {
          const st = await Fs.promises.stat(dir).catch(() => undefined)
          if (st !== undefined) {
            if (!st.isDirectory()) throw errno("ENOTDIR", `${dir} is not a directory`)
            refuseKernelFs(await realOr(dir))
            return
          }
          const parent = Path.dirname(dir)
          if (parent === dir) return
          dir = parent
        }
      },
      catch: (e) => new LogPathError({ name, path: destination, reason: (e as Error).message })
    })

const writtenTotal = Metric.counter("fiberd_log_written_total", { description: "log entries written", incremental: true })
const droppedTotal = Metric.counter("fiberd_log_dropped_total", {
  description: "log entries dropped because the log could not be written",
  incremental: true
})
const errorsTotal = Metric.counter("fiberd_log_write_errors_total", { description: "failed log appends", incremental: true })

/**
 * Starts a log writer actor in the current scope.
 *
 * @example
 * const log = yield* LogWriter.make({ name: "app-log", destination: "logs/app.log", format: (s: string) => s + "\n" })
 * log.tellUnsafe("hello")
 */
export const make = <A>(options: LogWriterOptions<A>): Effect.Effect<LogWriter<A>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const mailbox = yield* Queue.unbounded<Segment<A> | Control | typeof WAKE, Cause.Done>()
    const clock = yield* Clock.Clock
    const bounds = limits.resolve(options)
    const sink = new Sink(
      { name: options.name, destination: options.destination, allowNonRegular: bounds.allowNonRegular },
      () => clock.currentTimeMillisUnsafe()
    )
    yield* Effect.promise(() => sink.warm())
    const maxQueued = bounds.maxQueued
    const writeStall = Options.toDuration(bounds.writeStallTimeout)
    /** Entries dropped by `tell` (queue full) since the metric was last updated. */
    let droppedUnreported = 0
    const stats: LogWriterStats = { written: 0, dropped: 0, writeErrors: 0, batches: 0 }
    const batchSize = options.batchSize ?? 8192
    const delayMillis = Duration.toMillis(Duration.fromInputUnsafe(options.flushInterval ?? 0))
    /** Waits `flushInterval` of real time, or less: a control message (flush, reopen) ends the wait. */
    let wakeEarly: (() => void) | undefined
    const coalesce = Effect.callback<void>((resume) => {
      const timer = setTimeout(() => {
        wakeEarly = undefined
        resume(Effect.void)
      }, delayMillis)
      wakeEarly = () => {
        wakeEarly = undefined
        clearTimeout(timer)
        resume(Effect.void)
      }
      return Effect.sync(() => {
        wakeEarly = undefined
        clearTimeout(timer)
      })
    })
    const attributes = { log: options.name }
    const format = options.format
    const alsoSend = options.alsoSend

    // Entries are formatted when told, into the current batch (bytes: nothing else of an entry stays
    // alive); a batch is sealed onto the mailbox before a control message (so the control applies
    // after exactly the entries told before it), when it is full, or when it holds `batchSize` entries.
    const current = new LogBatch(options.ascii ?? false)
    let currentEntries: Array<A> = []
    /** Entries told and not yet taken for writing (the `maxQueued` bound). */
    let queued = 0

    const takeCurrent = (): Segment<A> | undefined => {
      const sealed = current.take()
      if (sealed === undefined) return undefined
      const segment = new Segment(sealed, alsoSend === undefined ? undefined : currentEntries)
      if (alsoSend !== undefined) currentEntries = []
      return segment
    }

    const seal = (): void => {
      const segment = takeCurrent()
      if (segment !== undefined && !Queue.offerUnsafe(mailbox, segment)) queued -= segment.count
    }

    const writeSegment = (segment: Segment<A>) =>
      Effect.gen(function*() {
        queued -= segment.count
        const data = segment.sealed.bytes
        let inFlight: Promise<void> | undefined
        const outcome = yield* Effect.tryPromise({
          try: () => (inFlight = sink.append(data)),
          catch: (e) => (e as NodeJS.ErrnoException).code ?? (e as Error).message
        }).pipe(Effect.timeoutOption(writeStall), Effect.result)
        let ok = false
        if (outcome._tag === "Failure") {
          sink.markStale()
          sink.report(false, segment.count, outcome.failure)
        } else if (outcome.success._tag === "None") {
          // stalled: stop waiting, drop the batch, use a fresh descriptor for the next one
          sink.abandon(inFlight ?? Promise.resolve())
          sink.report(false, segment.count, `no progress for ${Duration.format(writeStall)}`)
        } else {
          ok = true
          sink.report(true, segment.count)
        }
        // a stalled write may still use its buffer: only a finished one is reused
        if (outcome._tag === "Failure" || outcome.success._tag === "Some") current.release(segment.sealed)
        stats.batches++
        if (ok) {
          stats.written += segment.count
          yield* Metric.update(Metric.withAttributes(writtenTotal, attributes), segment.count)
        } else {
          stats.dropped += segment.count
          stats.writeErrors++
          yield* Metric.update(Metric.withAttributes(droppedTotal, attributes), segment.count)
          yield* Metric.update(Metric.withAttributes(errorsTotal, attributes), 1)
        }
        if (alsoSend !== undefined && segment.entries !== undefined) alsoSend(segment.entries)
      })

    /** Writes sealed segments and runs controls in order, then everything told since. */
    const handle = (batch: ReadonlyArray<Segment<A> | Control | typeof WAKE>) =>
      Effect.gen(function*() {
        if (droppedUnreported > 0) {
          yield* Metric.update(Metric.withAttributes(droppedTotal, attributes), droppedUnreported)
          droppedUnreported = 0
        }
        for (const item of batch) {
          if (item === WAKE) continue
          if (item instanceof Control) {
            if (item.kind === "reopen") sink.markStale()
            yield* Deferred.succeed(item.done, undefined)
          } else {
            yield* writeSegment(item)
          }
        }
        // the current segment follows everything sealed before it: with more in the mailbox (told
        // while this batch was written), it waits for the next round, whose wake-up it queued
        if (Queue.sizeUnsafe(mailbox) > 0) return
        const rest = takeCurrent()
        if (rest !== undefined) yield* writeSegment(rest)
      })

    const loop = Effect.gen(function*() {
      while (true) {
        let batch = yield* Queue.takeAll(mailbox)
        if (delayMillis > 0 && current.count < batchSize && !batch.some((item) => item instanceof Control)) {
          yield* coalesce
          batch = [...batch, ...(yield* Queue.clear(mailbox))]
        }
        yield* handle(batch)
      }
    }).pipe(Effect.catchIf(Cause.isDone, () => {
      // the scope is closing: what was told since the last wake-up is written too
      const rest = takeCurrent()
      return rest === undefined ? Effect.void : writeSegment(rest)
    }))

    const fiber = yield* Effect.forkScoped(loop, { startImmediately: true })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => wakeEarly?.()).pipe(
        Effect.andThen(Queue.end(mailbox)),
        Effect.andThen(Fiber.join(fiber)),
        Effect.andThen(Effect.sync(() => sink.close()))
      )
    )

    const control = (kind: "reopen" | "flush") =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<void>()
        seal()
        if (!Queue.offerUnsafe(mailbox, new Control(kind, done))) return
        wakeEarly?.()
        yield* Deferred.await(done)
      })

    const tellUnsafe = (entry: A) => {
      if (queued >= maxQueued) {
        stats.dropped++
        droppedUnreported++
        return
      }
      const line = format(entry)
      if (!current.fits(line)) seal()
      current.add(line)
      queued++
      if (alsoSend !== undefined) currentEntries.push(entry)
      if (current.count >= batchSize) seal()
      else if (current.count === 1 && !Queue.offerUnsafe(mailbox, WAKE)) {
        // the writer has stopped (its scope closed): nothing will write this entry
        current.take()
        currentEntries = []
        queued--
        stats.dropped++
      }
    }
    return {
      tellUnsafe,
      tell: (entry) => Effect.sync(() => tellUnsafe(entry)),
      reopen: control("reopen"),
      flush: control("flush"),
      stats,
      depth: () => queued
    }
  })

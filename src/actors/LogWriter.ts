/**
 * The batching log-writer actor that the access log and the error log share.
 *
 * Entries are told (from fibers, or synchronously from plain-JS hot paths);
 * one fiber takes everything waiting, formats it, and appends it to the file
 * with one write per batch. On `reopen` (log rotation) the file is closed and
 * opened again by path. When the owning scope closes, everything told before
 * is written and the file closed before the scope finishes. A file that cannot
 * be written (permissions, disk full) is reported on stderr once per failure
 * streak and in metrics; its entries are dropped and counted, and the next
 * batch tries again. The server never stops for its logs.
 */
import { Cause, Deferred, Duration, Effect, Fiber, Metric, Queue } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"

/** Where a log goes: a file path (appended, created with its directory), `-` for stdout, `stderr` for stderr. */
export type Destination = string

/** Options of a log writer. */
export interface LogWriterOptions<A> {
  /** Name in metrics (`log` attribute) and error messages, e.g. "access-log". */
  readonly name: string
  readonly destination: Destination
  /** Formats one entry as one line (with its newline). */
  readonly format: (entry: A) => string
  /** Most entries per append. Default 8192. */
  readonly batchSize?: number
  /** How long a small batch waits for more entries before it is written. Default 0 (write what is there). */
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

const appendAll = (fd: number, data: Buffer): Promise<void> =>
  new Promise((resolve, reject) => {
    const step = (offset: number) =>
      Fs.write(fd, data, offset, data.byteLength - offset, null, (error, written) => {
        if (error) return reject(error)
        if (offset + written < data.byteLength) return step(offset + written)
        resolve()
      })
    step(0)
  })

/** The file behind a log: opened lazily, reopened on demand and after errors. */
class Sink {
  private fd: number | undefined = undefined
  private failing = false
  private readonly options: { readonly name: string; readonly destination: Destination }
  constructor(options: { readonly name: string; readonly destination: Destination }) {
    this.options = options
  }

  private open(): number {
    if (this.options.destination === "-") return 1
    if (this.options.destination === "stderr") return 2
    if (this.fd === undefined) {
      Fs.mkdirSync(Path.dirname(this.options.destination), { recursive: true })
      this.fd = Fs.openSync(this.options.destination, "a")
    }
    return this.fd
  }

  close(): void {
    if (this.fd !== undefined) {
      try {
        Fs.closeSync(this.fd)
      } catch {
        // already gone
      }
      this.fd = undefined
    }
  }

  /** Appends; on failure reports once per streak and resolves false. */
  async append(data: Buffer, entries: number): Promise<boolean> {
    try {
      await appendAll(this.open(), data)
      if (this.failing) {
        this.failing = false
        process.stderr.write(`fiberd: ${this.options.name} ${this.options.destination}: writing again\n`)
      }
      return true
    } catch (error) {
      const e = error as NodeJS.ErrnoException
      if (!this.failing) {
        this.failing = true
        process.stderr.write(
          `fiberd: ${this.options.name} ${this.options.destination}: cannot write (${e.code ?? e.message}); ` +
            `dropping ${entries} entries and every batch until it can be written again\n`
        )
      }
      this.close()
      return false
    }
  }
}

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
    const mailbox = yield* Queue.unbounded<A | Control, Cause.Done>()
    const sink = new Sink(options)
    const stats: LogWriterStats = { written: 0, dropped: 0, writeErrors: 0, batches: 0 }
    const batchSize = options.batchSize ?? 8192
    const flushInterval = Duration.fromInputUnsafe(options.flushInterval ?? 0)
    const attributes = { log: options.name }

    const writeEntries = (entries: Array<A>) =>
      Effect.gen(function*() {
        for (let from = 0; from < entries.length; from += batchSize) {
          const slice = entries.slice(from, from + batchSize)
          let text = ""
          for (const entry of slice) text += options.format(entry)
          const ok = yield* Effect.promise(() => sink.append(Buffer.from(text, "utf8"), slice.length))
          stats.batches++
          if (ok) {
            stats.written += slice.length
            yield* Metric.update(Metric.withAttributes(writtenTotal, attributes), slice.length)
          } else {
            stats.dropped += slice.length
            stats.writeErrors++
            yield* Metric.update(Metric.withAttributes(droppedTotal, attributes), slice.length)
            yield* Metric.update(Metric.withAttributes(errorsTotal, attributes), 1)
          }
          if (options.alsoSend !== undefined) options.alsoSend(slice)
        }
      })

    const handle = (batch: ReadonlyArray<A | Control>) =>
      Effect.gen(function*() {
        let entries: Array<A> = []
        for (const item of batch) {
          if (item instanceof Control) {
            yield* writeEntries(entries)
            entries = []
            if (item.kind === "reopen") sink.close()
            yield* Deferred.succeed(item.done, undefined)
          } else {
            entries.push(item)
          }
        }
        yield* writeEntries(entries)
      })

    const loop = Effect.gen(function*() {
      while (true) {
        let batch = yield* Queue.takeAll(mailbox)
        if (batch.length < batchSize && Duration.toMillis(flushInterval) > 0) {
          yield* Effect.sleep(flushInterval)
          batch = [...batch, ...(yield* Queue.clear(mailbox))]
        }
        yield* handle(batch)
      }
    }).pipe(Effect.catchIf(Cause.isDone, () => Effect.void))

    const fiber = yield* Effect.forkScoped(loop, { startImmediately: true })
    yield* Effect.addFinalizer(() =>
      Queue.end(mailbox).pipe(Effect.andThen(Fiber.join(fiber)), Effect.andThen(Effect.sync(() => sink.close())))
    )

    const control = (kind: "reopen" | "flush") =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<void>()
        if (!Queue.offerUnsafe(mailbox, new Control(kind, done))) return
        yield* Deferred.await(done)
      })

    return {
      tellUnsafe: (entry) => {
        if (!Queue.offerUnsafe(mailbox, entry)) stats.dropped++
      },
      tell: (entry) =>
        Effect.sync(() => {
          if (!Queue.offerUnsafe(mailbox, entry)) stats.dropped++
        }),
      reopen: control("reopen"),
      flush: control("flush"),
      stats,
      depth: () => Queue.sizeUnsafe(mailbox)
    }
  })

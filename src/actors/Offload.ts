/**
 * CPU offload: a pool of worker threads that runs the handlers of an
 * `effect/rpc` group, so a CPU-heavy job waits in its caller's fiber while
 * the event loop keeps serving every other connection (nginx's thread pools,
 * Node's worker_threads), on Effect's worker RPC (`RpcClient` over
 * `layerProtocolWorker`, `NodeWorker` threads).
 *
 * The caller side (`make` / `layer`) and the thread side (`threadLayer`, in
 * the module the threads run) share one `RpcGroup`. What a caller can get:
 * - the job's own typed error (the group's `error` schema), for that caller only;
 * - `OffloadFailed`: the job threw (a defect inside the thread), that caller only;
 * - `OffloadCrashed`: a thread died (`process.exit`, an uncaught error) while
 *   the job was in flight. Effect's worker client fails every in-flight call
 *   of the pool when one thread exits, so this may hit jobs that ran on a
 *   healthy thread; the dead thread is replaced (about a second later). fiberd
 *   does not retry on its own, because only the caller knows whether a job is
 *   idempotent: `run(job, { retries: n })` re-runs it after a crash, never after
 *   the job's own error;
 * - `OffloadBusy`: `threads + maxQueued` jobs are already admitted: the pool
 *   sheds load at once rather than queueing without bound.
 * Uint8Arrays in payloads and results whose schema is `Transferable.Uint8Array`
 * are transferred to and from the thread, not copied.
 */
import * as NodeWorker from "@effect/platform-node/NodeWorker"
import * as NodeWorkerRunner from "@effect/platform-node/NodeWorkerRunner"
import { type Context, Data, Effect, Layer, type Scope } from "effect"
import { type Rpc, RpcClient, RpcClientError, type RpcGroup, RpcServer } from "effect/rpc"
import * as WorkerThreads from "node:worker_threads"
import * as Options from "../core/Options.ts"
import * as Published from "../core/Published.ts"

/** How the pool is built. */
import { options } from "./OffloadOptions.ts"

export { options }

/** Offload pool options: `options`, and the module each thread runs (it serves the group: see `threadLayer`). */
export type OffloadOptions = typeof options.schema.Type & { readonly entry: URL | string }

/** More jobs than the pool admits (`threads + maxQueued`) are waiting: shed this one. */
export class OffloadBusy extends Data.TaggedError("OffloadBusy")<{ readonly pool: string; readonly admitted: number }> {
  override get message() {
    return `${this.pool}: ${this.admitted} jobs already admitted, try again later`
  }
}

/** A thread of the pool died while this job was in flight; running the job again may succeed. */
export class OffloadCrashed extends Data.TaggedError("OffloadCrashed")<{ readonly pool: string; readonly reason: string }> {
  /** Always true: the job itself did not fail; whether re-running it is safe is the caller's call. */
  readonly retryable = true
  override get message() {
    return `${this.pool}: a worker thread died while the job was in flight (${this.reason})`
  }
}

/** The job threw inside its thread (a defect of the job, contained to its caller). */
export class OffloadFailed extends Data.TaggedError("OffloadFailed")<{ readonly pool: string; readonly reason: string }> {
  override get message() {
    return `${this.pool}: the job failed in its thread: ${this.reason}`
  }
}

/** What the pool did so far (also published as metrics with the pool name as `pool`). */
export interface OffloadStats {
  readonly threads: number
  /** Jobs admitted and not finished: running on a thread or waiting for one. */
  readonly inFlight: number
  readonly completed: number
  /** Jobs that ended in their own error or `OffloadFailed`. */
  readonly failed: number
  /** Jobs failed by a thread's death (`OffloadCrashed`), before any retry. */
  readonly crashed: number
  /** Jobs refused with `OffloadBusy`. */
  readonly rejected: number
}

/** A pool of threads serving the group `Rpcs`. */
export interface Offload<Rpcs extends Rpc.Any> {
  /** The group's RPC client, unguarded (no admission limit, raw `RpcClientError`s). Prefer `run`. */
  readonly client: RpcClient.RpcClient<Rpcs, RpcClientError.RpcClientError>
  /**
   * Runs one job on the pool: `offload.run((jobs) => jobs.Pbkdf2({ rounds }))`. The calling fiber
   * waits (interrupting it interrupts the job's call); see the module header for the errors.
   */
  readonly run: <A, E>(
    job: (client: RpcClient.RpcClient<Rpcs, RpcClientError.RpcClientError>) => Effect.Effect<A, E>,
    options?: { readonly retries?: number }
  ) => Effect.Effect<A, Exclude<E, RpcClientError.RpcClientError> | OffloadBusy | OffloadCrashed | OffloadFailed>
  readonly stats: () => OffloadStats
}

const describeDefect = (defect: unknown) => defect instanceof Error ? defect.message : String(defect)

/**
 * Starts `threads` worker threads running `entry` and returns the pool; the
 * threads are terminated when the scope closes.
 *
 * @example
 * const Jobs = RpcGroup.make(Rpc.make("Square", { payload: { n: Schema.Number }, success: Schema.Number }))
 * // jobs.ts, the module each thread runs:
 * //   NodeRuntime.runMain(Layer.launch(Offload.threadLayer(Jobs, Jobs.toLayer({ Square: ({ n }) => Effect.succeed(n * n) }))))
 * const pool = yield* Offload.make(Jobs, { entry: new URL("./jobs.ts", import.meta.url), threads: 2 })
 * const nine = yield* pool.run((jobs) => jobs.Square({ n: 3 }), { retries: 1 })
 */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  given: OffloadOptions
): Effect.Effect<Offload<Rpcs>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const o = options.resolve(given)
    const name = o.name
    const threads = Math.max(1, o.threads)
    const limit = threads + (o.maxQueued ?? threads * 64)
    const entry = given.entry
    const protocol = RpcClient.layerProtocolWorker({ size: threads, concurrency: 1 }).pipe(
      Layer.provide(NodeWorker.layer(() => new WorkerThreads.Worker(entry))),
      Layer.orDie
    )
    const context = yield* Layer.build(protocol)
    const client = yield* RpcClient.make(group).pipe(Effect.provide(context))
    const stats = { threads, inFlight: 0, completed: 0, failed: 0, crashed: 0, rejected: 0 }
    const attributes = { pool: name }
    yield* Published.publish([
      Published.gauge("fiberd_offload_threads", "threads in the offload pool", attributes, () => stats.threads),
      Published.gauge("fiberd_offload_in_flight", "offload jobs running or waiting for a thread", attributes, () => stats.inFlight),
      Published.counter("fiberd_offload_completed_total", "offload jobs that succeeded", attributes, () => stats.completed),
      Published.counter("fiberd_offload_failed_total", "offload jobs that failed (their own error or a throw)", attributes, () => stats.failed),
      Published.counter("fiberd_offload_crashed_total", "offload jobs failed by a worker thread's death", attributes, () => stats.crashed),
      Published.counter("fiberd_offload_rejected_total", "offload jobs refused while the pool was full", attributes, () => stats.rejected)
    ])

    const once = <A, E>(job: (c: typeof client) => Effect.Effect<A, E>) =>
      job(client).pipe(
        Effect.catchDefect((defect) => Effect.fail(new OffloadFailed({ pool: name, reason: describeDefect(defect) }))),
        Effect.catchIf(
          (e): e is Extract<E, RpcClientError.RpcClientError> => e instanceof RpcClientError.RpcClientError,
          (e) => {
            stats.crashed++
            return Effect.fail(new OffloadCrashed({ pool: name, reason: e.reason.message }))
          }
        )
      ) as Effect.Effect<A, Exclude<E, RpcClientError.RpcClientError> | OffloadCrashed | OffloadFailed>

    const run: Offload<Rpcs>["run"] = (job, runOptions) =>
      Effect.suspend((): Effect.Effect<any, any> => {
        if (stats.inFlight >= limit) {
          stats.rejected++
          return Effect.fail(new OffloadBusy({ pool: name, admitted: stats.inFlight }))
        }
        stats.inFlight++
        return once(job).pipe(
          Effect.retry({ times: runOptions?.retries ?? 0, while: (e) => (e as { _tag?: string })._tag === "OffloadCrashed" }),
          Effect.onExit((exit) =>
            Effect.sync(() => {
              stats.inFlight--
              if (exit._tag === "Success") stats.completed++
              else if (!(exit.cause.reasons.every((r) => r._tag === "Interrupt"))) {
                const crashed = exit.cause.reasons.some((r) => r._tag === "Fail" && (r.error as { _tag?: string })._tag === "OffloadCrashed")
                if (!crashed) stats.failed++
              }
            })
          )
        )
      })

    return { client, run, stats: () => ({ ...stats }) }
  })

/** `make` as a Layer under a tag of your own: `class Jobs extends Context.Service<Jobs, Offload.Offload<...>>()("Jobs") {}`. */
export const layer = <I, Rpcs extends Rpc.Any>(
  tag: Context.Key<I, Offload<Rpcs>>,
  group: RpcGroup.RpcGroup<Rpcs>,
  options: OffloadOptions
): Layer.Layer<I> => Layer.effect(tag, make(group, options))

/**
 * The thread side: serves `group` with `handlers` inside a worker thread. The
 * entry module runs it: `NodeRuntime.runMain(Layer.launch(Offload.threadLayer(Jobs, JobsLive)))`.
 */
export const threadLayer = <Rpcs extends Rpc.Any, E, R>(
  group: RpcGroup.RpcGroup<Rpcs>,
  handlers: Layer.Layer<Rpc.ToHandler<Rpcs>, E, R>
) =>
  // a job that throws fails its own call only (by default a defect is "fatal" and fails every call of the pool)
  RpcServer.layer(group, { disableFatalDefects: true }).pipe(
    Layer.provide(handlers),
    Layer.provide(RpcServer.layerProtocolWorkerRunner),
    Layer.provide(NodeWorkerRunner.layer)
  )

/**
 * The live status feed behind `GET /_status/stream` (Server-Sent Events):
 * one frame a second, computed once and shared by every viewer, and nothing
 * computed while nobody watches (the ticker and the event-loop monitor run
 * only while a viewer is subscribed). A frame is what changed over the last
 * second — per service requests/s, bytes in/out per second, p50/p99 latency
 * from the HTTP duration histogram, 4xx/5xx so far, active connections,
 * handler failures, restarts — and the process: the supervisor's children
 * with their state and restarts, event-loop delay p50/p99, heap and
 * resident memory, the logs; in a prefork worker the whole server's numbers
 * and every process (the primary's workers and their restarts). A viewer
 * that falls behind loses old frames, never memory (a sliding buffer of a
 * few frames each).
 */
import { Clock, Effect, FiberHandle, PubSub, Stream } from "effect"
import type { Scope } from "effect"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as HttpMetrics from "../protocols/http/HttpMetrics.ts"
import * as ServerStatus from "./ServerStatus.ts"
import { snapshot, type StatusSource } from "./Status.ts"

/** One service in a frame. */
export interface ServiceFrame {
  readonly name: string
  readonly protocol: string
  readonly activeConnections: number
  readonly requestsPerSecond: number
  readonly bytesInPerSecond: number
  readonly bytesOutPerSecond: number
  /** Over the last second, in ms (the histogram's bucket bound); null when nothing was answered. */
  readonly p50Ms: number | null
  readonly p99Ms: number | null
  readonly clientErrors: number
  readonly serverErrors: number
  readonly handlerFailures: number
  readonly restarts: number
  /** The connections open longest (this process's; left out in prefork). */
  readonly oldest: ReadonlyArray<{ readonly peer: string; readonly seconds: number }>
}

/** A supervised child as the feed shows it. */
export interface Supervised {
  readonly id: string
  readonly status: string
  readonly restarts: number
}

/**
 * The process's long-lived parts beside the root supervisor's children: the log writers (never restarted:
 * a writer that fails reopens its file) and the offload pool (a thread that dies is replaced: its
 * restarts are the crashed jobs' threads).
 */
const processParts = (source: StatusSource): ReadonlyArray<Supervised> => {
  const offload = source.offload?.()
  return [
    { id: "access log", status: "running", restarts: 0 },
    { id: "error log", status: "running", restarts: 0 },
    ...(offload === undefined ? [] : [{ id: "offload", status: `${offload.threads} threads, ${offload.inFlight} jobs in flight`, restarts: offload.crashed }])
  ]
}

/** What the feed sends each second. */
export interface Frame {
  /** Milliseconds since the epoch. */
  readonly at: number
  readonly uptimeSeconds: number
  readonly services: ReadonlyArray<ServiceFrame>
  /** The root supervisor's children and, below a service that supervises its own (a chat's rooms), theirs. */
  readonly supervisor: ReadonlyArray<Supervised & { readonly children?: ReadonlyArray<Supervised> }>
  /** Prefork: each process (the primary and every worker) with its pid, restarts and request rate. */
  readonly processes?: ReadonlyArray<{ readonly name: string; readonly pid: number; readonly restarts: number; readonly requestsPerSecond: number }>
  readonly loop: { readonly delayP50Ms: number; readonly delayP99Ms: number }
  readonly memory: { readonly heapUsedBytes: number; readonly rssBytes: number }
  readonly logs: unknown
  /** Entries waiting in this process's log queues. */
  readonly logsQueued: { readonly access: number; readonly error: number }
  /** In cluster mode: this node's runner, its shards and the rooms it hosts. */
  readonly cluster?: unknown
}

/** The feed: its SSE byte stream for one viewer, and counters for tests and the status page. */
export interface StatusFeed {
  /** A viewer's stream: `retry`, then one `data:` event per frame, until the viewer leaves or the feed ends. */
  readonly stream: Stream.Stream<Uint8Array>
  /** Viewers subscribed now. */
  readonly viewers: () => number
  /** Frames computed so far (one a second while anyone watches). */
  readonly frames: () => number
}

const encoder = new TextEncoder()
const LOOP_RESOLUTION_MS = 10
const EMPTY_BUCKETS = new Float64Array(0)

/** Makes the feed for `source`; its ticker lives in the scope and runs only while someone watches. */
export const make = (source: StatusSource, intervalMs = 1000): Effect.Effect<StatusFeed, never, Scope.Scope> =>
  Effect.gen(function*() {
    const hub = yield* PubSub.sliding<Frame>(4)
    yield* Effect.addFinalizer(() => PubSub.shutdown(hub)) // viewers' streams end with the feed
    const ticker = yield* FiberHandle.make<void, never>()
    const delay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
    let viewers = 0
    let frames = 0
    /** The last frame published, for a viewer that arrives between two (it sees it at once). */
    let latest: Frame | undefined = undefined
    /** Totals at the last frame (requests, bytes; per service and per process), to turn them into rates. */
    const totals = new Map<string, number>()
    /** Each service's duration histogram at the last frame. */
    const histograms = new Map<string, Float64Array>()
    let last = 0

    /** What a frame is made of: this process's status, or in a prefork worker the whole server's (every process). */
    const read = Effect.gen(function*() {
      const own = yield* snapshot(source)
      const server = source.server
      if (server === undefined) {
        return {
          own,
          rows: own.services as ReadonlyArray<Record<string, unknown> & { readonly name: string; readonly protocol: string }>,
          supervisor: [
            ...yield* Effect.forEach(own.supervisor, (c) => {
              const below = source.services().find((e) => e.name === c.id)?.children
              const node = { id: c.id, status: c.status, restarts: c.restarts }
              return below === undefined
                ? Effect.succeed(node)
                : Effect.map(below, (children) => ({ ...node, children: children.map((k) => ({ id: k.id, status: k.status, restarts: k.restarts })) }))
            }),
            ...processParts(source)
          ],
          processes: undefined,
          logs: own.logs as unknown
        }
      }
      const doc = ServerStatus.document(yield* server())
      return {
        own,
        rows: doc.services as unknown as ReadonlyArray<Record<string, unknown> & { readonly name: string; readonly protocol: string }>,
        // the primary supervises the workers: a crashed worker's slot restarts
        supervisor: doc.processes.filter((p) => p.name !== "primary").map((p) => ({ id: `worker ${p.name}`, status: p.answered ? "running" : "not answering", restarts: p.restarts })),
        processes: doc.processes.map((p) => ({
          name: p.name,
          pid: p.pid,
          restarts: p.restarts,
          requests: p.services.reduce((sum, row) => sum + (typeof row["requests"] === "number" ? row["requests"] : 0), 0)
        })),
        logs: doc.logs
      }
    })

    const frame = Effect.gen(function*() {
      const doc = yield* read
      const now = yield* Clock.currentTimeMillis
      const seconds = last === 0 ? intervalMs / 1000 : Math.max(0.001, (now - last) / 1000)
      last = now
      const entries = new Map(source.services().map((s) => [s.name, s]))
      const rate = (key: string, value: number) => {
        const before = totals.get(key) ?? value
        totals.set(key, value)
        return (value - before) / seconds
      }
      const services = doc.rows.map((r): ServiceFrame => {
        const num = (key: string) => (typeof r[key] === "number" ? (r[key] as number) : 0)
        // latency from this process's histogram: in prefork it would be one worker's, so it is left out there
        const http = doc.processes === undefined ? entries.get(r.name)?.http : undefined
        const buckets = http === undefined ? EMPTY_BUCKETS : Float64Array.from(http.buckets)
        const before = histograms.get(r.name) ?? buckets
        histograms.set(r.name, buckets)
        const errors = http === undefined ? { clientErrors: 0, serverErrors: 0 } : HttpMetrics.errors(http)
        return {
          name: r.name,
          protocol: r.protocol,
          activeConnections: num("activeConnections"),
          requestsPerSecond: rate(`${r.name}/requests`, num("requests")),
          bytesInPerSecond: rate(`${r.name}/in`, num("bytesIn")),
          bytesOutPerSecond: rate(`${r.name}/out`, num("bytesOut")),
          p50Ms: HttpMetrics.quantile(before, buckets, 0.5) ?? null,
          p99Ms: HttpMetrics.quantile(before, buckets, 0.99) ?? null,
          ...errors,
          handlerFailures: num("handlerFailures"),
          restarts: num("supervisorRestarts"),
          oldest: doc.processes === undefined ? entries.get(r.name)?.oldest?.(3) ?? [] : []
        }
      })
      // the monitor's samples are whole intervals of its timer: the delay is what exceeds the resolution
      const late = (p: number) => Math.max(0, delay.percentile(p) / 1e6 - LOOP_RESOLUTION_MS)
      const loop = { delayP50Ms: late(50), delayP99Ms: late(99) }
      delay.reset()
      frames++
      return {
        at: now,
        uptimeSeconds: doc.own.uptimeSeconds,
        services,
        supervisor: doc.supervisor,
        ...(doc.processes === undefined ? {} : {
          processes: doc.processes.map((p) => ({ name: p.name, pid: p.pid, restarts: p.restarts, requestsPerSecond: rate(`process ${p.name}/${p.pid}`, p.requests) }))
        }),
        loop: { delayP50Ms: Number.isFinite(loop.delayP50Ms) ? loop.delayP50Ms : 0, delayP99Ms: Number.isFinite(loop.delayP99Ms) ? loop.delayP99Ms : 0 },
        memory: { heapUsedBytes: doc.own.memory.heapUsedBytes, rssBytes: doc.own.memory.rssBytes },
        logs: doc.logs,
        logsQueued: source.logsQueued?.() ?? { access: 0, error: 0 },
        ...(doc.own.cluster !== undefined ? { cluster: doc.own.cluster } : {})
      } satisfies Frame
    })

    const tick = Effect.forever(Effect.andThen(
      Effect.flatMap(frame, (f) => {
        latest = f
        return PubSub.publish(hub, f)
      }),
      Effect.sleep(intervalMs)
    ))

    /** A viewer arrives: the first one starts the ticker (and the event-loop monitor). */
    const arrive = Effect.suspend(() => {
      viewers++
      if (viewers > 1) return Effect.void
      delay.enable()
      return Effect.asVoid(FiberHandle.run(ticker, tick))
    })
    /** A viewer leaves: the last one stops them. */
    const leave = Effect.suspend(() => {
      viewers--
      if (viewers > 0) return Effect.void
      delay.disable()
      totals.clear()
      histograms.clear()
      last = 0
      latest = undefined
      return FiberHandle.clear(ticker)
    })

    const stream: Stream.Stream<Uint8Array> = Stream.unwrap(
      Effect.gen(function*() {
        const subscription = yield* PubSub.subscribe(hub)
        // taken with the subscription, with nothing in between: the frames after it come through the subscription
        const current = latest
        yield* Effect.acquireRelease(arrive, () => leave)
        const frames = Stream.fromSubscription(subscription)
        const event = (f: Frame) => encoder.encode(`data: ${JSON.stringify(f)}\n\n`)
        return Stream.concat(
          Stream.make(encoder.encode("retry: 2000\n\n"), ...(current === undefined ? [] : [event(current)])),
          Stream.map(frames, event)
        )
      })
    )

    return { stream, viewers: () => viewers, frames: () => frames }
  })

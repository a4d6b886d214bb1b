/**
 * `GET /_status`: what the server is doing, as JSON (or a small HTML page
 * for browsers): uptime, per-service connections, requests, bytes and
 * handler failures, supervisor restarts and log drops. Loopback peers only,
 * unless a service says otherwise. `GET /metrics`: every metric, in Prometheus's text format (same access rule).
 */
import { Effect } from "effect"
import type { Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import type * as Supervisor from "../actors/Supervisor.ts"
import type { LogWriterStats } from "../actors/LogWriter.ts"
import type { ListenerCounters } from "../io/ListenerStats.ts"
import type { TlsConfigError } from "../io/Tls.ts"
import type { Http2Stats } from "../protocols/http/Http2.ts"
import type { HttpCounters } from "../protocols/http/HttpMetrics.ts"
import type { Request } from "../protocols/http/Request.ts"
import type { ClusterStatus } from "./ClusterMode.ts"
import type { OffloadStats } from "../actors/Offload.ts"
import * as ServerStatus from "./ServerStatus.ts"
import * as StatusPage from "./StatusPage.ts"
import type { ProcessSnapshot, ServerView } from "./WorkerProtocol.ts"
import * as Res from "../protocols/http/Response.ts"

/** One running service, as the status page sees it. */
export interface ServiceEntry {
  readonly name: string
  readonly protocol: string
  readonly transport: string
  readonly address: string
  /** Served over TLS. */
  readonly tls?: boolean
  /** Its listening socket was handed to the process (systemd socket activation), not bound by it. */
  readonly inherited?: boolean
  readonly stats?: ListenerCounters
  readonly udp?: { readonly received: number; readonly sent: number; readonly failures: number }
  readonly requests?: () => number
  /** HTTP/2 counters of an http service that speaks it. */
  readonly http2?: Http2Stats
  /** An http service's answers by status class and its duration histogram (the live feed's rates and latency). */
  readonly http?: HttpCounters
  /** What the service supervises itself (a chat's rooms), for the supervision tree. */
  readonly children?: Effect.Effect<ReadonlyArray<Supervisor.ChildInfo>>
  /** The `n` connections open longest, with peer and age (a listener's). */
  readonly oldest?: (n: number) => ReadonlyArray<{ readonly peer: string; readonly seconds: number }>
  /** Reads the service's TLS certificates again (SIGHUP); a no-op without TLS. */
  readonly reloadTls?: Effect.Effect<void, TlsConfigError>
}

/** What the status page reads. */
export interface StatusSource {
  /** A viewer's live stream (Server-Sent Events) for `GET /_status/stream` (see `StatusFeed`). */
  readonly feed?: () => Stream.Stream<Uint8Array>
  readonly startedAt: number
  readonly services: () => ReadonlyArray<ServiceEntry>
  readonly supervisor: () => Effect.Effect<ReadonlyArray<Supervisor.ChildInfo>>
  readonly logs: () => { readonly access: LogWriterStats; readonly error: LogWriterStats }
  /** Entries waiting in the logs' queues now. */
  readonly logsQueued?: () => { readonly access: number; readonly error: number }
  /** The offload pool's counters, when the process has one. */
  readonly offload?: () => OffloadStats | undefined
  /** In cluster mode: this node's runner, the shards it owns and the rooms it hosts. */
  readonly cluster?: Effect.Effect<ClusterStatus>
  /** In a prefork worker: the whole server (every process), asked of the primary. The pages then show it. */
  readonly server?: () => Effect.Effect<ServerView>
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export const isLoopback = (address: string): boolean =>
  address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.") || address === "localhost"

/** This process's memory: resident set and V8 heap in use, in bytes. */
const memory = () => {
  const m = process.memoryUsage()
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed }
}

/** The status document. */
export const snapshot = (source: StatusSource) =>
  Effect.gen(function*() {
    const children = yield* source.supervisor()
    const restarts = new Map(children.map((c) => [c.id, c.restarts]))
    const logs = source.logs()
    const offload = source.offload?.()
    const cluster = source.cluster === undefined ? undefined : yield* source.cluster
    return {
      uptimeSeconds: Math.round((Date.now() - source.startedAt) / 1000),
      memory: memory(),
      services: source.services().map((s) => ({
        name: s.name,
        protocol: s.protocol,
        transport: s.transport,
        address: s.address,
        ...(s.inherited === true ? { inheritedSocket: true } : {}),
        ...(s.stats !== undefined
          ? {
            activeConnections: s.stats.active,
            totalConnections: s.stats.accepted,
            bytesIn: s.stats.bytesIn,
            bytesOut: s.stats.bytesOut,
            handlerFailures: s.stats.handlerFailures,
            refused: s.stats.refused,
            ...(s.tls === true
              ? {
                tlsHandshakesPending: s.stats.tlsHandshakesPending,
                tlsHandshakeFailures: s.stats.tlsHandshakeFailures,
                tlsHandshakesRefused: s.stats.tlsHandshakesRefused
              }
              : {})
          }
          : {}),
        ...(s.udp !== undefined ? { datagramsIn: s.udp.received, datagramsOut: s.udp.sent, failures: s.udp.failures } : {}),
        ...(s.requests !== undefined ? { requests: s.requests() } : {}),
        ...(s.http2 !== undefined
          ? {
            http2Connections: s.http2.openConnections,
            http2ConnectionsTotal: s.http2.connections,
            http2Streams: s.http2.openStreams,
            http2StreamsTotal: s.http2.streams,
            http2ResetsByClient: s.http2.resetsByClient,
            http2ResetsByServer: s.http2.resetsByServer,
            http2GoawaysSent: s.http2.goawaysSent,
            http2GoawaysReceived: s.http2.goawaysReceived
          }
          : {}),
        supervisorRestarts: restarts.get(s.name) ?? 0
      })),
      supervisor: children,
      ...(offload !== undefined ? { offload } : {}),
      ...(cluster !== undefined ? { cluster } : {}),
      logs: {
        access: { written: logs.access.written, dropped: logs.access.dropped, writeErrors: logs.access.writeErrors },
        error: { written: logs.error.written, dropped: logs.error.dropped, writeErrors: logs.error.writeErrors }
      }
    }
  })

/** This process's status document and metrics, for the prefork primary's whole-server view. */
export const processSnapshot = (source: StatusSource): Effect.Effect<ProcessSnapshot> =>
  Effect.all({ status: snapshot(source), metrics: PrometheusMetrics.format() }) as Effect.Effect<ProcessSnapshot>

/** `/_status` and `/metrics` of a prefork worker: every process of the server. */
const serverPage = (request: Request, server: () => Effect.Effect<ServerView>, metrics: boolean) =>
  server().pipe(Effect.map((view) => {
    if (metrics) {
      return Res.text(ServerStatus.mergeMetrics(view), { headers: [["Content-Type", "text/plain; version=0.0.4; charset=utf-8"], ["Cache-Control", "no-store"]] })
    }
    const doc = ServerStatus.document(view)
    const wantsHtml = request.searchParams.get("format") !== "json" && (request.headers.get("accept") ?? "").includes("text/html")
    return wantsHtml ? Res.html(StatusPage.page(ServerStatus.tables(doc)), { headers: [["Cache-Control", "no-store"]] }) : Res.json(doc, { headers: [["Cache-Control", "no-store"]] })
  }))

/**
 * Wraps an app: `/_status` is answered here (403 for non-loopback peers
 * unless `allow` is "any"); everything else goes to `app`.
 */
export const withStatus = <E, R>(
  app: (request: Request) => Effect.Effect<Res.Response, E, R>,
  source: StatusSource,
  allow: "loopback" | "any" | "off"
) =>
(request: Request): Effect.Effect<Res.Response, E, R> => {
  const path = request.path
  const metrics = path === "/metrics"
  const live = path === "/_status/stream"
  if (allow === "off" || (!metrics && !live && path !== "/_status" && path !== "/_status/")) return app(request)
  if (allow === "loopback" && !isLoopback(request.remote.address)) {
    return Effect.succeed(Res.text(`403 Forbidden: ${metrics ? "/metrics" : "/_status"} is for loopback peers\n`, { status: 403 }))
  }
  if (live) {
    // one frame a second, shared by every viewer (StatusFeed); the connection stays open until the viewer leaves
    if (source.feed === undefined) return Effect.succeed(Res.text("404 Not Found: no live feed here\n", { status: 404 }))
    return Effect.succeed(Res.stream(source.feed(), { contentType: "text/event-stream", headers: [["Cache-Control", "no-store"]] }))
  }
  const server = source.server
  if (server !== undefined) return serverPage(request, server, metrics)
  if (metrics) {
    // every metric of this process (listeners, HTTP, UDP, logs, supervisors, actors), in Prometheus's text format
    return PrometheusMetrics.format().pipe(Effect.map((text) =>
      Res.text(text, { headers: [["Content-Type", "text/plain; version=0.0.4; charset=utf-8"], ["Cache-Control", "no-store"]] })
    ))
  }
  return snapshot(source).pipe(Effect.map((doc) => {
    const wantsHtml = request.searchParams.get("format") !== "json" && (request.headers.get("accept") ?? "").includes("text/html")
    // a browser gets the live page (the same table without JavaScript)
    return wantsHtml ? Res.html(StatusPage.page(StatusPage.tables(doc)), { headers: [["Cache-Control", "no-store"]] }) : Res.json(doc, { headers: [["Cache-Control", "no-store"]] })
  }))
}

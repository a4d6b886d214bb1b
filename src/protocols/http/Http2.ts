/**
 * HTTP/2 for the HTTP engine. node:http2's core API (nghttp2) frames a
 * connection that fiberd's listener accepted and admitted — over TLS when
 * ALPN chose `h2`, or in cleartext when a connection opens with the HTTP/2
 * preface and the engine allows prior knowledge — so admission limits, TLS,
 * drain and the listener's counters stay fiberd's. The connection's fiber
 * owns the session and a FiberSet in which each stream that needs a fiber
 * runs (`Http2Stream`). Limits: concurrent streams, header list size and
 * pairs, body per stream, flow-control windows, streams the client resets
 * per second (rapid reset, CVE-2023-44487) and pings and SETTINGS per second
 * (more: GOAWAY ENHANCE_YOUR_CALM; nghttp2's own reset limit is a backstop). Drain sends GOAWAY and lets
 * in-flight streams finish; an idle session is closed with GOAWAY.
 */
import { Effect, FiberSet } from "effect"
import type { Scope } from "effect"
import * as NodeHttp2 from "node:http2"
import type { Duplex } from "node:stream"
import type { Connection } from "../../io/Connection.ts"
import * as Published from "../../core/Published.ts"
import { RateBudget } from "../../core/RateBudget.ts"
import * as Http2Stream from "./Http2Stream.ts"

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR } = NodeHttp2.constants

/** The client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")

/** Whether bytes that open a connection are HTTP/2's preface: "h2", "http/1.1", or "more" (a prefix of it so far). */
export const prefaceOf = (bytes: Uint8Array): "h2" | "http/1.1" | "more" => {
  const n = Math.min(bytes.byteLength, PREFACE.byteLength)
  for (let i = 0; i < n; i++) if (bytes[i] !== PREFACE[i]) return "http/1.1"
  return n === PREFACE.byteLength ? "h2" : "more"
}

/** HTTP/2 counters of one engine. */
export class Http2Stats {
  connections = 0
  openConnections = 0
  streams = 0
  openStreams = 0
  resetsByClient = 0
  resetsByServer = 0
  goawaysSent = 0
  goawaysReceived = 0
}

/** Publishes `stats` as Effect metrics under `service` until the scope closes. */
export const publish = (service: string, stats: Http2Stats): Effect.Effect<void, never, Scope.Scope> =>
  Published.publish([
    Published.counter("fiberd_http2_connections_total", "HTTP/2 connections", { service }, () => stats.connections),
    Published.gauge("fiberd_http2_connections", "HTTP/2 connections open", { service }, () => stats.openConnections),
    Published.counter("fiberd_http2_streams_total", "HTTP/2 streams", { service }, () => stats.streams),
    Published.gauge("fiberd_http2_streams", "HTTP/2 streams open", { service }, () => stats.openStreams),
    Published.counter("fiberd_http2_resets_total", "HTTP/2 streams reset", { service, by: "client" }, () => stats.resetsByClient),
    Published.counter("fiberd_http2_resets_total", "HTTP/2 streams reset", { service, by: "server" }, () => stats.resetsByServer),
    Published.counter("fiberd_http2_goaways_total", "HTTP/2 GOAWAY frames", { service, by: "server" }, () => stats.goawaysSent),
    Published.counter("fiberd_http2_goaways_total", "HTTP/2 GOAWAY frames", { service, by: "client" }, () => stats.goawaysReceived)
  ])

/** The limits a session is made with (the engine's options, resolved). */
export interface SessionLimits {
  readonly maxConcurrentStreams: number
  readonly maxHeadBytes: number
  readonly maxHeaders: number
  readonly streamWindow: number
  readonly resetsPerSecond: number
  readonly controlFramesPerSecond: number
  /** A session with no open stream is closed (GOAWAY) after this long without traffic (ms). */
  readonly idleTimeoutMs: number
}

/** The engine's side of its HTTP/2 connections. */
export interface Http2Engine<R> {
  /** Serves one connection as an HTTP/2 session until it closes; `buffered`: bytes already read from it. */
  readonly serve: (conn: Connection, buffered: Uint8Array) => Effect.Effect<void, never, R>
  readonly stats: Http2Stats
}

/** HTTP/2 for an engine: one node:http2 server that never listens frames every connection handed to it. */
export const make = <E, R>(limits: SessionLimits, host: Omit<Http2Stream.StreamHost<E, R>, "resetByServer">): Http2Engine<R> => {
  const stats = new Http2Stats()
  const streamHost: Http2Stream.StreamHost<E, R> = { ...host, resetByServer: () => void stats.resetsByServer++ }
  const server = NodeHttp2.createServer({
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeadBytes,
      initialWindowSize: limits.streamWindow,
      enablePush: false
    },
    maxHeaderListPairs: limits.maxHeaders + 8, // and the pseudo-header fields
    // nghttp2's own rapid-reset limit is the backstop (it answers INTERNAL_ERROR); the session's budget below says ENHANCE_YOUR_CALM first
    streamResetRate: limits.resetsPerSecond * 4,
    streamResetBurst: limits.resetsPerSecond * 120
  })
  // the session of a connection handed to the server, taken in the same (synchronous) emit
  let opened: NodeHttp2.ServerHttp2Session | undefined
  server.on("session", (session: NodeHttp2.ServerHttp2Session) => {
    opened = session
  })
  server.on("sessionError", () => {}) // the session's own 'close' ends its connection
  const open = (socket: Duplex): NodeHttp2.ServerHttp2Session | undefined => {
    server.emit("connection", socket)
    const session = opened
    opened = undefined
    return session
  }

  /** Sends GOAWAY once (counted). */
  const goaway = (session: NodeHttp2.ServerHttp2Session, code: number) => {
    if (session.closed || session.destroyed) return
    stats.goawaysSent++
    if (code === NGHTTP2_NO_ERROR) session.close() // GOAWAY; in-flight streams finish, then the socket closes
    else {
      session.goaway(code)
      session.destroy()
    }
  }

  const serve = (conn: Connection, buffered: Uint8Array): Effect.Effect<void, never, R> =>
    Effect.scoped(Effect.gen(function*() {
      const runFork = yield* FiberSet.makeRuntime<R, void, never>()
      const tls = conn.tls !== undefined
      const session = open(conn.detach(buffered))
      if (session === undefined) return
      stats.connections++
      stats.openConnections++
      let openHere = 0
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          stats.openConnections--
          if (!session.destroyed) session.destroy()
        })
      )
      try {
        session.setLocalWindowSize(limits.streamWindow * 4)
      } catch {
        // the session is already gone; its 'close' ends this connection
      }
      const budget = new RateBudget(limits.controlFramesPerSecond)
      const resets = new RateBudget(limits.resetsPerSecond, limits.resetsPerSecond * 30)
      const flood = () => {
        if (budget.take(Date.now())) return
        goaway(session, NGHTTP2_ENHANCE_YOUR_CALM)
      }
      session.on("ping", flood)
      session.on("remoteSettings", flood)
      session.on("goaway", () => void stats.goawaysReceived++)
      session.setTimeout(limits.idleTimeoutMs, () => {
        if (openHere === 0) goaway(session, NGHTTP2_NO_ERROR)
      })
      const streamClosed = function(this: NodeHttp2.ServerHttp2Stream) {
        openHere--
        stats.openStreams--
        const code = this.rstCode
        if (code === undefined || code === NGHTTP2_NO_ERROR || Http2Stream.resetHere(this)) return
        stats.resetsByClient++
        if (!resets.take(Date.now())) goaway(session, NGHTTP2_ENHANCE_YOUR_CALM) // rapid reset (CVE-2023-44487)
      }
      session.on("stream", (stream: NodeHttp2.ServerHttp2Stream, _headers: unknown, flags: number, raw: Array<string>) => {
        stats.streams++
        stats.openStreams++
        openHere++
        stream.on("error", ignore) // a reset stream errors; its fiber or its close says what happened
        stream.on("close", streamClosed)
        const job = Http2Stream.begin(streamHost, conn.remote, stream, raw, (flags & NGHTTP2_FLAG_END_STREAM) !== 0, tls)
        if (job !== undefined) runFork(job)
      })
      // the server drains: GOAWAY, in-flight streams finish (the listener interrupts what outlives drainTimeout)
      yield* Effect.forkScoped(Effect.andThen(conn.draining, Effect.sync(() => goaway(session, NGHTTP2_NO_ERROR))))
      yield* Effect.callback<void>((resume) => {
        if (session.destroyed) return resume(Effect.void)
        session.once("close", () => resume(Effect.void))
      })
    }))

  return { serve, stats }
}

const ignore = () => {}

/**
 * Per-listener counters, published as Effect metrics.
 *
 * The hot path only adds to plain numbers on one object; the metrics read
 * them when a snapshot is taken (Metric.registerUnsafe hooks), so moving a
 * chunk never touches the metric registry. Every series carries the
 * listener's service name as the `service` attribute, so two listeners (or
 * two embedded fiberd instances) never share a series.
 */
import type { Effect, Scope } from "effect"
import * as Published from "../core/Published.ts"

/** Live counters of one listener (mutable: the listener's own; others see `ListenerCounters`). */
export class ListenerStats {
  /** Connections whose socket is open (running, or lingering after the handler ended). */
  active = 0
  /** Connections accepted since start. */
  accepted = 0
  /** Connections closed without service (shutdown, or more waiting than `maxPending`). */
  refused = 0
  /** Connections that had to wait for a free slot (at `maxConnections` or during accept back-off). */
  limited = 0
  /** Connections waiting for a slot right now. */
  pending = 0
  /** Bytes read from peers. */
  bytesIn = 0
  /** Bytes written to peers. */
  bytesOut = 0
  /** Times a connection's socket was paused because its handler did not keep up reading (backpressure). */
  readPauses = 0
  /** Handlers that failed or died (interruptions are not failures). */
  handlerFailures = 0
  /** Connections closed by the idle timeout. */
  idleTimeouts = 0
  /** Connections closed because a response made no write progress for the send timeout (a peer not reading). */
  sendTimeouts = 0
  /** Errors from accept(2), such as EMFILE. */
  acceptErrors = 0
  /** TLS handshakes that failed or timed out (a plaintext client on a TLS port, a bad certificate...). */
  tlsHandshakeFailures = 0
  /** TLS handshakes in progress now (each holds a connection slot). */
  tlsHandshakesPending = 0
  /** TLS connections refused because their address had `maxHandshakesPerAddress` handshakes going. */
  tlsHandshakesRefused = 0
}

/** A listener's counters as its users see them: live, read-only (only the listener counts). */
export type ListenerCounters = Readonly<Pick<ListenerStats, "active" | "accepted" | "refused" | "limited" | "pending" | "bytesIn" | "bytesOut" | "readPauses" | "handlerFailures" | "idleTimeouts" | "sendTimeouts" | "acceptErrors" | "tlsHandshakeFailures" | "tlsHandshakesPending" | "tlsHandshakesRefused">>

/**
 * Registers the listener's metrics in the current metric registry until the
 * scope closes: `fiberd_connections_active` (gauge),
 * `fiberd_connections_accepted_total`, `fiberd_connections_refused_total`,
 * `fiberd_connections_limited_total`, `fiberd_bytes_in_total`,
 * `fiberd_bytes_out_total`, `fiberd_read_pauses_total`, `fiberd_handler_failures_total`,
 * `fiberd_idle_timeouts_total`, `fiberd_send_timeouts_total`, `fiberd_accept_errors_total`,
 * `fiberd_tls_handshake_failures_total`, `fiberd_tls_handshakes_pending` (gauge),
 * `fiberd_tls_handshakes_refused_total`.
 */
export const registerMetrics = (service: string, stats: ListenerStats): Effect.Effect<void, never, Scope.Scope> => {
  const attributes = { service }
  const counter = (name: string, description: string, get: () => number) => Published.counter(name, description, attributes, get)
  return Published.publish([
    Published.gauge("fiberd_connections_active", "open connections", attributes, () => stats.active),
    counter("fiberd_connections_accepted_total", "connections accepted", () => stats.accepted),
    counter("fiberd_connections_refused_total", "connections closed unserved", () => stats.refused),
    counter("fiberd_connections_limited_total", "connections that waited for a slot", () => stats.limited),
    counter("fiberd_bytes_in_total", "bytes read", () => stats.bytesIn),
    counter("fiberd_bytes_out_total", "bytes written", () => stats.bytesOut),
    counter("fiberd_read_pauses_total", "sockets paused because their handler fell behind reading", () => stats.readPauses),
    counter("fiberd_handler_failures_total", "handlers that failed or died", () => stats.handlerFailures),
    counter("fiberd_idle_timeouts_total", "connections closed idle", () => stats.idleTimeouts),
    counter("fiberd_send_timeouts_total", "connections closed because writes made no progress", () => stats.sendTimeouts),
    counter("fiberd_accept_errors_total", "accept errors", () => stats.acceptErrors),
    counter("fiberd_tls_handshake_failures_total", "TLS handshakes that failed or timed out", () => stats.tlsHandshakeFailures),
    Published.gauge("fiberd_tls_handshakes_pending", "TLS handshakes in progress", attributes, () => stats.tlsHandshakesPending),
    counter("fiberd_tls_handshakes_refused_total", "TLS connections refused: too many handshakes from their address", () => stats.tlsHandshakesRefused)
  ])
}

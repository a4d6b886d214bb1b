/**
 * UDP listeners: each datagram is handled in a fiber of its own, owned by the
 * listener's scope; and the extended-conversation pattern, where datagrams
 * from one peer go to a per-peer session actor that expires after idle time.
 */
import { Cause, Data, Duration, Effect, FiberSet, Queue } from "effect"
import type { Scope } from "effect"
import * as Published from "../core/Published.ts"
import * as Dgram from "node:dgram"
import type { RemoteAddress } from "./Connection.ts"

/** A received datagram. */
export interface Datagram {
  readonly data: Uint8Array
  readonly from: RemoteAddress
}

/** Handles one datagram; `reply` sends a datagram back to its sender. */
export type DatagramHandler<E = never, R = never> = (
  datagram: Datagram,
  reply: (data: Uint8Array) => Effect.Effect<void>
) => Effect.Effect<void, E, R>

/** Where to bind. */
export interface UdpOptions {
  readonly name?: string
  readonly host?: string
  readonly port?: number
  /** A bound datagram socket's descriptor handed to this process (systemd socket activation): used, nothing bound. */
  readonly inheritedFd?: number
}

/** A bound UDP listener. */
export interface UdpListener {
  readonly name: string
  readonly address: { readonly host: string; readonly port: number; readonly family: "IPv4" | "IPv6" }
  readonly stats: { received: number; sent: number; failures: number }
}

/** The socket could not be bound. */
export class UdpBindError extends Data.TaggedError("UdpBindError")<{
  readonly service: string
  readonly address: string
  readonly code: string
}> {
  override get message() {
    return `${this.service}: cannot listen: ${this.code === "EADDRINUSE" ? "address already in use, EADDRINUSE" : this.code} (udp ${this.address})`
  }
}

/** Datagram counters as Effect metrics (`service` attribute), read when a snapshot is taken. */
const registerUdpMetrics = (service: string, stats: { readonly received: number; readonly sent: number; readonly failures: number }) =>
  Published.publish([
    Published.counter("fiberd_udp_datagrams_in_total", "datagrams received", { service }, () => stats.received),
    Published.counter("fiberd_udp_datagrams_out_total", "datagrams sent", { service }, () => stats.sent),
    Published.counter("fiberd_udp_failures_total", "datagram handlers that failed or replies that could not be sent", { service }, () => stats.failures)
  ])

/**
 * Binds a UDP socket and handles every datagram in its own fiber.
 *
 * @example
 * yield* Udp.make({ name: "echo-udp", port: 7007 }, (d, reply) => reply(d.data))
 */
export const make = <E, R>(options: UdpOptions, handler: DatagramHandler<E, R>): Effect.Effect<UdpListener, UdpBindError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "udp"
    const host = options.host ?? "127.0.0.1"
    const fibers = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(fibers)<R>()
    const stats = { received: 0, sent: 0, failures: 0 }
    const socket = yield* Effect.acquireRelease(
      Effect.callback<Dgram.Socket, UdpBindError>((resume) => {
        const s = Dgram.createSocket({ type: host.includes(":") ? "udp6" : "udp4" })
        s.once("error", (error: NodeJS.ErrnoException) =>
          resume(Effect.fail(new UdpBindError({ service: name, address: `${host}:${options.port ?? 0}`, code: error.code ?? error.message }))))
        const bound = () => {
          s.removeAllListeners("error")
          s.on("error", () => {
            stats.failures++
          })
          resume(Effect.succeed(s))
        }
        if (options.inheritedFd !== undefined) s.bind({ fd: options.inheritedFd }, bound)
        else s.bind(options.port ?? 0, host, bound)
      }),
      (s) => Effect.callback<void>((resume) => {
        s.close(() => resume(Effect.void))
      })
    )
    socket.on("message", (data, info) => {
      stats.received++
      const from: RemoteAddress = { address: info.address, port: info.port, family: info.family === "IPv6" ? "IPv6" : "IPv4" }
      const reply = (out: Uint8Array) =>
        Effect.callback<void>((resume) => {
          socket.send(out, info.port, info.address, (error) => {
            if (error) stats.failures++
            else stats.sent++
            resume(Effect.void)
          })
        })
      run(handler({ data, from }, reply).pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.sync(() => stats.failures++).pipe(
            Effect.andThen(Effect.logError(`${name}: datagram handler failed`, cause))
          )
        )
      ))
    })
    const bound = socket.address()
    yield* registerUdpMetrics(name, stats)
    return { name, address: { host: bound.address, port: bound.port, family: bound.family === "IPv6" ? "IPv6" : "IPv4" }, stats }
  })

/** One peer's session: its datagrams arrive in `inbox`; it ends when idle for `idleTimeout`. */
export type SessionHandler<E = never, R = never> = (session: {
  readonly peer: RemoteAddress
  readonly inbox: Queue.Dequeue<Uint8Array, Cause.Done>
  readonly reply: (data: Uint8Array) => Effect.Effect<void>
}) => Effect.Effect<void, E, R>

/**
 * The extended-conversation pattern: one session fiber per peer address,
 * fed through its mailbox and ended (its inbox closed) after `idleTimeout`
 * without datagrams.
 *
 * @example
 * yield* Udp.sessions({ name: "sessions", port: 7100, idleTimeout: "30 seconds" }, ({ inbox, reply }) =>
 *   Effect.forever(Queue.take(inbox).pipe(Effect.flatMap(reply))))
 */
export const sessions = <E, R>(
  options: UdpOptions & { readonly idleTimeout: Duration.Input },
  session: SessionHandler<E, R>
): Effect.Effect<UdpListener & { readonly sessions: () => number }, UdpBindError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const open = new Map<string, { inbox: Queue.Queue<Uint8Array, Cause.Done>; last: number }>()
    const idle = Duration.toMillis(options.idleTimeout)
    const listener = yield* make<E, R>(options, (datagram, reply) =>
      Effect.gen(function*() {
        const key = `${datagram.from.address}:${datagram.from.port}`
        const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
        const existing = open.get(key)
        if (existing !== undefined) {
          existing.last = now
          yield* Queue.offer(existing.inbox, datagram.data)
          return
        }
        const inbox = yield* Queue.unbounded<Uint8Array, Cause.Done>()
        const entry = { inbox, last: now }
        open.set(key, entry)
        yield* Queue.offer(inbox, datagram.data)
        // this datagram's fiber becomes the session's fiber for as long as the session lives
        const expiry = Effect.gen(function*() {
          while (true) {
            yield* Effect.sleep(Duration.millis(idle))
            const t = yield* Effect.clockWith((c) => c.currentTimeMillis)
            if (t - entry.last >= idle) return yield* Queue.end(inbox)
          }
        })
        yield* Effect.raceFirst(
          session({ peer: datagram.from, inbox, reply }).pipe(Effect.catchCause((c) => Effect.logError("udp session failed", c))),
          Effect.andThen(expiry, Effect.never)
        ).pipe(Effect.ensuring(Effect.sync(() => open.delete(key))))
      }))
    return { ...listener, sessions: () => open.size }
  })

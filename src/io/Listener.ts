/**
 * The TCP / Unix-socket listener, composed of Ranch's three roles: the
 * listening socket (`ListenSocket`: bind, TLS side, hand-over on reloads),
 * admission (`Admission`: `maxConnections` slots, the waiting room,
 * handshakes per address, accept back-off) and the connection set
 * (`ConnectionSet`: a fiber per connection, its fate logged, the drain). A
 * connection over the limit waits, unread, until a slot frees; timeouts come
 * from one shared TimeoutManager; shutdown stops accepting, gives in-flight
 * handlers `drainTimeout`, then interrupts them and closes their sockets.
 */
import { Config, Context, Duration, Effect, FiberSet, Layer, Schema } from "effect"
import type { Scope } from "effect"
import type * as Net from "node:net"
import * as NodeTls from "node:tls"
import * as Options from "../core/Options.ts"
import * as Timeouts from "../core/Timeouts.ts"
import { Admission, defaultHandshakesPerAddress } from "./Admission.ts"
import type { Handler } from "./Connection.ts"
import * as ConnectionSet from "./ConnectionSet.ts"
import { type ListenerCounters, ListenerStats, registerMetrics } from "./ListenerStats.ts"
import { type HandshakeOwner, ListenError, ListenSocket, type SocketOwner } from "./ListenSocket.ts"
import * as Tls from "./Tls.ts"

export { ListenError, ListenSocket } from "./ListenSocket.ts"

const { option } = Options

/** Where a listener binds (a service table derives these from a service's `listen`). */
export const address = Options.declare({
  name: option(Schema.String, "the service name, in logs and metric attributes", "tcp"),
  host: option(Schema.String, "the interface to bind; \"::\" or \"0.0.0.0\" for public binding", "127.0.0.1"),
  port: option(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 })), "the TCP port; 0 picks a free one (read it from `Listener.address`)", 0),
  path: option(Schema.String, "listen on this Unix domain socket path instead of TCP (a stale socket file is replaced)"),
  ipv6Only: option(Schema.Boolean, "for an IPv6 host, refuse IPv4-mapped connections", false),
  reusePort: option(
    Schema.Boolean,
    "bind a socket of this process's own with SO_REUSEPORT (TCP): several processes listen on one port and the kernel spreads connections (in a node:cluster worker this bypasses the primary)",
    false
  )
})

/** How a listener serves: its limits, timeouts and TLS. A service of the table takes the same keys. */
export const limits = Options.declare({
  backlog: option(Options.PositiveInt, "the kernel's accept queue length", 511),
  maxConnections: option(
    Options.PositiveInt,
    "connections served at once; more wait, unread, for a free slot (a TLS connection holds its slot from accept, through its handshake)",
    10_000
  ),
  maxPending: option(Options.NonNegativeInt, "connections that may wait for a slot; beyond that they are refused, counted and logged (default: `backlog`)"),
  idleTimeout: option(Options.Duration, "no bytes either way for this long: the handler is interrupted and the socket closed", "5 minutes"),
  sendTimeout: option(
    Options.Duration,
    "a write that makes no progress (the peer does not read) this long closes the connection (nginx's send_timeout)",
    "60 seconds"
  ),
  drainTimeout: option(Options.Duration, "on shutdown, how long in-flight handlers may finish before they are interrupted", "10 seconds"),
  lingerTimeout: option(Options.Duration, "after a handler ends, how long late input is discarded waiting for the peer's FIN", "2 seconds"),
  lingerBytes: option(Options.NonNegativeInt, "after a handler ends, how many bytes of late input are discarded at most; a peer that sends more is reset", 262_144),
  chunksPerTurn: option(
    Options.PositiveInt,
    "input chunks the connections' push consumers (HTTP, WebSocket) take per event-loop turn; the rest wait their turn while the loop goes round (accepts, timers): fairness under load",
    128
  ),
  acceptBackoff: option(
    Schema.Struct({ initial: Options.Duration, max: Options.Duration }),
    "the first and longest pause (doubling) of accepting after an accept error such as EMFILE",
    { initial: "10 millis", max: "1 second" }
  ),
  tls: option(Tls.options.schema, "serve over TLS (see the `tls` keys)")
})

/** What a listener is given that is not configuration: callbacks and a shared socket. */
export interface ListenHooks {
  /**
   * Receives the underlying `net.Server` once it listens. For tests that inject accept errors
   * (libuv absorbs most EMFILE conditions itself, so they are hard to cause for real).
   */
  readonly onServer?: (server: Net.Server) => void
  /**
   * Runs when shutdown begins, right after accepting stops and before the drain
   * wait: a protocol uses it to finish idle connections at once (HTTP closes its
   * idle keep-alive connections).
   */
  readonly onDrain?: Effect.Effect<void>
  /**
   * A listening socket shared across reloads (see `ListenSocket`): if it is
   * bound, this listener takes it over instead of binding; when this listener
   * stops while a successor owns the socket, it drains without closing it.
   */
  readonly socket?: ListenSocket
  /**
   * A listening socket's descriptor this process was handed (systemd socket activation): it is
   * listened on instead of binding `host`/`port` or `path`.
   */
  readonly inheritedFd?: number
}

/** Where and how to listen: `address` and `limits` (every key has a default or may be left out), and the hooks. */
export type ListenOptions = typeof address.schema.Type & typeof limits.schema.Type & ListenHooks

/** The address a listener is bound to. */
export type BoundAddress =
  | { readonly _tag: "tcp"; readonly host: string; readonly port: number; readonly family: "IPv4" | "IPv6" }
  | { readonly _tag: "unix"; readonly path: string }

/** Formats a bound address as `host:port`, `[v6]:port` or the socket path. */
export const formatAddress = (address: BoundAddress): string =>
  address._tag === "unix"
    ? address.path
    : address.family === "IPv6"
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`

/** A running listener. */
export interface Listener {
  readonly name: string
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: BoundAddress
  /** Live counters, read-only (also published as metrics). */
  readonly stats: ListenerCounters
  /**
   * Reads the TLS certificates again and uses them for new connections (open
   * ones keep theirs; session tickets stay valid). On failure the old ones
   * stay. A no-op without TLS.
   */
  readonly reloadTls: Effect.Effect<void, Tls.TlsConfigError>
  /** The `n` connections open longest, with their peer and age in seconds. */
  readonly oldest: (n: number) => ReadonlyArray<ConnectionSet.OldConnection>
}

const acceptErrorCodes = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "ECONNABORTED", "EPROTO", "EPERM"])

const boundAddress = (bound: Net.AddressInfo | string | null, path: string | undefined): BoundAddress =>
  path !== undefined || bound === null || typeof bound === "string"
    ? { _tag: "unix", path: path ?? String(bound) }
    : { _tag: "tcp", host: bound.address, port: bound.port, family: bound.family === "IPv6" ? "IPv6" : "IPv4" }

/**
 * Binds and starts accepting; every connection runs `handler` in its own
 * fiber. Closing the scope drains (see `ListenOptions.drainTimeout`).
 *
 * @example
 * const listener = yield* Listener.make({ name: "echo", port: 7007 }, Echo.handler)
 * yield* Effect.log(`listening on ${Listener.formatAddress(listener.address)}`)
 */
export const make = <E, R>(
  options: ListenOptions,
  handler: Handler<E, R>
): Effect.Effect<Listener, ListenError, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    const where = address.resolve(options)
    const how = limits.resolve(options)
    const name = where.name
    const maxConnections = how.maxConnections
    const idleTimeout = Options.toDuration(how.idleTimeout)
    const lingerTimeout = Options.toDuration(how.lingerTimeout)
    const sendTimeout = Options.toDuration(how.sendTimeout)
    const drainTimeout = Options.toDuration(how.drainTimeout)
    const display = where.path ?? `${where.host}:${where.port}`
    const tlsOptions = how.tls
    const contexts = tlsOptions === undefined ? undefined : yield* Tls.load(tlsOptions).pipe(
      Effect.mapError((e) => new ListenError({ service: name, address: e.file, code: "TLS", reason: e.reason }))
    )
    const stats = new ListenerStats()
    const admission = new Admission<Net.Socket>({
      maxConnections,
      maxPending: how.maxPending ?? how.backlog,
      maxHandshakesPerAddress: tlsOptions?.maxHandshakesPerAddress ?? defaultHandshakesPerAddress(maxConnections)
    })
    const finiteOr = (d: Duration.Duration) => (Duration.isFinite(d) ? d : Duration.seconds(1))
    const timeouts = yield* Timeouts.make(
      Timeouts.resolutionFor(Duration.min(Duration.min(finiteOr(idleTimeout), finiteOr(sendTimeout)), lingerTimeout))
    )
    // short background work started from socket callbacks (logs, back-off timers), interrupted after the shutdown
    const background = yield* FiberSet.make<void, never>()
    const runBackground = yield* FiberSet.runtime(background)<never>()
    const report = (effect: Effect.Effect<void>) => {
      runBackground(effect.pipe(Effect.annotateLogs({ service: name })))
    }

    // the connection set: a fiber per admitted connection; a closed one frees its slot
    const connections = ConnectionSet.make({
      name,
      handler,
      context: (yield* Effect.context<Exclude<R, Scope.Scope>>()) as Context.Context<R>,
      stats,
      timeouts,
      idleMillis: Duration.toMillis(idleTimeout),
      sendMillis: Duration.toMillis(sendTimeout),
      lingerMillis: Duration.toMillis(lingerTimeout),
      lingerBytes: how.lingerBytes,
      chunksPerTurn: how.chunksPerTurn,
      path: where.path,
      report,
      onClosed: () => releaseSlot()
    })

    // admission: who starts, who waits, who is refused
    const ignoreError = () => {}
    /** Starts the connections admission lets in (each holds its slot); a socket that died while waiting frees it again. */
    const startAdmitted = (sockets: ReadonlyArray<Net.Socket>) => {
      for (const socket of sockets) {
        stats.pending--
        socket.removeListener("error", ignoreError)
        if (socket.destroyed) releaseSlot()
        else start(socket)
      }
    }
    const releaseSlot = () => startAdmitted(admission.release())

    // TLS: an admitted TCP socket holds its slot through its handshake, at most maxHandshakesPerAddress per address
    const handshakes = new Set<Net.Socket>()
    const handshakeOver = (raw: Net.Socket) => {
      ListenSocket.handshakeOver(raw)
      handshakes.delete(raw)
      admission.endHandshake(raw.remoteAddress ?? "")
      stats.tlsHandshakesPending = admission.handshakesPending
    }
    const handshakeOwner: HandshakeOwner = {
      secure: (raw, socket) => {
        handshakeOver(raw)
        if (!admission.isClosed) {
          socket.pause() // like a plain socket, unread until its handler reads
          socket.allowHalfOpen = true // from now on a FIN from the peer ends its side only
          return connections.start(socket)
        }
        releaseSlot()
        // began before a reload: the successor serves it (taking a slot of its own); at shutdown it is closed
        if (shared.isOwnedBy(socketOwner) || !shared.forward(socket)) socket.destroy()
      },
      failed: (_raw, error) => {
        stats.tlsHandshakeFailures++
        report(Effect.logDebug(`TLS handshake failed: ${(error as NodeJS.ErrnoException).code ?? error.message}`))
      },
      closed: (raw) => {
        handshakeOver(raw)
        releaseSlot()
      }
    }
    const startHandshake = (raw: Net.Socket) => {
      if (!admission.beginHandshake(raw.remoteAddress ?? "")) {
        stats.refused++
        stats.tlsHandshakesRefused++
        raw.destroy()
        return releaseSlot()
      }
      stats.tlsHandshakesPending = admission.handshakesPending
      handshakes.add(raw)
      shared.beginHandshake(raw, handshakeOwner)
    }
    const start = (socket: Net.Socket) =>
      tlsOptions === undefined || socket instanceof NodeTls.TLSSocket ? connections.start(socket) : startHandshake(socket)

    // accept back-off: after an accept error (EMFILE) nobody starts for a while, doubling
    let backoffMillis = 0
    let errorsSinceLog = 0
    const onAcceptError = (error: NodeJS.ErrnoException) => {
      stats.acceptErrors++
      errorsSinceLog++
      if (admission.isBackingOff) return
      if (!acceptErrorCodes.has(error.code ?? "")) report(Effect.logError(`accept failed: ${error.message}`))
      backoffMillis = backoffMillis === 0 ? Options.millis(how.acceptBackoff.initial) : Math.min(Options.millis(how.acceptBackoff.max), backoffMillis * 2)
      admission.setBackingOff(true)
      const count = errorsSinceLog
      errorsSinceLog = 0
      report(
        Effect.logWarning(`accept failed (${error.code ?? error.message}); pausing accepts for ${backoffMillis} ms`, { errors: count }).pipe(
          Effect.andThen(Effect.sleep(Duration.millis(backoffMillis))),
          Effect.andThen(Effect.sync(() => startAdmitted(admission.setBackingOff(false))))
        )
      )
    }

    const onConnection = (socket: Net.Socket) => {
      if (backoffMillis > 0 && !admission.isBackingOff) backoffMillis = 0
      const arrival = admission.arrive(socket)
      if (arrival === "refuse-closing") {
        stats.refused++
        return socket.destroy()
      }
      stats.accepted++
      if (arrival === "start") return start(socket)
      if (arrival === "wait") {
        stats.limited++
        stats.pending++
        socket.on("error", ignoreError)
        return
      }
      stats.refused++
      socket.destroy()
      report(Effect.logWarning(`refused a connection: ${admission.waiting} already wait for a slot`))
    }

    // the listening socket: bound here, or taken over from a predecessor (a reload)
    const shared = options.socket ?? new ListenSocket()
    const socketOwner: SocketOwner = { onConnection, onError: onAcceptError }
    const adopt = shared.listening
    if (adopt && shared.isTls !== (contexts !== undefined)) {
      return yield* new ListenError({ service: name, address: display, code: "ETLSSWITCH", reason: "switching TLS on or off needs a restart" })
    }
    yield* Effect.acquireRelease(
      adopt
        ? Effect.sync(() => shared.takeOver(socketOwner, contexts))
        : shared.bind({ ...where, backlog: how.backlog, ...(options.inheritedFd !== undefined ? { fd: options.inheritedFd } : {}) }, socketOwner, contexts === undefined ? undefined : new Tls.TlsServer(tlsOptions!, contexts), options.onServer),
      () =>
        Effect.gen(function*() {
          // the owner stops accepting now; a listener whose successor took the socket over only drains
          const closed = shared.release(socketOwner)
          for (const socket of admission.close()) {
            stats.refused++
            stats.pending--
            socket.destroy()
          }
          connections.beginDrain()
          if (options.onDrain !== undefined) yield* options.onDrain
          yield* connections.finish(drainTimeout)
          // a handshake still in progress would hold the socket's close until the handshake timeout
          for (const raw of [...handshakes]) raw.destroy()
          yield* closed
        })
    )
    yield* registerMetrics(name, stats)
    const reloadTls = tlsOptions === undefined ? Effect.void : Tls.load(tlsOptions).pipe(Effect.map((fresh) => shared.replaceCertificates(fresh)))
    return { name, address: boundAddress(shared.address, where.path), stats, reloadTls, oldest: connections.oldest }
  })

/** The service a listener layer provides: the running listener (its bound address, its stats); `HttpServer.Running` is its HTTP twin. */
export class Running extends Context.Service<Running, Listener>()("fiberd/Listener") {}

/** @deprecated the old name of `Running`. */
export const BoundListener = Running
/** @deprecated the old name of `Running`. */
export type BoundListener = Running

/**
 * A listener as a Layer: binds when built, drains when released. Provide it
 * under your own tag (`layerAs`) to run several in one application.
 *
 * @example
 * const EchoLive = Listener.layer({ name: "echo", port: 7007 }, Echo.handler)
 */
export const layer = <E, R>(options: ListenOptions, handler: Handler<E, R>): Layer.Layer<Running, ListenError, Exclude<R, Scope.Scope>> =>
  Layer.effect(Running, make(options, handler))

/** `layer`, provided under a tag of your own (one per listener in an application with several). */
export const layerAs = <I>(tag: Context.Key<I, Listener>) =>
<E, R>(options: ListenOptions, handler: Handler<E, R>): Layer.Layer<I, ListenError, Exclude<R, Scope.Scope>> =>
  Layer.effect(tag, make(options, handler))

/** Every listener option (where and how), as Config reads it. */
export const configurable = Schema.Struct({ ...address.schema.fields, ...limits.schema.fields })

/**
 * Every listener option from Effect's Config, under `prefix` when given, keys in CONSTANT_CASE:
 * `HOST` and `PORT`, `MAX_CONNECTIONS`, `IDLE_TIMEOUT`, `TLS_CERT`... (e.g. `ECHO_PORT` under `ECHO`).
 */
export const config = (prefix?: string): Effect.Effect<typeof configurable.Type, Config.ConfigError> => Options.fromConfig(configurable, prefix)

/** `layer` with every option read from Config (see `config`) over the ones given. */
export const layerConfig = <E, R>(
  options: ListenOptions & { readonly prefix?: string },
  handler: Handler<E, R>
): Layer.Layer<Running, ListenError | Config.ConfigError, Exclude<R, Scope.Scope>> =>
  Layer.effect(Running, Effect.flatMap(config(options.prefix), (read) => make({ ...options, ...read }, handler)))

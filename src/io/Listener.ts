/**
 * The TCP / Unix-socket listener: accepts, wraps each socket as a
 * `NodeConnection` and runs the protocol handler in a fiber of its own.
 *
 * It owns every connection fiber for as long as its scope is open, and
 * enforces the limits: `maxConnections` (a connection over the limit waits,
 * unread, until a slot frees), the idle timeout (through one shared
 * TimeoutManager), back-off on accept errors such as EMFILE, and drain on
 * shutdown (stop accepting, give in-flight handlers `drainTimeout`, then
 * interrupt them and close their sockets). A failing handler is logged and
 * its socket destroyed; nothing else is touched.
 */
import { Cause, Config, Context, Data, Duration, Effect, Exit, Fiber, FiberSet, Layer, Option, Schema } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import { Admission, defaultHandshakesPerAddress } from "./Admission.ts"
import { DrainSignal, type Handler, isConnectionError } from "./Connection.ts"
import { type ListenerCounters, ListenerStats, registerMetrics } from "./ListenerStats.ts"
import { type ConnectionOwner, NodeConnection, remoteOf } from "./NodeConnection.ts"
import * as Timeouts from "../core/Timeouts.ts"
import * as Tls from "./Tls.ts"
import * as Options from "../core/Options.ts"

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
}

/** Where and how to listen: `address` and `limits` (every key has a default or may be left out), and the hooks. */
export type ListenOptions = typeof address.schema.Type & typeof limits.schema.Type & ListenHooks

/**
 * A listening socket that can outlive one listener: when a service is
 * reloaded with a new configuration, the new listener adopts the socket of
 * the old one (no new bind, no refused connection) and the old one only
 * drains the connections it already has (nginx's reload). Pass the same
 * `ListenSocket` to both; whoever took it last owns it, and the owner closes
 * it when it stops.
 */
export class ListenSocket {
  /** The bound server, while some listener owns it. */
  server: Net.Server | undefined = undefined
  /** The listener accepting now (an opaque token). */
  owner: object | undefined = undefined
  /** Where accepted connections (TCP sockets, or TLS sockets whose handshake a predecessor began) and accept errors go: the owner's handlers. */
  onConnection: ((socket: Net.Socket) => void) | undefined = undefined
  onError: ((error: NodeJS.ErrnoException) => void) | undefined = undefined
  /** The TLS side, when it serves TLS: accepted sockets are handed to it for their handshake (a successor replaces its certificates). */
  tls: Tls.TlsServer | undefined = undefined
}

/** The listener that began a TLS handshake on a TCP socket, and what it does when the handshake ends. */
interface HandshakeOwner {
  secure(raw: Net.Socket, socket: NodeTls.TLSSocket): void
  failed(raw: Net.Socket, error: Error): void
  closed(raw: Net.Socket): void
}
const kHandshake = Symbol.for("fiberd/handshake")
type HandshakingSocket = Net.Socket & { [kHandshake]?: HandshakeOwner | undefined }
/** The TCP socket under a TLS socket (node:tls keeps it as `_parent`). */
const rawOf = (socket: NodeTls.TLSSocket): HandshakingSocket | undefined => (socket as unknown as { _parent?: HandshakingSocket })._parent
function onHandshakeSocketClose(this: HandshakingSocket) {
  this[kHandshake]?.closed(this)
}

/**
 * Routes the TLS server's handshake results to the listener that began each
 * handshake (installed once per TLS server).
 */
const routeHandshakes = (tls: Tls.TlsServer): void => {
  tls.server.on("secureConnection", (socket: NodeTls.TLSSocket) => {
    const raw = rawOf(socket)
    const owner = raw?.[kHandshake]
    if (owner === undefined) socket.destroy()
    else owner.secure(raw!, socket)
  })
  tls.server.on("tlsClientError", (error: Error, socket: NodeTls.TLSSocket) => {
    const raw = rawOf(socket)
    raw?.[kHandshake]?.failed(raw, error)
  })
}

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
}

/** The listener could not bind (address in use, permission denied, bad address...). */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly service: string
  readonly address: string
  readonly code: string
  readonly reason: string
}> {
  override get message() {
    return `${this.service}: cannot listen: ${this.reason} (${this.address})`
  }
}

const acceptErrorCodes = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "ECONNABORTED", "EPROTO", "EPERM"])

const describeListenError = (code: string | undefined, fallback: string): string => {
  switch (code) {
    case "EADDRINUSE":
      return "address already in use, EADDRINUSE"
    case "EACCES":
      return "permission denied, EACCES"
    case "EADDRNOTAVAIL":
      return "address not available on this machine, EADDRNOTAVAIL"
    default:
      return code === undefined ? fallback : `${fallback}, ${code}`
  }
}

const bind = (server: Net.Server, options: Net.ListenOptions): Promise<void> =>
  new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.removeListener("listening", onListening)
      reject(error)
    }
    const onListening = () => {
      server.removeListener("error", onError)
      resolve()
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(options)
  })

/** True when nothing answers on the Unix socket at `path` (a leftover of a dead process). */
const isStaleSocket = (path: string): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = Net.connect({ path })
    probe.once("connect", () => {
      probe.destroy()
      resolve(false)
    })
    probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
  })

const listen = (server: Net.Server, where: typeof address.schema.Type & { readonly name: string; readonly host: string; readonly port: number }, backlog: number, display: string) =>
  Effect.tryPromise({
    try: async () => {
      const path = where.path
      if (path !== undefined) {
        try {
          await bind(server, { path, backlog })
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || !(await isStaleSocket(path))) {
            throw error
          }
          await Fs.promises.unlink(path)
          await bind(server, { path, backlog })
        }
      } else {
        await bind(server, {
          host: where.host,
          port: where.port,
          backlog,
          ipv6Only: where.ipv6Only === true,
          ...(where.reusePort === true ? { reusePort: true, exclusive: true } : {})
        })
      }
    },
    catch: (error) => {
      const e = error as NodeJS.ErrnoException
      return new ListenError({
        service: where.name,
        address: display,
        code: e.code ?? "EUNKNOWN",
        reason: describeListenError(e.code, e.message)
      })
    }
  })

const boundAddress = (server: Net.Server, path: string | undefined): BoundAddress => {
  const address = server.address()
  if (path !== undefined || address === null || typeof address === "string") {
    return { _tag: "unix", path: path ?? String(address) }
  }
  return { _tag: "tcp", host: address.address, port: address.port, family: address.family === "IPv6" ? "IPv6" : "IPv4" }
}

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
    const maxPending = how.maxPending ?? how.backlog
    const idleTimeout = Options.toDuration(how.idleTimeout)
    const lingerTimeout = Options.toDuration(how.lingerTimeout)
    const sendTimeout = Options.toDuration(how.sendTimeout)
    const drainTimeout = Options.toDuration(how.drainTimeout)
    const backoffInitial = Options.millis(how.acceptBackoff.initial)
    const backoffMax = Options.millis(how.acceptBackoff.max)
    const idleMillis = Duration.toMillis(idleTimeout)
    const lingerMillis = Duration.toMillis(lingerTimeout)
    const lingerBytes = how.lingerBytes
    const display = where.path ?? `${where.host}:${where.port}`
    const tlsOptions = how.tls
    const contexts = tlsOptions === undefined ? undefined : yield* Tls.load(tlsOptions).pipe(
      Effect.mapError((e) => new ListenError({ service: name, address: e.file, code: "TLS", reason: e.reason }))
    )

    const stats = new ListenerStats()
    const drain = new DrainSignal()
    const admission = new Admission<Net.Socket>({
      maxConnections,
      maxPending,
      maxHandshakesPerAddress: how.tls?.maxHandshakesPerAddress ?? defaultHandshakesPerAddress(maxConnections)
    })
    const finiteOr = (d: Duration.Duration) => (Duration.isFinite(d) ? d : Duration.seconds(1))
    const timeouts = yield* Timeouts.make(
      Timeouts.resolutionFor(Duration.min(Duration.min(finiteOr(idleTimeout), finiteOr(sendTimeout)), lingerTimeout))
    )
    const context = (yield* Effect.context<Exclude<R, Scope.Scope>>()) as Context.Context<Exclude<R, Scope.Scope>>
    const runFork = Effect.runForkWith(context)
    let running = 0 // handler fibers still running
    const open = new Set<NodeConnection>()
    /** TCP sockets of this listener in their TLS handshake. */
    const handshakes = new Set<Net.Socket>()
    let nextId = 1
    let closing = false
    let backoffMillis = 0
    let backingOff = false
    let errorsSinceLog = 0
    let onHandlersDone: (() => void) | undefined

    // Short background work started from socket callbacks (logs, back-off timers) lives in this set,
    // which the scope interrupts after the shutdown below has run.
    const background = yield* FiberSet.make<void, never>()
    const runBackground = yield* FiberSet.runtime(background)<never>()
    const report = (effect: Effect.Effect<void>) => {
      runBackground(effect.pipe(Effect.annotateLogs({ service: name })))
    }

    // each handler runs in a Scope of its own that closes with the connection (its finalizers run then)
    const connectionEffect = (conn: NodeConnection): Effect.Effect<void, unknown, Exclude<R, Scope.Scope>> => {
      let effect: Effect.Effect<void, unknown, R>
      try {
        effect = handler(conn)
      } catch (defect) {
        effect = Effect.die(defect)
      }
      return Effect.scoped(effect)
    }

    /** How a handler ended (from its fiber's observer: no closures kept per connection while it runs). */
    const ended = (conn: NodeConnection, exit: Exit.Exit<void, unknown>): void => {
      if (Exit.isSuccess(exit)) return conn.closeGracefully()
      conn.abort()
      const cause = exit.cause
      if (Cause.hasInterruptsOnly(cause)) return
      const error = Cause.findErrorOption(cause)
      if (Option.isSome(error) && isConnectionError(error.value) && !Cause.hasDies(cause)) {
        // The peer went away or stalled: an event of the network, not a bug of the handler.
        return report(Effect.logDebug(`connection ${conn.id} ended: ${error.value.message}`))
      }
      stats.handlerFailures++
      report(Effect.logError("connection handler failed", cause).pipe(
        Effect.annotateLogs({
          service: name,
          connection: conn.id,
          peer: conn.remote.family === "unix" ? conn.remote.address : `${conn.remote.address}:${conn.remote.port}`
        })
      ))
    }

    /** Starts the connections admission lets in (each holds its slot already); a socket that died while waiting frees its slot again. */
    const startAdmitted = (sockets: ReadonlyArray<Net.Socket>) => {
      for (const socket of sockets) {
        stats.pending--
        socket.removeListener("error", ignoreError)
        if (socket.destroyed) releaseSlot()
        else start(socket)
      }
    }
    const releaseSlot = () => startAdmitted(admission.release())

    const owner: ConnectionOwner = {
      onIdle: (conn) => {
        stats.idleTimeouts++
        conn.fiber?.interruptUnsafe()
        conn.destroy()
      },
      onClosed: (conn) => {
        // the socket is gone (reset, or closed both ways): a handler still running has nobody to talk to
        conn.fiber?.interruptUnsafe()
        stats.active--
        open.delete(conn)
        releaseSlot()
      }
    }

    /** Runs the handler on a connection that holds a slot (a TCP socket, or a TLS socket after its handshake). */
    const startConnection = (socket: Net.Socket) => {
      const conn = new NodeConnection({
        id: nextId++,
        socket,
        remote: remoteOf(socket, where.path),
        counters: stats,
        timeouts,
        owner,
        idleTimeoutMillis: idleMillis,
        lingerMillis,
        lingerBytes,
        drain,
        sendTimeoutMillis: Duration.toMillis(sendTimeout)
      })
      stats.active++
      open.add(conn)
      const fiber = runFork(connectionEffect(conn))
      const done = fiber.pollUnsafe()
      if (done !== undefined) return ended(conn, done)
      conn.fiber = fiber
      running++
      fiber.addObserver((exit) => {
        conn.fiber = undefined
        running--
        ended(conn, exit)
        if (running === 0 && onHandlersDone !== undefined) onHandlersDone()
      })
    }

    /** The end of a handshake this listener began (done, failed or closed): its address count goes down. */
    const handshakeOver = (raw: HandshakingSocket) => {
      raw[kHandshake] = undefined
      handshakes.delete(raw)
      admission.endHandshake(raw.remoteAddress ?? "")
      stats.tlsHandshakesPending = admission.handshakesPending
    }
    const handshakeOwner: HandshakeOwner = {
      secure: (raw, socket) => {
        handshakeOver(raw)
        if (!closing) {
          socket.pause() // like a plain socket, unread until its handler reads
          socket.allowHalfOpen = true // from now on a FIN from the peer ends its side only
          return startConnection(socket)
        }
        releaseSlot()
        // began before a reload: the successor serves it (taking a slot of its own); at shutdown it is closed
        if (shared.owner !== token && shared.onConnection !== undefined) shared.onConnection(socket)
        else socket.destroy()
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

    /** A TCP socket of a TLS listener, holding its slot: its handshake begins, unless its address has too many going. */
    const startHandshake = (raw: HandshakingSocket) => {
      if (!admission.beginHandshake(raw.remoteAddress ?? "")) {
        stats.refused++
        stats.tlsHandshakesRefused++
        raw.destroy()
        return releaseSlot()
      }
      stats.tlsHandshakesPending = admission.handshakesPending
      raw[kHandshake] = handshakeOwner
      handshakes.add(raw)
      raw.once("close", onHandshakeSocketClose)
      // during the handshake a peer that sends FIN is gone: close at once rather than at the handshake timeout
      raw.allowHalfOpen = false
      shared.tls!.server.emit("connection", raw)
    }

    const start = (socket: Net.Socket) =>
      tlsOptions === undefined || socket instanceof NodeTls.TLSSocket ? startConnection(socket) : startHandshake(socket)

    const ignoreError = () => {}

    const onConnection = (socket: Net.Socket) => {
      const arrival = admission.arrive(socket)
      if (arrival === "refuse-closing") {
        stats.refused++
        socket.destroy()
        return
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

    const endBackoff = () => startAdmitted(admission.setBackingOff(false))

    const onAcceptError = (error: NodeJS.ErrnoException) => {
      stats.acceptErrors++
      errorsSinceLog++
      if (backingOff) return
      if (!acceptErrorCodes.has(error.code ?? "")) {
        report(Effect.logError(`accept failed: ${error.message}`))
      }
      backoffMillis = backoffMillis === 0 ? backoffInitial : Math.min(backoffMax, backoffMillis * 2)
      backingOff = true
      admission.setBackingOff(true)
      const count = errorsSinceLog
      errorsSinceLog = 0
      report(
        Effect.logWarning(`accept failed (${error.code ?? error.message}); pausing accepts for ${backoffMillis} ms`, {
          errors: count
        }).pipe(Effect.andThen(Effect.sleep(Duration.millis(backoffMillis))), Effect.andThen(Effect.sync(() => {
          backingOff = false
          endBackoff()
        })))
      )
    }

    const shared = options.socket ?? new ListenSocket()
    const token = {}
    const accept = (socket: Net.Socket) => {
      if (backoffMillis > 0 && !backingOff) backoffMillis = 0
      onConnection(socket)
    }
    const takeOver = Effect.sync(() => {
      shared.owner = token
      shared.onConnection = accept
      shared.onError = onAcceptError
      if (contexts !== undefined) shared.tls?.replace(contexts)
    })
    const adopt = shared.server !== undefined && shared.server.listening
    if (adopt && (shared.tls !== undefined) !== (contexts !== undefined)) {
      return yield* new ListenError({ service: name, address: display, code: "ETLSSWITCH", reason: "switching TLS on or off needs a restart" })
    }
    const tlsServer = adopt || contexts === undefined ? undefined : new Tls.TlsServer(tlsOptions!, contexts)
    if (tlsServer !== undefined) routeHandshakes(tlsServer)
    // the TCP server accepts (paused) and dispatches to whichever listener owns the socket now; TLS
    // handshakes begin only once admitted
    const server = adopt ? shared.server! : Net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true })
    if (!adopt) {
      server.on("connection", (socket: Net.Socket) => {
        if (shared.onConnection !== undefined) shared.onConnection(socket)
        else socket.destroy()
      })
    }

    yield* Effect.acquireRelease(
      (adopt ? takeOver : listen(server, where, how.backlog, display).pipe(
        Effect.andThen(Effect.sync(() => {
          shared.server = server
          shared.tls = tlsServer
          server.on("error", (error: NodeJS.ErrnoException) => shared.onError?.(error))
          options.onServer?.(server)
        })),
        Effect.andThen(takeOver)
      )),
      () => shutdown
    )
    yield* registerMetrics(name, stats)

    const shutdown = Effect.gen(function*() {
      closing = true
      // the owner closes the socket; a listener whose successor took it over only drains
      const owner = shared.owner === token
      // server.close's callback runs once every connection of the server is gone (they are destroyed below)
      let serverClosed = !owner
      let onServerClosed: (() => void) | undefined
      if (owner) {
        server.close(() => {
          serverClosed = true
          onServerClosed?.()
        })
        shared.server = undefined
        shared.owner = undefined
        shared.onConnection = undefined
        shared.onError = undefined
        shared.tls = undefined
      }
      for (const socket of admission.close()) {
        stats.refused++
        stats.pending--
        socket.destroy()
      }
      // tell the protocols: idle readers (readIdle) end now, `draining` completes
      drain.start()
      for (const conn of open) conn.onDrainStart()
      if (options.onDrain !== undefined) yield* options.onDrain
      if (running > 0) {
        yield* Effect.logInfo(`stopped accepting; draining ${running} connection(s) for up to ${Duration.format(drainTimeout)}`).pipe(
          Effect.annotateLogs({ service: name })
        )
        yield* Effect.callback<void>((resume) => {
          onHandlersDone = () => resume(Effect.void)
        }).pipe(Effect.timeoutOption(drainTimeout))
      }
      const remaining = [...open].flatMap((conn) => (conn.fiber === undefined ? [] : [conn.fiber]))
      if (remaining.length > 0) {
        yield* Effect.logWarning(`drain timeout: interrupting ${remaining.length} connection(s)`).pipe(
          Effect.annotateLogs({ service: name })
        )
        yield* Fiber.interruptAll(remaining)
      }
      for (const conn of [...open]) conn.destroy()
      // a handshake still in progress would hold server.close until the handshake timeout
      for (const raw of [...handshakes]) raw.destroy()
      if (!serverClosed) {
        yield* Effect.callback<void>((resume) => {
          if (serverClosed) return resume(Effect.void)
          onServerClosed = () => resume(Effect.void)
        })
      }
    })

    const reloadTls = tlsOptions === undefined
      ? Effect.void
      : Tls.load(tlsOptions).pipe(Effect.map((fresh) => shared.tls?.replace(fresh)))
    return { name, address: boundAddress(server, where.path), stats, reloadTls }
  })

/** The service a listener layer provides: the running listener (its bound address, its stats). */
export class BoundListener extends Context.Service<BoundListener, Listener>()("fiberd/Listener") {}

/**
 * A listener as a Layer: binds when built, drains when released. Provide it
 * under your own tag (`layerAs`) to run several in one application.
 *
 * @example
 * const EchoLive = Listener.layer({ name: "echo", port: 7007 }, Echo.handler)
 */
export const layer = <E, R>(options: ListenOptions, handler: Handler<E, R>): Layer.Layer<BoundListener, ListenError, Exclude<R, Scope.Scope>> =>
  Layer.effect(BoundListener, make(options, handler))

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
): Layer.Layer<BoundListener, ListenError | Config.ConfigError, Exclude<R, Scope.Scope>> =>
  Layer.effect(BoundListener, Effect.flatMap(config(options.prefix), (read) => make({ ...options, ...read }, handler)))

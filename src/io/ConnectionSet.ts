/**
 * The connection set, one of a listener's three roles (Ranch's connection
 * supervisor): it runs each admitted socket's handler in a fiber of its own,
 * in a Scope of its own, as a `NodeConnection`; it knows which connections
 * are open and which handlers still run; it logs how each ended (a failing
 * handler is logged and its socket destroyed, a network event only at debug
 * level); and it drains them on shutdown (signal, wait up to the drain time,
 * interrupt what is left, close every socket).
 */
import { Cause, Duration, Effect, Exit, Fiber, Option } from "effect"
import type { Context } from "effect"
import type * as Net from "node:net"
import type { TimeoutManager } from "../core/Timeouts.ts"
import { DrainSignal, type Handler, isConnectionError } from "./Connection.ts"
import type { ListenerStats } from "./ListenerStats.ts"
import { type ConnectionOwner, NodeConnection, remoteOf } from "./NodeConnection.ts"
import { TurnBudget } from "./TurnBudget.ts"

/** What the set needs of its listener. */
export interface ConnectionSetOptions<E, R> {
  readonly name: string
  readonly handler: Handler<E, R>
  /** The services the handlers run with. */
  readonly context: Context.Context<R>
  readonly stats: ListenerStats
  readonly timeouts: TimeoutManager
  readonly idleMillis: number
  readonly sendMillis: number
  readonly lingerMillis: number
  readonly lingerBytes: number
  readonly chunksPerTurn: number
  /** The Unix socket path the listener binds, if any (peers are then described by it). */
  readonly path: string | undefined
  /** Runs short background work (logging) owned by the listener. */
  readonly report: (effect: Effect.Effect<void>) => void
  /** A connection's socket closed: its slot is free. */
  readonly onClosed: () => void
}

/** A listener's connections. */
export interface ConnectionSet {
  /** Runs the handler on a socket that holds a slot (a TCP socket, or a TLS socket after its handshake). */
  readonly start: (socket: Net.Socket) => void
  /** Drain begins: idle readers end now, the handlers see the signal. */
  readonly beginDrain: () => void
  /** The `n` connections open longest (a Set keeps insertion order: the first are the oldest), with their age. */
  readonly oldest: (n: number) => ReadonlyArray<OldConnection>
  /** Waits up to `drainTimeout` for the handlers, interrupts what is left, closes every socket. */
  readonly finish: (drainTimeout: Duration.Duration) => Effect.Effect<void>
}

/** An open connection and how long it has been open. */
export interface OldConnection {
  readonly peer: string
  readonly seconds: number
}

/** A listener's connection set. */
export const make = <E, R>(options: ConnectionSetOptions<E, R>): ConnectionSet => {
  const { name, stats } = options
  const runFork = Effect.runForkWith(options.context)
  const drain = new DrainSignal()
  const open = new Set<NodeConnection>()
  let running = 0
  let nextId = 1
  const budget = new TurnBudget(options.chunksPerTurn)
  let onHandlersDone: (() => void) | undefined

  // each handler runs in a Scope of its own that closes with the connection (its finalizers run then)
  const connectionEffect = (conn: NodeConnection): Effect.Effect<void, unknown, R> => {
    let effect: Effect.Effect<void, unknown, R>
    try {
      effect = options.handler(conn) as Effect.Effect<void, unknown, R>
    } catch (defect) {
      effect = Effect.die(defect)
    }
    return Effect.scoped(effect) as Effect.Effect<void, unknown, R>
  }

  /** How a handler ended (from its fiber's observer: no closures kept per connection while it runs). */
  const ended = (conn: NodeConnection, exit: Exit.Exit<void, unknown>): void => {
    if (Exit.isSuccess(exit)) return conn.closeGracefully()
    conn.abort()
    const cause = exit.cause
    if (Cause.hasInterruptsOnly(cause)) return
    const error = Cause.findErrorOption(cause)
    if (Option.isSome(error) && isConnectionError(error.value) && !Cause.hasDies(cause)) {
      // the peer went away or stalled: an event of the network, not a bug of the handler
      return options.report(Effect.logDebug(`connection ${conn.id} ended: ${error.value.message}`))
    }
    stats.handlerFailures++
    options.report(Effect.logError("connection handler failed", cause).pipe(
      Effect.annotateLogs({
        service: name,
        connection: conn.id,
        peer: conn.remote.family === "unix" ? conn.remote.address : `${conn.remote.address}:${conn.remote.port}`
      })
    ))
  }

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
      options.onClosed()
    }
  }

  const start = (socket: Net.Socket) => {
    const conn = new NodeConnection({
      id: nextId++,
      socket,
      remote: remoteOf(socket, options.path),
      counters: stats,
      timeouts: options.timeouts,
      owner,
      idleTimeoutMillis: options.idleMillis,
      lingerMillis: options.lingerMillis,
      lingerBytes: options.lingerBytes,
      drain,
      sendTimeoutMillis: options.sendMillis,
      budget
    })
    budget.arrived()
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

  const beginDrain = () => {
    // idle readers (readIdle) end now, `draining` completes
    drain.start()
    for (const conn of open) conn.onDrainStart()
  }

  const finish = (drainTimeout: Duration.Duration) =>
    Effect.gen(function*() {
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
        yield* Effect.logWarning(`drain timeout: interrupting ${remaining.length} connection(s)`).pipe(Effect.annotateLogs({ service: name }))
        yield* Fiber.interruptAll(remaining)
      }
      for (const conn of [...open]) conn.destroy()
    })

  const oldest = (n: number): ReadonlyArray<OldConnection> => {
    const now = Date.now()
    const out: Array<OldConnection> = []
    for (const conn of open) {
      if (out.length >= n) break
      const peer = conn.remote.family === "unix" ? conn.remote.address : `${conn.remote.address}:${conn.remote.port}`
      out.push({ peer, seconds: Math.round((now - conn.openedAt) / 1000) })
    }
    return out
  }

  return { start, beginDrain, finish, oldest }
}

/**
 * Several in-memory clients of one handler, as a listener would serve them:
 * each `connect` forks the handler on a new pair, owned by the current scope.
 * For chat-style tests where clients interact through shared state.
 */
import { Effect, FiberSet } from "effect"
import type { Scope } from "effect"
import type { Handler } from "../io/Connection.ts"
import { makePair, type MemoryEnd, type PairOptions } from "./MemoryConnection.ts"

/** A running in-memory server. */
export interface MemoryServer {
  /** Connects a new client; returns the client's end. */
  readonly connect: (options?: PairOptions) => Effect.Effect<MemoryEnd>
  /** Handler fibers still running. */
  readonly running: Effect.Effect<number>
  /** Starts a drain on every connection, as a listener does at shutdown (see `Connection.draining`). */
  readonly drain: Effect.Effect<void>
}

/**
 * Starts an in-memory server for `handler`; its handler fibers are
 * interrupted when the scope closes.
 *
 * @example
 * const chat = yield* Chat.make()
 * const server = yield* MemoryServer.make(chat.handler)
 * const alice = yield* server.connect()
 * yield* alice.write(Buffer.from("/join lobby\n"))
 */
export const make = <E, R>(handler: Handler<E, R>): Effect.Effect<MemoryServer, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const fibers = yield* FiberSet.make<void, E>()
    const run = yield* FiberSet.runtime(fibers)<R>()
    let nextId = 1
    const ends: Array<MemoryEnd> = []
    return {
      connect: (options) =>
        Effect.sync(() => {
          const id = nextId++
          const { client, server } = makePair({ id, remote: { address: "127.0.0.1", port: 40000 + id, family: "memory" }, ...options })
          ends.push(server)
          run(Effect.suspend(() => handler(server)))
          return client
        }),
      running: FiberSet.size(fibers),
      drain: Effect.sync(() => {
        for (const end of ends) end.drain()
      })
    }
  })

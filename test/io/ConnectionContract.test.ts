/**
 * The shared Connection contract, run against NodeConnection over loopback
 * and against the testkit's in-memory pair.
 */
import { describe } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { type Connection, DrainSignal } from "../../src/io/Connection.ts"
import * as Listener from "../../src/io/Listener.ts"
import { NodeConnection, remoteOf } from "../../src/io/NodeConnection.ts"
import { TimeoutManager } from "../../src/core/Timeouts.ts"
import { makePair } from "../../src/testkit/MemoryConnection.ts"
import { connectionContract } from "../support/connectionContract.ts"
import { connect } from "../support/netClient.ts"

const nodePair = Effect.gen(function*() {
  const accepted = yield* Deferred.make<Connection>()
  const listener = yield* Listener.make(
    { name: "contract", drainTimeout: 0 },
    (conn) => Deferred.succeed(accepted, conn).pipe(Effect.andThen(Effect.never))
  )
  const socket = yield* Effect.promise(() => connect(listener.address))
  const client = new NodeConnection({
    id: -1,
    socket,
    remote: remoteOf(socket, undefined),
    counters: { bytesIn: 0, bytesOut: 0, readPauses: 0, sendTimeouts: 0 },
    timeouts: new TimeoutManager(1000),
    owner: { onIdle: () => {}, onClosed: () => {} },
    idleTimeoutMillis: Number.POSITIVE_INFINITY,
    lingerMillis: 1000,
    drain: new DrainSignal()
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))
  const server = yield* Deferred.await(accepted)
  return { server, client, resetClient: Effect.sync(() => void socket.resetAndDestroy()) }
}).pipe(Effect.orDie)

const memoryPair = Effect.sync(() => {
  const { client, server } = makePair()
  return { server, client, resetClient: client.reset }
})

describe("Connection contract", () => {
  connectionContract("NodeConnection", true, nodePair)
  connectionContract("MemoryConnection", false, memoryPair)
})

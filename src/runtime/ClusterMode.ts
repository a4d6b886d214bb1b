/**
 * Cluster mode (the table's `cluster` key): this node joins an effect/cluster
 * of fiberd nodes whose chat rooms are `ChatRoom` entities. Runners talk over
 * TCP sockets (NodeClusterSocket's pieces, this node listening on `runnerAddress`);
 * runner registrations, shard locks and messages are stored in PostgreSQL
 * (`@effect/sql-pg`); runner health is checked by ping.
 *
 * Failover time is the shard-lock expiry: a dead node's shards are taken over
 * once its locks expire (fiberd's default 5 s, refreshed every second, where
 * effect/cluster's default is 35 s). Shorter means faster failover but more
 * lock traffic to PostgreSQL, and a node stalled longer than the expiry (a
 * long GC pause, a frozen VM) loses its shards while it still runs them.
 */
import * as NodeCrypto from "@effect/platform-node/NodeCrypto"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { PgClient } from "@effect/sql-pg"
import { Cause, Context, Duration, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { RunnerAddress, RunnerHealth, Runners, Sharding, ShardId, ShardingConfig, SocketRunner, SqlMessageStorage, SqlRunnerStorage } from "effect/cluster"
import { RpcClient, RpcSerialization } from "effect/rpc"
import { Socket } from "effect/socket"
import * as Chat from "../protocols/chat/Chat.ts"
import * as ClusterRooms from "../protocols/chat/ClusterRooms.ts"
import type * as Rooms from "../protocols/chat/Rooms.ts"
import { StartError } from "./StartError.ts"
import * as Options from "../core/Options.ts"
import * as ClusterOptions from "./ClusterOptions.ts"
import { parseListen } from "./kinds/Kind.ts"
import type * as ServiceTable from "./ServiceTable.ts"

/** What `/_status` shows of the cluster. */
export interface ClusterStatus {
  readonly runner: string
  /** Shards of the default group this node owns now (of `shardsPerGroup`). */
  readonly shards: number
  readonly shardsPerGroup: number
  /** Rooms whose entity runs on this node. */
  readonly rooms: ReadonlyArray<string>
}

/** A node of the cluster: its room directory and its status. */
export interface ClusterNode {
  readonly rooms: Rooms.RoomDirectory
  readonly status: Effect.Effect<ClusterStatus>
}

const SHARDS_PER_GROUP = 300

export { options } from "./ClusterOptions.ts"

/** Joins the cluster the table describes (undefined without a `cluster` key or a chat service); leaves it when the scope closes. */
export const start = (table: ServiceTable.Table): Effect.Effect<ClusterNode | undefined, StartError, Scope.Scope> =>
  Effect.gen(function*() {
    const cluster = table.cluster
    // the cluster holds chat rooms: a process without a chat service (a prefork worker) does not join it
    if (cluster === undefined || !table.services.some((s) => s.protocol === "chat")) return undefined
    const address = parseListen(cluster.runnerAddress, "tcp")
    if (typeof address === "string" || address._tag !== "inet") {
      return yield* Effect.fail(new StartError({ service: "cluster", reason: `runnerAddress: expected host:port, got ${cluster.runnerAddress}` }))
    }
    const runner = `${address.host}:${address.port}`
    const hosted = new ClusterRooms.Hosted()
    const chat = table.services.find((s) => s.protocol === "chat")
    const outboxSize = Chat.options.resolve(chat?.protocol === "chat" ? chat : {}).outboxSize
    const expiry = Options.toDuration(ClusterOptions.options.resolve(cluster).shardLockExpiration)
    // a node's subscription to a room carries the lines of all its members there
    const layer = ClusterRooms.entityLayer({ backlog: Math.max(65_536, outboxSize * 16), hosted }).pipe(
      Layer.provideMerge(runnerLayer(address.host, address.port, {
        runnerAddress: Option.some(RunnerAddress.make(address.host, address.port)),
        shardsPerGroup: SHARDS_PER_GROUP,
        shardLockExpiration: expiry,
        shardLockRefreshInterval: Duration.min(Duration.seconds(1), Duration.divideUnsafe(expiry, 3)),
        // how soon the nodes see that a dead node's shards are free (effect/cluster's default 3 s, on top of the lock)
        refreshAssignmentsInterval: Duration.millis(500),
        // a room moving away (shards rebalanced when a node joins) has nodes' subscription streams that never end
        // on their own: waiting effect/cluster's default 15 s for them held the shard, and every line to the room,
        // that long. After 1 s they are interrupted and the nodes subscribe again where the room lives now.
        entityTerminationTimeout: Duration.seconds(1)
      })),
      Layer.provide(PgClient.layer({ url: Redacted.make(cluster.postgres), applicationName: `fiberd ${runner}` }))
    )
    // a PostgreSQL that cannot be reached fails some of these layers as defects: every way is a StartError (exit 1)
    const context = yield* Layer.build(layer).pipe(
      Effect.catchCause((cause) =>
        Effect.fail(new StartError({ service: "cluster", reason: `cannot join the cluster at ${runner}: ${describe(Cause.squash(cause))}` }))
      )
    )
    const sharding = Context.get(context, Sharding.Sharding)
    const rooms = yield* ClusterRooms.make({ node: runner, hosted }).pipe(Effect.provide(context))
    const status = Effect.sync((): ClusterStatus => {
      let shards = 0
      for (let i = 1; i <= SHARDS_PER_GROUP; i++) if (sharding.hasShardId(ShardId.make("default", i))) shards++
      return { runner, shards, shardsPerGroup: SHARDS_PER_GROUP, rooms: [...hosted.rooms] }
    })
    return { rooms, status }
  })

/**
 * A cluster runner over TCP with SQL storage and ping health: what `NodeClusterSocket.layer({ storage: "sql" })`
 * builds, but with `TCP_NODELAY` on the runner sockets. Runner traffic is small request/answer messages
 * (batches of chat lines, streamed chunks per node and their acknowledgements); with Nagle's algorithm each waited for the peer's
 * delayed ACK (~40 ms): fan-out 3,232 → 11,886 lines/s with NODELAY (bench/cluster.ts).
 */
const runnerLayer = (host: string, port: number, config: Partial<ShardingConfig.ShardingConfig["Service"]>) => {
  const clientProtocol = Layer.effect(Runners.RpcClientProtocol)(Effect.gen(function*() {
    const serialization = yield* RpcSerialization.RpcSerialization
    return {
      codecFor: serialization.codecFor,
      make: (to: RunnerAddress.RunnerAddress) =>
        NodeSocket.makeNet({ openTimeout: 1000, timeout: 5500, host: to.host, port: to.port, noDelay: true }).pipe(
          Effect.flatMap((socket) =>
            RpcClient.makeProtocolSocket().pipe(
              Effect.provideService(Socket.Socket, socket),
              Effect.provideService(RpcSerialization.RpcSerialization, serialization)
            )
          ),
          Effect.orDie
        )
    }
  }))
  const server = NodeSocketServer.layer({ host, port, noDelay: true })
  const health = RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(clientProtocol))
  return Layer.provide(SocketRunner.layer, [server, clientProtocol]).pipe(
    Layer.provide(health),
    Layer.provideMerge(SqlMessageStorage.layer.pipe(Layer.provide(NodeCrypto.layerDigest))),
    Layer.provide(Layer.orDie(SqlRunnerStorage.layer)),
    Layer.provide(ShardingConfig.layer(config)),
    Layer.provide(RpcSerialization.layerSchemaBinary())
  )
}

/** An error and its causes, as one line ("PgConnection: Failed to connect: connect ECONNREFUSED 127.0.0.1:5432"). */
const describe = (e: unknown): string => {
  const messages: Array<string> = []
  for (let at: unknown = e, depth = 0; at !== undefined && at !== null && depth < 6; depth++) {
    const error = at as { message?: unknown; reason?: unknown; cause?: unknown }
    const message = typeof error.message === "string" ? error.message : typeof at === "string" ? at : undefined
    if (message !== undefined && message.length > 0 && !messages.some((m) => m.includes(message))) messages.push(message)
    at = error.reason ?? error.cause
  }
  return messages.join(": ") || String(e)
}

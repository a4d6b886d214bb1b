/**
 * Cluster mode's options (the service table's `cluster` key), declared apart
 * from the cluster wiring (effect/cluster, PostgreSQL), so that reading a
 * table does not load them.
 */
import { Schema } from "effect"
import * as Options from "../core/Options.ts"

/** Cluster mode's options, declared once (the service table's `cluster` key). */
export const options = Options.declare({
  runnerAddress: Schema.String.annotate({ description: "host:port this node listens on for the other nodes (and is reached at); one per node, not port 0" }),
  postgres: Schema.String.annotate({
    description: "a PostgreSQL URL shared by all nodes: runner registrations, shard locks and message storage live there (tables created on first start)"
  }),
  shardLockExpiration: Options.option(
    Options.Duration,
    "a dead node's rooms move after this (effect/cluster's own default is 35 s); shorter: faster failover, more lock refreshes, and a node paused longer than it loses its rooms",
    "5 seconds"
  )
})


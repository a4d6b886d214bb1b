/**
 * The bundled server's offload jobs: PBKDF2-SHA256 of a fixed input, the
 * CPU-heavy example behind `GET /api/pbkdf2?rounds=N`. The group is shared by
 * the caller (the HTTP route) and the worker threads (`pbkdf2Thread.ts`).
 */
import { Effect, Schema } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"
import * as Crypto from "node:crypto"
import type * as Offload from "../actors/Offload.ts"

/** The fixed password and salt every digest is derived from. */
const password = "fiberd"
const salt = "fiberd offload example"

/** The derived key's hex digest (32 bytes) after `rounds` iterations: the work itself, on whichever thread calls it. */
export const digest = (rounds: number): string => Crypto.pbkdf2Sync(password, salt, rounds, 32, "sha256").toString("hex")

/** The jobs the bundled pool runs. */
export const Pbkdf2Jobs = RpcGroup.make(
  Rpc.make("Pbkdf2", { payload: { rounds: Schema.Int }, success: Schema.String })
)

/** A pool running these jobs. */
export type Pbkdf2Pool = Offload.Offload<RpcGroup.Rpcs<typeof Pbkdf2Jobs>>

/** The handlers, run inside the worker threads. */
export const Pbkdf2JobsLive = Pbkdf2Jobs.toLayer({
  Pbkdf2: ({ rounds }) => Effect.sync(() => digest(rounds))
})

/** The module the bundled pool's threads run. */
export const threadEntry = new URL(import.meta.url.endsWith(".ts") ? "./pbkdf2Thread.ts" : "./pbkdf2Thread.js", import.meta.url)

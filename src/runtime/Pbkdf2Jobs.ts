/**
 * The bundled server's offload jobs: PBKDF2-SHA256 of a fixed input, the
 * CPU-heavy example behind `GET /api/pbkdf2?rounds=N`. The group is shared by
 * the caller (the HTTP route) and the worker threads (`pbkdf2Thread.ts`).
 */
import { Effect, Schema } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"
import type * as Offload from "../actors/Offload.ts"
import { digest } from "./Pbkdf2Route.ts"

export { digest } from "./Pbkdf2Route.ts"

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

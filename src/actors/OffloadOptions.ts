/**
 * The offload pool's options, declared apart from the pool (which loads worker
 * threads and effect/rpc), so that reading a service table does not load them.
 */
import { Schema } from "effect"
import * as Options from "../core/Options.ts"

/** Offload pool options, declared once (the service table's `offload` key is the same schema). */
export const options = Options.declare({
  name: Options.option(Schema.String, "the pool's name in errors and metric attributes", "offload"),
  threads: Options.option(Options.NonNegativeInt, "threads in the pool, each running one job at a time (in the service table 0 turns the pool off)", 1),
  maxQueued: Options.option(Options.NonNegativeInt, "jobs that may wait for a thread; more fail with OffloadBusy (default 64 per thread)")
})


/**
 * Entry module of the bundled offload pool's worker threads: serves the
 * PBKDF2 jobs over Effect's worker RPC until the pool terminates the thread.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Layer } from "effect"
import * as Offload from "../actors/Offload.ts"
import { Pbkdf2Jobs, Pbkdf2JobsLive } from "./Pbkdf2Jobs.ts"

NodeRuntime.runMain(Layer.launch(Offload.threadLayer(Pbkdf2Jobs, Pbkdf2JobsLive)))

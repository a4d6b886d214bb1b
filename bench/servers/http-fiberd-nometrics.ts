/**
 * fiberd without HTTP metrics: the static-file app on the engine and a
 * listener, as http-fiberd.ts but with no `metricsName` (to measure what the
 * metrics cost on the hot path).
 */
import { Effect } from "effect"
import * as Path from "node:path"
import * as AccessLog from "../../src/actors/AccessLog.ts"
import * as Listener from "../../src/io/Listener.ts"
import * as Serve from "../../src/protocols/http/Serve.ts"
import * as StaticFiles from "../../src/protocols/http/StaticFiles.ts"
import { announce } from "./control.ts"
import { makeSite } from "./files.ts"

const dir = makeSite()
Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const accessLog = yield* AccessLog.make({ path: Path.join(dir, "access.log") })
  const site = yield* StaticFiles.make({ root: dir })
  const http = yield* Serve.make(site, { accessLog, keepAliveTimeout: "60 seconds" })
  const listener = yield* Listener.make({ name: "web", backlog: 4096, maxConnections: 20_000, onDrain: http.drain }, http.handler)
  announce((listener.address as { port: number }).port)
  return yield* Effect.never
})))

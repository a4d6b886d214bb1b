/**
 * fiberd: the static-file app on the HTTP engine, access log on (to a file); `--h2c`: HTTP/2 by prior knowledge too.
 */
import { Effect } from "effect"
import * as Path from "node:path"
import * as AccessLog from "../../src/actors/AccessLog.ts"
import * as HttpServer from "../../src/protocols/http/Server.ts"
import * as StaticFiles from "../../src/protocols/http/StaticFiles.ts"
import { announce } from "./control.ts"
import { makeSite } from "./files.ts"

const dir = makeSite()
Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const accessLog = yield* AccessLog.make({ path: Path.join(dir, "access.log") })
  const site = yield* StaticFiles.make({ root: dir })
  const server = yield* HttpServer.listen(site, {
    listen: { name: "web", backlog: 4096, maxConnections: 20_000 },
    http: { accessLog, keepAliveTimeout: "60 seconds", ...(process.argv.includes("--h2c") ? { http2: "prior-knowledge" as const } : {}) }
  })
  announce((server.listener.address as { port: number }).port)
  return yield* Effect.never
})))

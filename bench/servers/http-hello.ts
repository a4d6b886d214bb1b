/**
 * fiberd hello (issues 15 and 12; `--tls` for HTTPS, `--h2c` for HTTP/2 by prior knowledge too): Router + `Effect.succeed(Response.text(...))` on the
 * HTTP engine, access log on (to a file), metrics on.
 */
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as AccessLog from "../../src/actors/AccessLog.ts"
import * as Res from "../../src/protocols/http/Response.ts"
import * as Router from "../../src/protocols/http/Router.ts"
import * as HttpServer from "../../src/protocols/http/Server.ts"
import { benchCertFiles } from "../tlsCert.ts"
import { announce } from "./control.ts"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-hello-"))
Effect.runFork(Effect.scoped(Effect.gen(function*() {
  // --no-log: without the access log (to compare with servers that keep none)
  const accessLog = process.argv.includes("--no-log") ? undefined : yield* AccessLog.make({ path: Path.join(dir, "access.log") })
  const hello = Res.text("Hello world\n")
  const app = Router.make([Router.get("/hello.txt", () => Effect.succeed(hello)), Router.get("/", () => Effect.succeed(hello))])
  const server = yield* HttpServer.listen(app, {
    // --tls: the same over TLS (issue 12), with the certificate the bench made
    listen: { name: "web", backlog: 4096, maxConnections: 20_000, ...(process.argv.includes("--tls") ? { tls: benchCertFiles() } : {}) },
    http: { ...(accessLog !== undefined ? { accessLog } : {}), keepAliveTimeout: "60 seconds", ...(process.argv.includes("--h2c") ? { http2: "prior-knowledge" as const } : {}) }
  })
  announce((server.listener.address as { port: number }).port)
  return yield* Effect.never
})))

/**
 * fiberd async hello (issue 15): Router + `Effect.sleep(0)` then `Response.text(...)` (the effectful path: the fiber suspends) on the
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
import { announce } from "./control.ts"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-hello-"))
Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const accessLog = yield* AccessLog.make({ path: Path.join(dir, "access.log") })
  const hello = Res.text("Hello world\n")
  const app = Router.make([Router.get("/hello.txt", () => Effect.as(Effect.sleep(0), hello)), Router.get("/", () => Effect.succeed(hello))])
  const server = yield* HttpServer.listen(app, {
    listen: { name: "web", backlog: 4096, maxConnections: 20_000 },
    http: { accessLog, keepAliveTimeout: "60 seconds" }
  })
  announce((server.listener.address as { port: number }).port)
  return yield* Effect.never
})))

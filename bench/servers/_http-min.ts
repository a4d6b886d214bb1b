import { Effect } from "effect"
import * as HttpServer from "../../src/protocols/http/Server.ts"
import * as Res from "../../src/protocols/http/Response.ts"
import { announce } from "./control.ts"
const body = Res.text("Hello world\n")
Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const server = yield* HttpServer.listen(() => Effect.succeed(body), { listen: { backlog: 4096 }, http: { keepAliveTimeout: "60 seconds" } })
  announce((server.listener.address as { port: number }).port)
  return yield* Effect.never
})))

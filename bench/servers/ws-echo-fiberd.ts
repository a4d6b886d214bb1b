/** fiberd's WebSocket route echoing every message on /echo (issue 12). */
import { Effect, Option } from "effect"
import * as Router from "../../src/protocols/http/Router.ts"
import * as HttpServer from "../../src/protocols/http/Server.ts"
import { announce } from "./control.ts"

Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const app = Router.make([
    Router.ws("/echo", (socket) =>
      Effect.gen(function*() {
        while (true) {
          const message = yield* socket.receive
          if (Option.isNone(message)) return
          yield* socket.send(message.value)
        }
      }))
  ])
  const server = yield* HttpServer.listen(app, { listen: { name: "ws", backlog: 4096, maxConnections: 20_000 } })
  announce((server.listener.address as { port: number }).port)
  return yield* Effect.never
})))

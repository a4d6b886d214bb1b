/**
 * The fiberd program: starts the default services and runs until SIGINT or
 * SIGTERM, then drains them and exits 0.
 *
 * Defaults (loopback only): echo on 127.0.0.1:7007, daytime on 127.0.0.1:7013.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import * as Path from "node:path"
import * as AccessLog from "../actors/AccessLog.ts"
import * as Listener from "../io/Listener.ts"
import * as StaticFiles from "../protocols/http/StaticFiles.ts"
import * as HttpServer from "../protocols/http/Server.ts"
import * as Daytime from "../protocols/daytime.ts"
import * as Echo from "../protocols/echo.ts"

const services = [
  { name: "echo", protocol: "echo", port: 7007, handler: Echo.handler },
  { name: "daytime", protocol: "daytime", port: 7013, handler: Daytime.handler }
] as const

const publicDir = Path.resolve(import.meta.dirname, "../../public")

const main = Effect.gen(function*() {
  const accessLog = yield* AccessLog.make({ destination: "logs/access.log" })
  const site = yield* StaticFiles.make({ root: publicDir })
  const web = yield* HttpServer.listen(site, { listen: { name: "web", port: 8080 }, http: { accessLog } })
  yield* Console.log(`web\thttp\t${Listener.formatAddress(web.listener.address)}`)
  for (const service of services) {
    const listener = yield* Listener.make({ name: service.name, host: "127.0.0.1", port: service.port }, service.handler)
    yield* Console.log(`${service.name}\t${service.protocol}\t${Listener.formatAddress(listener.address)}`)
  }
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Effect.catchTag("ListenError", (error) =>
    Console.error(`fiberd: ${error.message}`).pipe(Effect.andThen(Effect.sync(() => {
      process.exitCode = 1
    }))))
)

NodeRuntime.runMain(main, {
  disableErrorReporting: false,
  teardown: (exit, onExit) => onExit(process.exitCode === undefined || process.exitCode === 0 ? 0 : Number(process.exitCode))
})

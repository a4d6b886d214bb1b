/**
 * fiberd's echo protocol on its listener (default options, as `npm start` runs it).
 * `--no-idle-timeout` turns the idle timeout off, to measure the shared timeout manager's cost.
 */
import { Effect } from "effect"
import * as Listener from "../../src/io/Listener.ts"
import * as Echo from "../../src/protocols/echo.ts"
import { announce } from "./control.ts"

Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const idle = process.argv.includes("--no-idle-timeout") ? { idleTimeout: "Infinity" as const } : {}
  const listener = yield* Listener.make({ name: "echo", backlog: 4096, maxConnections: 20_000, ...idle }, Echo.handler)
  announce((listener.address as { port: number }).port)
  return yield* Effect.never
})))

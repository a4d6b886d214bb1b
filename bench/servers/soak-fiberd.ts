/**
 * The soak server: the fiberd runtime with web (the bundled site), echo and
 * chat on free ports, as the program runs them. Prints `listening WEB ECHO
 * CHAT`, then once a second a `sample` JSON line: RSS, heap, and the event
 * loop's delay over that second (p50, p99, max, in ms).
 */
import { Effect } from "effect"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Fs from "node:fs"
import * as Runtime from "../../src/runtime/Runtime.ts"
import * as BundledSite from "../../src/runtime/BundledSite.ts"
import * as ServiceTable from "../../src/runtime/ServiceTable.ts"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-soak-"))
const table: ServiceTable.Table = {
  services: [
    { name: "web", protocol: "http", listen: "127.0.0.1:0", root: BundledSite.publicDir },
    { name: "echo", protocol: "echo", listen: "127.0.0.1:0" },
    { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }
  ],
  accessLog: { path: Path.join(dir, "access.log") }
}

await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const running = yield* Runtime.start(table)
  const port = (name: string) => Number(running.services().find((s) => s.name === name)!.address.split(":").at(-1))
  console.log(`listening ${port("web")} ${port("echo")} ${port("chat")}`)
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  yield* Effect.forever(Effect.gen(function*() {
    yield* Effect.sleep("1 second")
    const m = process.memoryUsage()
    console.log(`sample ${JSON.stringify({
      rss: m.rss,
      heapUsed: m.heapUsed,
      p50: delay.percentile(50) / 1e6,
      p99: delay.percentile(99) / 1e6,
      max: delay.max / 1e6
    })}`)
    delay.reset()
  }))
})))

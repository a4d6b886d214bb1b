import { Effect } from "effect"
import * as Net from "node:net"
import { monitorEventLoopDelay } from "node:perf_hooks"
const h = monitorEventLoopDelay({ resolution: 1 }); h.enable()
setInterval(() => { console.error(`loop delay p50=${(h.percentile(50)/1e6).toFixed(2)}ms p99=${(h.percentile(99)/1e6).toFixed(2)}ms max=${(h.max/1e6).toFixed(2)}ms`); h.reset() }, 1000).unref()
import * as HttpServer from "../../src/protocols/http/Server.ts"
import * as Res from "../../src/protocols/http/Response.ts"
import { announce } from "./control.ts"
const body = Res.text("Hello world\n")
const kT = Symbol()
const origEmit = Net.Socket.prototype.emit
;(Net.Socket.prototype as any).emit = function (ev: string, ...a: any[]) { if (ev === "data") (this as any)[kT] = performance.now(); return origEmit.call(this, ev, ...a) }
const origWrite = Net.Socket.prototype.write
const deltas: number[] = []
;(Net.Socket.prototype as any).write = function (...a: any[]) { const t = (this as any)[kT]; if (t) { deltas.push(performance.now() - t); (this as any)[kT] = 0 } return (origWrite as any).apply(this, a) }
setInterval(() => { (globalThis as any).gc(); console.error(`heap ${(process.memoryUsage().heapUsed/1e6).toFixed(1)}MB rss ${(process.memoryUsage().rss/1e6).toFixed(0)}MB`) }, 1000).unref()
setInterval(() => { if (deltas.length) { deltas.sort((x, y) => x - y); console.error(`n=${deltas.length} p50=${deltas[deltas.length >> 1]!.toFixed(3)} p99=${deltas[Math.floor(deltas.length * .99)]!.toFixed(3)} max=${deltas.at(-1)!.toFixed(3)}`); deltas.length = 0 } }, 1000).unref()
Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const server = yield* HttpServer.listen(() => Effect.succeed(body), { listen: { backlog: 4096 }, http: { keepAliveTimeout: "60 seconds" } })
  announce((server.listener.address as { port: number }).port)
  return yield* Effect.never
})))

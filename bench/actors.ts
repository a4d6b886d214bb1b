/**
 * Actor benchmarks (issue 3), in this process:
 * - ask round trips per second through an actor vs a bare Effect Queue ping-pong;
 * - access-log throughput (entries/s written to a file, batched) and the cost of one tell.
 */
import { Deferred, Effect, Fiber, Queue } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as AccessLog from "../src/actors/AccessLog.ts"
import * as Actor from "../src/actors/Actor.ts"
import { median } from "./harness.ts"

const queuePingPong = (rounds: number) =>
  Effect.gen(function*() {
    const ping = yield* Queue.unbounded<number>()
    const pong = yield* Queue.unbounded<number>()
    const echo = yield* Effect.forkChild(Effect.forever(Queue.take(ping).pipe(Effect.flatMap((n) => Queue.offer(pong, n)))))
    const t0 = performance.now()
    for (let i = 0; i < rounds; i++) {
      yield* Queue.offer(ping, i)
      yield* Queue.take(pong)
    }
    const ms = performance.now() - t0
    yield* Fiber.interrupt(echo)
    return rounds / (ms / 1000)
  })

type Ping = { readonly n: number; readonly reply: Actor.Reply<number> }
const actorPingPong = (rounds: number) =>
  Effect.scoped(Effect.gen(function*() {
    const ref = yield* Actor.spawn(Actor.stateless((m: Ping) => m.reply.succeed(m.n)), { name: "pong" })
    const t0 = performance.now()
    for (let i = 0; i < rounds; i++) yield* ref.ask<number>((reply) => ({ n: i, reply }))
    return rounds / ((performance.now() - t0) / 1000)
  }))

/** Two actors telling each other a counter: one round trip = two tells. */
const tellPingPong = (rounds: number) =>
  Effect.scoped(Effect.gen(function*() {
    const done = yield* Deferred.make<void>()
    let a: Actor.ActorRef<number> | undefined
    const b = yield* Actor.spawn(Actor.stateless((n: number) => a!.tell(n + 1)), { name: "ping-b" })
    a = yield* Actor.spawn(
      Actor.stateless((n: number) => (n >= rounds ? Deferred.succeed(done, undefined) : b.tell(n))),
      { name: "ping-a" }
    )
    const t0 = performance.now()
    yield* a.tell(0)
    yield* Deferred.await(done)
    return rounds / ((performance.now() - t0) / 1000)
  }))

export const pingPong = async (rounds: number, repeats: number) => {
  const queue: Array<number> = []
  const tell: Array<number> = []
  const ask: Array<number> = []
  for (let r = 0; r < repeats; r++) {
    queue.push(await Effect.runPromise(queuePingPong(rounds)))
    tell.push(await Effect.runPromise(tellPingPong(rounds)))
    ask.push(await Effect.runPromise(actorPingPong(rounds)))
  }
  return { queue: median(queue), tell: median(tell), ask: median(ask) }
}

export const accessLog = async (entries: number) => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-bench-"))
  const file = Path.join(dir, "access.log")
  const entry: AccessLog.AccessEntry = {
    peer: "127.0.0.1",
    time: Date.now(),
    requestLine: "GET /index.html HTTP/1.1",
    status: 200,
    bytes: 1234,
    referer: "http://localhost/",
    userAgent: "wrk/4.2",
    durationMs: 0
  }
  let tellNs = 0
  const t0 = performance.now()
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const log = yield* AccessLog.make({ path: file })
    const batch = 10_000
    for (let sent = 0; sent < entries; sent += batch) {
      const s = process.hrtime.bigint()
      for (let i = 0; i < batch; i++) log.tellUnsafe(entry)
      tellNs += Number(process.hrtime.bigint() - s)
      yield* Effect.yieldNow // let the writer run, as a server's event loop would
    }
  })))
  const seconds = (performance.now() - t0) / 1000
  const lines = Fs.readFileSync(file, "utf8").split("\n").length - 1
  Fs.rmSync(dir, { recursive: true })
  return { perSecond: lines / seconds, lines, tellNs: tellNs / entries }
}

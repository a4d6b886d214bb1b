/**
 * The live status feed (GET /_status/stream): nothing is computed while
 * nobody watches; every viewer gets the same frame each second (one frame
 * computed, not one per viewer); rates and latency quantiles come from the
 * counters' differences over the second; the last viewer leaving stops it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { HttpCounters } from "../../src/protocols/http/HttpMetrics.ts"
import type { ServiceEntry, StatusSource } from "../../src/runtime/Status.ts"
import * as StatusFeed from "../../src/runtime/StatusFeed.ts"

const fakeSource = () => {
  const http = new HttpCounters()
  const stats = { active: 3, accepted: 10, bytesIn: 0, bytesOut: 0, handlerFailures: 0, refused: 0 }
  let requests = 0
  const oldest = (n: number) => [{ peer: "127.0.0.1:5000", seconds: 42 }, { peer: "127.0.0.1:5001", seconds: 7 }].slice(0, n)
  const web = { name: "web", protocol: "http", transport: "tcp", address: "127.0.0.1:1", stats, requests: () => requests, http, oldest } as unknown as ServiceEntry
  const source: StatusSource = {
    startedAt: 0,
    services: () => [web],
    supervisor: () => Effect.succeed([{ id: "web", restart: "permanent", status: "running", restarts: 2 }]),
    logs: () => ({ access: { written: 0, dropped: 0, writeErrors: 0 }, error: { written: 0, dropped: 0, writeErrors: 0 } }) as never,
    logsQueued: () => ({ access: 12, error: 1 })
  }
  /** `n` answers of `ms` each, `bytes` in and out. */
  const traffic = (n: number, ms: number, bytes: number) => {
    for (let i = 0; i < n; i++) http.record("GET", i % 10 === 0 ? 404 : 200, 10, ms)
    requests += n
    stats.bytesIn += bytes
    stats.bytesOut += bytes
  }
  return { source, traffic }
}

const decode = (chunk: Uint8Array) => new TextDecoder().decode(chunk)
const frameOf = (chunk: Uint8Array) => JSON.parse(decode(chunk).replace(/^data: /, "")) as StatusFeed.Frame

describe("StatusFeed", () => {
  it.effect("idle without viewers; one frame a second shared by all viewers; rates and p50/p99 over the second; stops when the last leaves", () =>
    Effect.gen(function*() {
      const { source, traffic } = fakeSource()
      const feed = yield* StatusFeed.make(source)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(feed.frames(), 0, "nobody watches: nothing computed")

      // two viewers, each reading the retry line and three frames
      const viewer = Effect.forkChild(Stream.runCollect(Stream.take(feed.stream, 4)))
      const a = yield* viewer
      const b = yield* viewer
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      assert.strictEqual(feed.viewers(), 2)
      traffic(100, 3, 5000) // in the first second: 100 answers of 3 ms
      yield* TestClock.adjust("1 second")
      traffic(50, 40, 1000)
      yield* TestClock.adjust("1 second")
      const [seenA, seenB] = [yield* Fiber.join(a), yield* Fiber.join(b)]
      assert.strictEqual(decode(seenA[0]!), "retry: 2000\n\n")
      const framesA = seenA.slice(1).map(frameOf)
      assert.deepStrictEqual(seenB.slice(1).map(frameOf), framesA, "every viewer gets the same frames")
      assert.strictEqual(feed.frames(), 3, "one frame a second, not one per viewer")
      const web = framesA.map((f) => f.services[0]!)
      assert.deepStrictEqual(web.map((s) => s.requestsPerSecond), [0, 100, 50])
      assert.deepStrictEqual(web.map((s) => s.bytesInPerSecond), [0, 5000, 1000])
      assert.deepStrictEqual(web.map((s) => s.p50Ms), [null, 5, 50]) // the histogram's bucket bounds
      assert.strictEqual(web[2]!.clientErrors, 15)
      assert.strictEqual(web[2]!.activeConnections, 3)
      assert.strictEqual(web[2]!.restarts, 2)
      assert.deepStrictEqual(framesA[2]!.supervisor, [
        { id: "web", status: "running", restarts: 2 },
        { id: "access log", status: "running", restarts: 0 },
        { id: "error log", status: "running", restarts: 0 }
      ])
      assert.deepStrictEqual(web[2]!.oldest, [{ peer: "127.0.0.1:5000", seconds: 42 }, { peer: "127.0.0.1:5001", seconds: 7 }])
      assert.deepStrictEqual(framesA[2]!.logsQueued, { access: 12, error: 1 })

      // both left: the ticker stops
      yield* Effect.yieldNow
      assert.strictEqual(feed.viewers(), 0)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(feed.frames(), 3)
    }).pipe(Effect.scoped))
})

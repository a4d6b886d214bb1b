/**
 * UDP: echo and daytime answer each datagram from a fiber of its own; the
 * extended-conversation pattern keeps one session per peer and ends it after
 * idle time (TestClock).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { TestClock } from "effect/testing"
import * as Dgram from "node:dgram"
import * as Udp from "../../src/io/Udp.ts"
import * as Daytime from "../../src/protocols/daytime.ts"
import * as Echo from "../../src/protocols/echo.ts"

const client = () =>
  Effect.acquireRelease(
    Effect.callback<Dgram.Socket>((resume) => {
      const s = Dgram.createSocket("udp4")
      s.bind(0, "127.0.0.1", () => resume(Effect.succeed(s)))
    }),
    (s) => Effect.sync(() => s.close())
  )
const ask = (s: Dgram.Socket, port: number, text: string) =>
  Effect.callback<string>((resume) => {
    s.once("message", (m) => resume(Effect.succeed(m.toString())))
    s.send(text, port, "127.0.0.1")
  })

describe("UDP", () => {
  it.live("echo (RFC 862 §2) and daytime (RFC 867) over UDP", () =>
    Effect.scoped(Effect.gen(function*() {
      const echo = yield* Udp.make({ name: "echo-udp" }, Echo.datagram)
      const daytime = yield* Udp.make({ name: "daytime-udp" }, Daytime.datagram)
      const c = yield* client()
      assert.strictEqual(yield* ask(c, echo.address.port, "ping"), "ping")
      assert.match(yield* ask(c, daytime.address.port, ""), /-UTC\r\n$/)
      assert.strictEqual(echo.stats.received, 1)
      assert.strictEqual(echo.stats.sent, 1)
    })))

  it.live("a port in use is a typed error naming the service", () =>
    Effect.scoped(Effect.gen(function*() {
      const first = yield* Udp.make({ name: "one" }, Echo.datagram)
      const error = yield* Effect.flip(Udp.make({ name: "two", port: first.address.port }, Echo.datagram))
      assert.include(error.message, "two: cannot listen: address already in use, EADDRINUSE (udp 127.0.0.1:")
    })))

  it.effect("sessions: one per peer, fed in order, ended after idle time", () =>
    Effect.scoped(Effect.gen(function*() {
      const seen: Array<string> = []
      const listener = yield* Udp.sessions({ name: "sessions", idleTimeout: "30 seconds" }, ({ inbox, reply, peer }) =>
        Effect.gen(function*() {
          let n = 0
          while (true) {
            const data = yield* Queue.take(inbox)
            n++
            seen.push(`${peer.port}:${data}`)
            yield* reply(Buffer.from(`#${n}`))
          }
        }).pipe(Effect.ignore))
      const a = yield* client()
      const b = yield* client()
      assert.strictEqual(yield* ask(a, listener.address.port, "x"), "#1")
      assert.strictEqual(yield* ask(a, listener.address.port, "y"), "#2")
      assert.strictEqual(yield* ask(b, listener.address.port, "z"), "#1")
      assert.strictEqual(listener.sessions(), 2)
      yield* TestClock.adjust("61 seconds")
      // the expired sessions' fibers end on the next scheduler turns
      for (let i = 0; i < 1000 && listener.sessions() > 0; i++) yield* Effect.yieldNow
      assert.strictEqual(listener.sessions(), 0, "idle sessions expired")
      assert.strictEqual(yield* ask(a, listener.address.port, "again"), "#1", "a new session starts fresh")
    })))
})

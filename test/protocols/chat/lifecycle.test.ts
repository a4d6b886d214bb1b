/**
 * Chat rooms over their life: a drain tells idle members the server is
 * shutting down and closes them at once; a shutdown with members in a room
 * restarts nothing (rooms are transient children whose mailboxes close
 * first); a room whose last member left is stopped and forgotten; `maxRooms`
 * refuses one room too many with an error line.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Chat from "../../../src/protocols/chat/Chat.ts"
import * as Echo from "../../../src/protocols/echo.ts"
import { MemoryServer, Script } from "../../../src/testkit/index.ts"
import type { MemoryEnd } from "../../../src/testkit/MemoryConnection.ts"
import { settle } from "../../../src/testkit/Script.ts"
import { type CapturedLog, captureLogs } from "../../support/logs.ts"

/** Lets the chat's fibers, actors and event-loop yields run until nothing moves. */
const quiesce = Effect.gen(function*() {
  for (let round = 0; round < 20; round++) {
    yield* settle(() => 0)
    yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
  }
})

const say = (client: MemoryEnd, line: string) => client.write(Buffer.from(line + "\n")).pipe(Effect.orDie, Effect.andThen(quiesce))
const text = (client: MemoryEnd) => Buffer.from(client.readAvailable()).toString("utf8")

describe("drain: idle connections close at once, politely", () => {
  it.effect("echo: an idle client is closed as soon as the drain starts", () =>
    Effect.gen(function*() {
      const r = yield* Script.run(Echo.handler, [Script.send("hi"), Script.drain])
      assert.strictEqual(r.text, "hi")
      assert.isTrue(r.serverEnded, "the server ended its side without waiting for the client")
      assert.isTrue(r.exit !== undefined && Exit.isSuccess(r.exit))
    }))

  it.effect("chat: an idle member is told the server is shutting down, and closed", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make()
      const r = yield* Script.run(chat.handler, [Script.send("/join lobby\n"), Script.drain])
      assert.include(r.text, "*** server shutting down\r\n")
      assert.isTrue(r.serverEnded)
    }).pipe(Effect.scoped))

  it.effect("chat: a member in the middle of a line is not cut off by the drain", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make()
      const r = yield* Script.run(chat.handler, [Script.send("/join lob"), Script.drain, Script.send("by\n/who\n")])
      assert.include(r.text, "*** in #lobby: guest1")
    }).pipe(Effect.scoped))
})

describe("rooms over their life", () => {
  it.effect("a clean shutdown with members in rooms restarts no room and nothing gives up", () =>
    Effect.gen(function*() {
      const logs: Array<CapturedLog> = []
      yield* Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Effect.gen(function*() {
          const chat = yield* Chat.make()
          return yield* MemoryServer.make(chat.handler)
        }).pipe(Scope.provide(scope))
        const a = yield* server.connect()
        const b = yield* server.connect()
        yield* say(a, "/join one")
        yield* say(b, "/join two")
        yield* Scope.close(scope, Exit.void)
        yield* quiesce
      }).pipe(Effect.provide(captureLogs(logs) as Layer.Layer<never>))
      const noisy = logs.filter((l) => /restarting|gave up|crashed/.test(l.message))
      assert.deepStrictEqual(noisy.map((l) => l.message), [])
    }))

  it.effect("a room whose last member left is stopped and removed; the name can be used again", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make()
      const server = yield* MemoryServer.make(chat.handler)
      const a = yield* server.connect()
      const b = yield* server.connect()
      yield* say(a, "/join temp")
      yield* say(b, "/join temp")
      assert.deepStrictEqual(chat.rooms(), ["temp"])
      yield* say(a, "/part")
      assert.deepStrictEqual(chat.rooms(), ["temp"], "one member is still there")
      yield* say(b, "/quit")
      assert.deepStrictEqual(chat.rooms(), [], "empty: stopped and forgotten")
      yield* say(a, "/join temp")
      yield* say(a, "/who")
      assert.include(text(a), "*** in #temp: guest1")
    }).pipe(Effect.scoped))

  it.effect("30 rooms joined one after another leave at most one room behind", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make()
      const server = yield* MemoryServer.make(chat.handler)
      const a = yield* server.connect()
      for (let i = 0; i < 30; i++) yield* say(a, `/join r${i}`)
      assert.deepStrictEqual(chat.rooms(), ["r29"])
    }).pipe(Effect.scoped))

  it.effect("maxRooms: one room too many is refused with an error line; existing rooms stay open", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make({ maxRooms: 1 })
      const server = yield* MemoryServer.make(chat.handler)
      const a = yield* server.connect()
      const b = yield* server.connect()
      yield* say(a, "/join one")
      yield* say(b, "/join two")
      assert.include(text(b), "*** error: too many rooms (at most 1)")
      yield* say(b, "/join one")
      assert.include(text(b), "*** guest2 joined #one")
    }).pipe(Effect.scoped))

  it.effect("MemoryServer.drain closes every idle member with the notice", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make()
      const server = yield* MemoryServer.make(chat.handler)
      const a = yield* server.connect()
      yield* say(a, "/join x")
      yield* server.drain
      yield* quiesce
      assert.include(text(a), "*** server shutting down")
      assert.isTrue(a.peerEnded)
    }).pipe(Effect.scoped))

  it.effect("a member kicked for not reading is closed after a short grace, not at the idle timeout", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make({ outboxSize: 4, kickGrace: "2 seconds" })
      const server = yield* MemoryServer.make(chat.handler)
      const stalled = yield* server.connect({ bufferSize: 256 })
      const talker = yield* server.connect()
      yield* say(stalled, "/join r")
      yield* say(talker, "/join r")
      for (let i = 0; i < 300; i++) yield* talker.write(Buffer.from(`line ${i} ${"x".repeat(50)}\n`)).pipe(Effect.orDie)
      yield* quiesce
      assert.include(text(talker), "was disconnected (too slow)")
      assert.isFalse(stalled.peerEnded, "still within the grace time")
      yield* TestClock.adjust("2 seconds")
      yield* quiesce
      assert.isTrue(stalled.peerEnded, "closed after the grace time although it never read")
    }).pipe(Effect.scoped))
})

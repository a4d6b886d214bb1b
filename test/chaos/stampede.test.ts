/**
 * Chaos tests, one per supervised component, in the spirit of Ranch's
 * stampede suite: under load, handlers and actors crash or are interrupted
 * at random. Nothing outside what crashed is lost or stuck, and the
 * supervisors' counts match what was injected.
 */
import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Exit, Layer, Option, Scope } from "effect"
import * as fc from "fast-check"
import * as Net from "node:net"
import * as Actor from "../../src/actors/Actor.ts"
import * as Supervisor from "../../src/actors/Supervisor.ts"
import type { Handler } from "../../src/io/Connection.ts"
import * as Listener from "../../src/io/Listener.ts"
import * as Chat from "../../src/protocols/chat/Chat.ts"
import { MemoryServer } from "../../src/testkit/index.ts"
import { settle } from "../../src/testkit/Script.ts"
import { type CapturedLog, captureLogs } from "../support/logs.ts"

type Role = "echo" | "crash" | "interrupt"

/** Echo, except that a connection whose first bytes say "crash" dies and one that says "interrupt" is interrupted. */
const chaotic: Handler<never> = (conn) =>
  Effect.gen(function*() {
    while (true) {
      const chunk = yield* Effect.orDie(conn.read)
      if (Option.isNone(chunk)) return yield* conn.endWrite
      const text = Buffer.from(chunk.value).toString()
      if (text.startsWith("crash")) return yield* Effect.die(new Error("injected crash"))
      if (text.startsWith("interrupt")) return yield* Effect.interrupt
      yield* Effect.orDie(conn.write(chunk.value))
    }
  })

const client = (port: number, role: Role, payload: string) =>
  new Promise<{ role: Role; got: string; payload: string }>((resolve) => {
    const socket = Net.connect(port, "127.0.0.1", () => socket.end(role === "echo" ? payload : role))
    let got = ""
    socket.on("data", (d) => (got += d))
    socket.on("error", () => {})
    socket.on("close", () => resolve({ role, got, payload }))
  })

describe("chaos: listener connection handlers (simple_one_for_one)", () => {
  it.live("300 concurrent connections, a third crashing or interrupted at random: every other one gets exactly its bytes; failures counted and logged as injected", () => {
    const logs: Array<CapturedLog> = []
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* Listener.make({ name: "stampede", maxConnections: 1000, backlog: 1024 }, chaotic).pipe(Scope.provide(scope))
      const port = (listener.address as { port: number }).port
      const roles = fc.sample(fc.constantFrom<Role>("echo", "echo", "crash", "interrupt", "echo", "echo"), { numRuns: 300, seed: 862 })
      const results = yield* Effect.promise(() => Promise.all(roles.map((role, i) => client(port, role, `payload-${i}-${"x".repeat(i % 50)}`))))
      for (const r of results) if (r.role === "echo") assert.strictEqual(r.got, r.payload)
      const crashes = roles.filter((r) => r === "crash").length
      assert.isAbove(crashes, 0)
      // the counter is updated when the failed fiber is observed, right after its socket closed
      for (let i = 0; i < 1000 && listener.stats.handlerFailures < crashes; i++) yield* Effect.yieldNow
      assert.strictEqual(listener.stats.handlerFailures, crashes, "crashes are counted; interruptions are not failures")
      // and the listener still serves
      const after = yield* Effect.promise(() => client(port, "echo", "still here"))
      assert.strictEqual(after.got, "still here")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(logs.filter((l) => l.message === "connection handler failed").length, crashes)
    }).pipe(Effect.scoped, Effect.provide(captureLogs(logs) as Layer.Layer<never>))
  })
})

class Injected extends Data.TaggedError("Injected")<{}> {}
type Msg =
  | { readonly _tag: "Add" }
  | { readonly _tag: "Crash" }
  | { readonly _tag: "Get"; readonly reply: Actor.Reply<number> }

describe("chaos: supervised actors", () => {
  it.effect("three counters under a one-for-one supervisor, crashed at random while 3,000 messages fly: restarts match the crashes, no other message is lost", () => {
    const logs: Array<CapturedLog> = []
    return Effect.gen(function*() {
      const mailboxes = yield* Effect.forEach([0, 1, 2], (i) => Actor.make<Msg>({ name: `counter-${i}`, mailbox: Actor.unbounded }))
      // the count lives outside the actor's state so that it survives restarts (state restarts fresh, as in OTP)
      const counted = [0, 0, 0]
      const behavior = (i: number): Actor.Behavior<Msg, void, Injected> => ({
        initial: undefined,
        receive: (_, msg) => {
          if (msg._tag === "Crash") return Effect.fail(new Injected())
          if (msg._tag === "Add") return Effect.sync(() => void counted[i]!++)
          return msg.reply.succeed(counted[i]!)
        }
      })
      const sup = yield* Supervisor.make(
        { name: "chaos", strategy: "one-for-one", maxRestarts: 10_000, period: "1 second" },
        mailboxes.map((m, i) => ({ id: `c${i}`, start: Actor.runSupervised(m, behavior(i)) }))
      )
      const plan = fc.sample(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.constantFrom("Add", "Add", "Add", "Add", "Add", "Add", "Add", "Crash")), { numRuns: 3000, seed: 16 })
      // ten senders at once
      yield* Effect.forEach(
        Array.from({ length: 10 }, (_, s) => plan.filter((_, i) => i % 10 === s)),
        (mine) => Effect.forEach(mine, ([target, kind]) => mailboxes[target]!.tell({ _tag: kind } as Msg), { discard: true }),
        { concurrency: "unbounded", discard: true }
      )
      const counts = yield* Effect.forEach(mailboxes, (m) => m.ask<number>((reply) => ({ _tag: "Get", reply })))
      yield* settle(() => 0)
      const children = yield* sup.children
      for (const i of [0, 1, 2]) {
        const adds = plan.filter(([t, k]) => t === i && k === "Add").length
        const crashes = plan.filter(([t, k]) => t === i && k === "Crash").length
        assert.strictEqual(counts[i], adds, `counter ${i}: every Add processed exactly once across ${crashes} crashes`)
        assert.strictEqual(children[i]!.restarts, crashes, `counter ${i}: one restart per injected crash`)
        assert.strictEqual(children[i]!.status, "running")
      }
      assert.strictEqual(logs.filter((l) => l.message.startsWith("restarting child")).length, plan.filter(([, k]) => k === "Crash").length)
    }).pipe(Effect.provide(captureLogs(logs) as Layer.Layer<never>))
  })
})

describe("chaos: chat members and rooms", () => {
  it.effect("40 members in 4 rooms, a quarter dropping abruptly mid-conversation: the survivors keep talking, /who lists exactly them, no room restarts", () => {
    const logs: Array<CapturedLog> = []
    return Effect.gen(function*() {
      const chat = yield* Chat.make()
      const server = yield* MemoryServer.make(chat.handler)
      const members = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), () => server.connect())
      const quiesce = Effect.gen(function*() {
        for (let i = 0; i < 20; i++) {
          yield* settle(() => 0)
          yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
        }
      })
      const say = (i: number, line: string) => members[i]!.write(Buffer.from(line + "\n")).pipe(Effect.ignore)
      yield* Effect.forEach(members, (_, i) => say(i, `/nick m${i}\n/join room${i % 4}`), { discard: true })
      yield* quiesce
      const dropped = new Set(fc.sample(fc.integer({ min: 0, max: 39 }), { numRuns: 10, seed: 7 }))
      // everyone talks while the dropped ones reset at random points
      for (let round = 0; round < 5; round++) {
        yield* Effect.forEach(members, (m, i) =>
          dropped.has(i) && round === i % 5 ? m.reset : say(i, `round ${round} from m${i}`), { discard: true })
      }
      yield* quiesce
      for (let room = 0; room < 4; room++) {
        const survivors = members.map((_, i) => i).filter((i) => i % 4 === room && !dropped.has(i))
        if (survivors.length === 0) continue
        const asker = members[survivors[0]!]!
        asker.readAvailable()
        yield* say(survivors[0]!, "/who")
        yield* quiesce
        const who = /\*\*\* in #room\d: (.*)\r\n/.exec(Buffer.from(asker.readAvailable()).toString())
        assert.isNotNull(who)
        assert.deepStrictEqual(who![1]!.split(" ").sort(), survivors.map((i) => `m${i}`).sort())
      }
      assert.strictEqual(chat.rooms().length, 4)
      assert.deepStrictEqual(logs.filter((l) => /restarting|crashed|gave up/.test(l.message)).map((l) => l.message), [])
    }).pipe(Effect.scoped, Effect.provide(captureLogs(logs) as Layer.Layer<never>))
  })
})

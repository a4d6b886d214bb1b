/**
 * Actors and mailbox policies: ordering, suspension when full, counted drops,
 * ask timeout (TestClock), ask to a stopped or failing actor, restarts that
 * keep the ref and the queued messages.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Actor from "../../src/actors/Actor.ts"
import * as Supervisor from "../../src/actors/Supervisor.ts"
import { Property } from "../../src/testkit/index.ts"
import { settle } from "../../src/testkit/Script.ts"

type Msg =
  | { readonly _tag: "Add"; readonly n: number }
  | { readonly _tag: "Get"; readonly reply: Actor.Reply<ReadonlyArray<number>> }
  | { readonly _tag: "Crash" }
  | { readonly _tag: "Ignore"; readonly reply: Actor.Reply<number> }

const recorder: Actor.Behavior<Msg, ReadonlyArray<number>, string> = {
  initial: [],
  receive: (seen, msg) => {
    switch (msg._tag) {
      case "Add":
        return Effect.succeed([...seen, msg.n])
      case "Get":
        return msg.reply.succeed(seen).pipe(Effect.as(seen))
      case "Crash":
        return Effect.fail("crash")
      case "Ignore":
        return Effect.succeed(seen)
    }
  }
}
const get = (ref: Actor.ActorRef<Msg>) => ref.ask<ReadonlyArray<number>>((reply) => ({ _tag: "Get", reply }))
const dropped = (actor: string) =>
  Metric.snapshot.pipe(Effect.map((ms) =>
    (ms.find((m) => m.id === "fiberd_actor_dropped_total" && m.attributes?.actor === actor)?.state as
      | { count: number }
      | undefined)?.count ?? 0
  ))

describe("Actor", () => {
  it.effect("messages are handled in the order they were told (any sequence)", () =>
    Property.assert([fc.array(fc.integer(), { maxLength: 50 })], (ns) =>
      Effect.gen(function*() {
        const ref = yield* Actor.spawn(recorder, { name: "order" })
        for (const n of ns) yield* ref.tell({ _tag: "Add", n })
        assert.deepStrictEqual(yield* get(ref), ns)
      })))

  it.effect("bounded: tell suspends while the mailbox is full, and nothing is lost", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const handled: Array<number> = []
      const ref = yield* Actor.spawn(
        Actor.stateless((n: number) => Deferred.await(gate).pipe(Effect.andThen(Effect.sync(() => handled.push(n))))),
        { name: "bounded", mailbox: Actor.bounded(2) }
      )
      let told = 0
      const producer = yield* Effect.forkChild(Effect.gen(function*() {
        for (let i = 0; i < 10; i++) {
          yield* ref.tell(i)
          told++
        }
      }), { startImmediately: true })
      yield* settle(() => told)
      assert.isBelow(told, 10, "the producer must be suspended by the full mailbox")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(producer)
      yield* ref.stop
      assert.deepStrictEqual(handled, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    }))

  it.effect("dropping and sliding: drops are counted, never silent; sliding keeps the newest", () =>
    Effect.gen(function*() {
      for (const [policy, name] of [[Actor.dropping(2), "dropper"], [Actor.sliding(2), "slider"]] as const) {
        const gate = yield* Deferred.make<void>()
        const handled: Array<number> = []
        const ref = yield* Actor.spawn(
          Actor.stateless((n: number) => (n === 0 ? Deferred.await(gate) : Effect.void).pipe(Effect.andThen(Effect.sync(() => handled.push(n))))),
          { name, mailbox: policy }
        )
        yield* ref.tell(0)
        yield* settle(() => handled.length) // 0 is being handled, blocked on the gate
        for (let i = 1; i <= 5; i++) yield* ref.tell(i)
        yield* Deferred.succeed(gate, undefined)
        yield* ref.stop
        assert.strictEqual(yield* dropped(name), 3)
        assert.deepStrictEqual(handled, name === "dropper" ? [0, 1, 2] : [0, 4, 5])
      }
    }))

  it.effect("ask times out with a typed error (TestClock)", () =>
    Effect.gen(function*() {
      const ref = yield* Actor.spawn(Actor.stateless((_: { reply: Actor.Reply<number> }) => Effect.never), { name: "slow" })
      const asking = yield* Effect.forkChild(Effect.flip(ref.ask<number>((reply) => ({ reply }), { timeout: "2 seconds" })))
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(asking)
      assert.strictEqual(error._tag, "AskTimeout")
    }))

  it.effect("ask to a stopped actor, and asks left in the mailbox of a failed actor, fail with ActorStopped", () =>
    Effect.gen(function*() {
      const ref = yield* Actor.spawn(recorder, { name: "doomed" })
      yield* ref.stop
      assert.strictEqual((yield* Effect.flip(get(ref)))._tag, "ActorStopped")

      const gate = yield* Deferred.make<void>()
      const failing = yield* Actor.spawn(
        { initial: undefined, receive: (_: undefined, msg: Msg | "wait") => msg === "wait" ? Deferred.await(gate).pipe(Effect.as(undefined)) : recorder.receive([], msg).pipe(Effect.as(undefined)) },
        { name: "failing" }
      )
      yield* failing.tell("wait")
      yield* failing.tell({ _tag: "Crash" })
      const queued = yield* Effect.forkChild(Effect.flip(failing.ask<ReadonlyArray<number>>((reply) => ({ _tag: "Get", reply }))), { startImmediately: true })
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual((yield* Fiber.join(queued))._tag, "ActorStopped")
    }))

  it.effect("an ask the behaviour does not answer fails at once instead of waiting for the timeout", () =>
    Effect.gen(function*() {
      const ref = yield* Actor.spawn(recorder, { name: "silent" })
      const error = yield* Effect.flip(ref.ask<number>((reply) => ({ _tag: "Ignore", reply })))
      assert.strictEqual(error._tag, "ActorStopped")
    }))

  it.effect("supervised: a crash restarts the actor with fresh state; the ref and later messages survive", () =>
    Effect.gen(function*() {
      const mailbox = yield* Actor.make<Msg>({ name: "phoenix" })
      const sup = yield* Supervisor.make({ name: "actors" }, [{ id: "phoenix", start: Actor.runSupervised(mailbox, recorder) }])
      yield* mailbox.tell({ _tag: "Add", n: 1 })
      yield* mailbox.tell({ _tag: "Crash" })
      yield* mailbox.tell({ _tag: "Add", n: 2 })
      assert.deepStrictEqual(yield* get(mailbox), [2])
      assert.strictEqual((yield* sup.children)[0]!.restarts, 1)
    }))
})

describe("Actor ask timeouts", () => {
  it.effect("long ask timeouts share the actor's sweep and still fire (TestClock)", () =>
    Effect.gen(function*() {
      const ref = yield* Actor.spawn(Actor.stateless((_: { reply: Actor.Reply<number> }) => Effect.never), { name: "sleepy" })
      const asking = yield* Effect.forkChild(Effect.flip(ref.ask<number>((reply) => ({ reply }), { timeout: "30 seconds" })))
      yield* TestClock.adjust("29 seconds")
      assert.isUndefined(asking.pollUnsafe(), "not before its time")
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(asking)
      assert.strictEqual(error._tag, "AskTimeout")
    }))
})

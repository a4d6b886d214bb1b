/**
 * The room's rules alone (RoomRules), against any sequence of events from a
 * few members, with outboxes that fill up: nicks stay unique in the room; a
 * line reaches every member but its sender, in the order the room took it;
 * only members get lines (or one being released by the event); a member
 * whose outbox is full is dropped, told why, and the others told; a
 * room that closes when empty refuses joins once its last member parted.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as RoomRules from "../../../src/protocols/chat/RoomRules.ts"

const key = fc.integer({ min: 1, max: 4 })
const nick = fc.constantFrom("ann", "bob", "cy", "dee")
const event: fc.Arbitrary<RoomRules.Event<number>> = fc.oneof(
  fc.record({ _tag: fc.constant("Join" as const), key, nick }),
  fc.record({ _tag: fc.constant("Part" as const), key, quit: fc.boolean() }),
  fc.record({ _tag: fc.constant("Say" as const), key, text: fc.string({ maxLength: 5 }) }),
  fc.record({ _tag: fc.constant("Nick" as const), key, nick }),
  fc.record({ _tag: fc.constant("Who" as const), key }),
  fc.record({ _tag: fc.constant("Gone" as const), key })
)

describe("RoomRules", () => {
  it("for any events and outbox sizes: unique nicks, lines to members only (never their sender), slow members dropped once", () => {
    fc.assert(fc.property(fc.array(event, { maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 4, maxLength: 4 }), fc.boolean(), (events, capacity, closes) => {
      let room = RoomRules.empty<number>("r", closes)
      const outbox = new Map<number, Array<string>>()
      const released: Array<[number, string | undefined]> = []
      const delivery: RoomRules.Delivery<number> = {
        send: (k, line) => {
          const box = outbox.get(k) ?? []
          outbox.set(k, box)
          if (box.length >= capacity[k - 1]!) return false
          box.push(line)
          return true
        },
        release: (k, dropped) => released.push([k, dropped])
      }
      for (const e of events) {
        const wasMember = room.members.has(e.key)
        const before = room
        const boxesBefore = new Map([...outbox].map(([k, b]) => [k, b.length]))
        const releasedBefore = released.length
        const result = RoomRules.run(room, e, delivery)
        room = result.room
        // nicks are unique in the room
        const nicks = [...room.members.values()]
        assert.strictEqual(new Set(nicks).size, nicks.length)
        // a closed room refuses joins; only a room that closes when empty closes
        if (before.closed && e._tag === "Join") assert.strictEqual(result.answer, "closed")
        if (!closes) assert.isFalse(room.closed)
        // a Say from a member reaches no line of its own sender's outbox
        if (e._tag === "Say" && wasMember) {
          const own = outbox.get(e.key) ?? []
          assert.isFalse(own.slice(boxesBefore.get(e.key) ?? 0).some((l) => l.startsWith(`<${before.members.get(e.key)}> `)))
        }
        // every outbox that grew belongs to a member of the room before or after, or to the one who left
        for (const [k, box] of outbox) {
          const releasedNow = released.slice(releasedBefore).some(([r]) => r === k)
          if (box.length > (boxesBefore.get(k) ?? 0)) assert.isTrue(before.members.has(k) || room.members.has(k) || releasedNow, `a line to ${k}, never a member`)
        }
      }
      // a member is released at most once per membership, and dropped ones are told why
      for (const [, dropped] of released) if (dropped !== undefined) assert.strictEqual(dropped, "you are not reading fast enough")
    }), { numRuns: 500 })
  })

  it("the lines of one room: join, say, nick, who, part, quit and too slow", () => {
    const lines: Array<string> = []
    const delivery: RoomRules.Delivery<string> = { send: (k, l) => (lines.push(`${k}: ${l}`), k !== "slow"), release: (k, d) => lines.push(`${k} released${d === undefined ? "" : `: ${d}`}`) }
    let room = RoomRules.empty<string>("lobby", true)
    const apply = (e: RoomRules.Event<string>) => {
      const r = RoomRules.run(room, e, delivery)
      room = r.room
      return r.answer
    }
    assert.strictEqual(apply({ _tag: "Join", key: "a", nick: "ann" }), "ok")
    assert.strictEqual(apply({ _tag: "Join", key: "b", nick: "ann" }), "taken")
    assert.strictEqual(apply({ _tag: "Join", key: "b", nick: "bob" }), "ok")
    apply({ _tag: "Say", key: "a", text: "hi" })
    apply({ _tag: "Nick", key: "b", nick: "bo" })
    apply({ _tag: "Who", key: "a" })
    apply({ _tag: "Join", key: "slow", nick: "sl" })
    apply({ _tag: "Part", key: "b", quit: false })
    assert.strictEqual(apply({ _tag: "Part", key: "a", quit: true }), "last")
    assert.strictEqual(apply({ _tag: "Join", key: "c", nick: "cy" }), "closed")
    assert.deepStrictEqual(lines, [
      "a: *** ann joined #lobby",
      "a: *** bob joined #lobby",
      "b: *** bob joined #lobby",
      "b: <ann> hi",
      "a: *** bob is now known as bo",
      "b: *** bob is now known as bo",
      "a: *** in #lobby: ann bo",
      "a: *** sl joined #lobby",
      "b: *** sl joined #lobby",
      "slow: *** sl joined #lobby",
      "slow released: you are not reading fast enough",
      "a: *** sl was disconnected (too slow)",
      "b: *** sl was disconnected (too slow)",
      "b: *** you left #lobby",
      "b released",
      "a: *** bo left #lobby",
      "a released"
    ])
  })
})

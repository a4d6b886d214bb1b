/**
 * Admission as a state machine, without sockets: against a model (a slot
 * count and a FIFO of waiting connections) under any sequence of arrivals,
 * closes, accept back-offs and shutdown — slots never pass `maxConnections`,
 * waiting never passes `maxPending`, waiting connections start oldest first
 * and only when a slot is free — and the per-address handshake cap.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Admission, defaultHandshakesPerAddress } from "../../src/io/Admission.ts"

type Op = { op: "arrive" } | { op: "close" } | { op: "backoff"; on: boolean } | { op: "shutdown" }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ op: "arrive" as const }) },
  { weight: 4, arbitrary: fc.constant({ op: "close" as const }) },
  { weight: 1, arbitrary: fc.boolean().map((on) => ({ op: "backoff" as const, on })) },
  { weight: 1, arbitrary: fc.constant({ op: "shutdown" as const }) }
)

describe("Admission", () => {
  it("matches the model under any sequence of arrivals, closes, back-offs and shutdown", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 4 }), fc.array(op, { maxLength: 80 }), (maxConnections, maxPending, ops) => {
      const admission = new Admission<number>({ maxConnections, maxPending, maxHandshakesPerAddress: 1 })
      // the model
      let running: Array<number> = []
      let queue: Array<number> = []
      let backingOff = false
      let closing = false
      let next = 0
      const admitModel = () => {
        const started: Array<number> = []
        while (queue.length > 0 && !backingOff && !closing && running.length < maxConnections) {
          const id = queue.shift()!
          running.push(id)
          started.push(id)
        }
        return started
      }
      for (const o of ops) {
        switch (o.op) {
          case "arrive": {
            const id = next++
            const got = admission.arrive(id)
            const expected = closing
              ? "refuse-closing"
              : !backingOff && running.length < maxConnections && queue.length === 0
              ? "start"
              : queue.length >= maxPending
              ? "refuse-full"
              : "wait"
            assert.strictEqual(got, expected)
            if (got === "start") running.push(id)
            if (got === "wait") queue.push(id)
            break
          }
          case "close": {
            if (running.length === 0) break
            running = running.slice(1)
            assert.deepStrictEqual(admission.release(), admitModel())
            break
          }
          case "backoff": {
            backingOff = o.on
            assert.deepStrictEqual(admission.setBackingOff(o.on), o.on ? [] : admitModel())
            break
          }
          case "shutdown": {
            closing = true
            assert.deepStrictEqual(admission.close(), queue)
            queue = []
            break
          }
        }
        assert.strictEqual(admission.used, running.length)
        assert.strictEqual(admission.waiting, queue.length)
        assert.isAtMost(admission.used, maxConnections)
        assert.isAtMost(admission.waiting, maxPending)
      }
    }), { numRuns: 500 })
  })

  it("handshakes per address: up to the cap per address, others unaffected, counts come back", () => {
    const admission = new Admission<number>({ maxConnections: 100, maxPending: 0, maxHandshakesPerAddress: 2 })
    assert.isTrue(admission.beginHandshake("10.0.0.1"))
    assert.isTrue(admission.beginHandshake("10.0.0.1"))
    assert.isFalse(admission.beginHandshake("10.0.0.1"))
    assert.isTrue(admission.beginHandshake("10.0.0.2"))
    assert.strictEqual(admission.handshakesPending, 3)
    admission.endHandshake("10.0.0.1")
    assert.isTrue(admission.beginHandshake("10.0.0.1"))
    for (const a of ["10.0.0.1", "10.0.0.1", "10.0.0.2"]) admission.endHandshake(a)
    admission.endHandshake("10.0.0.9") // never began: ignored
    assert.strictEqual(admission.handshakesPending, 0)
  })

  it("the default per-address cap is a quarter of the slots, between 1 and 128", () => {
    assert.strictEqual(defaultHandshakesPerAddress(10_000), 128)
    assert.strictEqual(defaultHandshakesPerAddress(100), 25)
    assert.strictEqual(defaultHandshakesPerAddress(2), 1)
  })
})

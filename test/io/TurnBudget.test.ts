/**
 * The per-turn budget of push consumers (TurnBudget, through ReadSide): past
 * the budget chunks wait for their connection's turn, in arrival order, and
 * every chunk (and the end of input) still reaches its consumer once, in
 * order; over real sockets, an HTTP server with a budget of one chunk per
 * turn answers every request of many concurrent, pipelining and half-closing
 * clients.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as fc from "fast-check"
import * as Net from "node:net"
import { DrainSignal, type ReadWithOutcome } from "../../src/io/Connection.ts"
import { ReadSide } from "../../src/io/ReadSide.ts"
import { TurnBudget } from "../../src/io/TurnBudget.ts"
import * as Res from "../../src/protocols/http/Response.ts"
import * as Router from "../../src/protocols/http/Router.ts"
import * as HttpServer from "../../src/protocols/http/Server.ts"

const checkPhase = () => new Promise<void>((resolve) => setImmediate(resolve))

/** A push-reading connection on a shared budget that records what its consumer took and how its read ended. */
const reader = (id: number, budget: TurnBudget, log: Array<string>) => {
  const side = new ReadSide(id, new DrainSignal(), { onWait: () => {}, onTake: (chunk) => chunk, onDequeue: () => {} }, budget)
  const outcome: { ended?: string } = {}
  side.startPush(
    (chunk) => {
      log.push(`${id}:${Buffer.from(chunk).toString()}`)
      return true
    },
    (effect: Effect.Effect<ReadWithOutcome, unknown>) => {
      const exit = Effect.runSyncExit(effect)
      outcome.ended = Exit.isSuccess(exit) ? exit.value : "failed"
    }
  )
  return { side, outcome }
}

describe("TurnBudget", () => {
  it("takes at most its budget per turn, then serves the waiting connections in arrival order, each chunk once", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        // turns; in each, which connections (0..5) get a chunk, and which end their input
        fc.array(fc.array(fc.record({ conn: fc.nat(5), end: fc.boolean() }), { maxLength: 12 }), { minLength: 1, maxLength: 6 }),
        async (perTurn, turns) => {
          const budget = new TurnBudget(perTurn)
          const log: Array<string> = []
          const readers = Array.from({ length: 6 }, (_, id) => reader(id, budget, log))
          const sent = new Map<number, Array<string>>()
          const ended = new Set<number>()
          let n = 0
          for (const turn of turns) {
            const before = log.length
            for (const { conn, end } of turn) {
              if (ended.has(conn)) continue
              const text = `c${n++}`
              sent.set(conn, [...(sent.get(conn) ?? []), text])
              readers[conn]!.side.push(Buffer.from(text))
              if (end) {
                ended.add(conn)
                readers[conn]!.side.end()
              }
            }
            // taken at once while the budget lasts and nobody waits
            assert.isAtMost(log.length - before, perTurn)
            await checkPhase()
          }
          for (let i = 0; i < 40; i++) await checkPhase()
          // every chunk reached its consumer once, in order; an ended input ends the read after its chunks
          for (const [conn, texts] of sent) {
            assert.deepStrictEqual(log.filter((l) => l.startsWith(`${conn}:`)).map((l) => l.slice(2)), texts)
          }
          assert.strictEqual(log.length, n)
          for (const conn of ended) assert.strictEqual(readers[conn]!.outcome.ended, "eof")
        }
      ),
      { numRuns: 150 }
    )
  })

  it("serves the connections that wait in the order they began to wait", async () => {
    const budget = new TurnBudget(1)
    const log: Array<string> = []
    const readers = [0, 1, 2, 3].map((id) => reader(id, budget, log))
    for (const id of [2, 0, 3, 1]) readers[id]!.side.push(Buffer.from("x"))
    assert.deepStrictEqual(log, ["2:x"])
    await checkPhase()
    await checkPhase()
    await checkPhase()
    assert.deepStrictEqual(log, ["2:x", "0:x", "3:x", "1:x"])
  })

  it("takes only 8 per turn while connections arrive, its whole budget once they stop", async () => {
    const budget = new TurnBudget(100)
    const log: Array<string> = []
    const readers = Array.from({ length: 20 }, (_, id) => reader(id, budget, log))
    budget.arrived()
    await checkPhase() // the turn after an arrival: the accept queue may hold more
    for (const r of readers) r.side.push(Buffer.from("x"))
    assert.strictEqual(log.length, 8)
    await checkPhase() // nobody arrived since: the rest in one turn
    assert.strictEqual(log.length, 20)
  })

  it.effect("an HTTP server with one chunk per turn answers every request of concurrent, pipelining and half-closing clients", () =>
    Effect.gen(function*() {
      const app = Router.make([Router.get("/n/:i", (req) => Effect.succeed(Res.text(`${req.params.i}\n`)))])
      const server = yield* HttpServer.listen(app, { listen: { name: "turns", chunksPerTurn: 1 } })
      const port = (server.listener.address as { port: number }).port
      const request = (i: number) => `GET /n/${i} HTTP/1.1\r\nHost: t\r\n\r\n`
      /** One client: `rounds` writes of `depth` pipelined requests, each after the previous answers; ends with a FIN. */
      const client = (id: number, rounds: number, depth: number) =>
        new Promise<Array<string>>((resolve, reject) => {
          const socket = Net.connect({ host: "127.0.0.1", port })
          let text = ""
          let round = 0
          const bodies: Array<string> = []
          const send = () => socket.write(Array.from({ length: depth }, (_, k) => request(id * 1000 + round * depth + k)).join(""))
          socket.once("connect", send)
          socket.on("data", (chunk) => {
            text += chunk.toString("latin1")
            const answers = text.split("HTTP/1.1 200 OK").length - 1
            if (answers < (round + 1) * depth || !text.endsWith("\n")) return
            round++
            if (round < rounds) return send()
            socket.end()
          })
          socket.on("error", reject)
          socket.once("close", () => {
            for (const m of text.matchAll(/\r\n\r\n(\d+)\n/g)) bodies.push(m[1]!)
            resolve(bodies)
          })
        })
      const clients = Array.from({ length: 60 }, (_, id) => ({ id, rounds: 5 + (id % 4), depth: 1 + (id % 3) }))
      const results = yield* Effect.promise(() => Promise.all(clients.map((c) => client(c.id, c.rounds, c.depth))))
      clients.forEach((c, i) => {
        const expected = Array.from({ length: c.rounds * c.depth }, (_, k) => String(c.id * 1000 + k))
        assert.deepStrictEqual(results[i], expected)
      })
    }).pipe(Effect.scoped))
})

/**
 * Chat through the testkit: a model-based property test (fc.commands) with
 * several clients joining, parting, renaming (nicks unique per room), talking
 * and quitting — every client sees exactly the lines the model says, in
 * order — run against the single-node rooms and against cluster rooms
 * (effect/cluster's TestRunner, members on two nodes, node b dying now and then: its
 * members quit once in the others' eyes); plus line limits and a
 * stalled member being disconnected while the room goes on.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Scope } from "effect"
import { TestRunner } from "effect/cluster"
import * as fc from "fast-check"
import * as Chat from "../../../src/protocols/chat/Chat.ts"
import * as ClusterRooms from "../../../src/protocols/chat/ClusterRooms.ts"
import { MemoryServer, Property } from "../../../src/testkit/index.ts"
import type { MemoryEnd } from "../../../src/testkit/MemoryConnection.ts"
import { settle } from "../../../src/testkit/Script.ts"

interface Model {
  room: Array<string | undefined>
  nicks: Array<string>
  quit: Array<boolean>
  expected: Array<Array<string>>
  /** Cluster only: node b (the odd clients') died. */
  nodeDead: boolean
}
interface Real {
  clients: Array<MemoryEnd>
  received: Array<Array<string>>
  progress: () => number
  /** Cluster only: node `i` dies (its chat and room links end without its members leaving). */
  kill?: (node: number) => Effect.Effect<void>
}

const nick = (i: number) => `c${i}`
const others = (m: Model, room: string, except: number) =>
  m.room.map((r, j) => (r === room && j !== except && !m.quit[j] ? j : -1)).filter((j) => j >= 0)

/** Waits until the chat has handled everything (actors, writers, and its event-loop yields). */
const quiesce = (progress: () => number) =>
  Effect.gen(function*() {
    for (let round = 0; round < 100; round++) {
      const before = progress()
      yield* settle(progress)
      yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
      yield* settle(progress)
      if (progress() === before) return
    }
  })

const send = (real: Real, i: number, line: string) =>
  real.clients[i]!.write(Buffer.from(line + "\n")).pipe(Effect.orDie, Effect.andThen(quiesce(real.progress)))

const command = (
  name: string,
  check: (m: Readonly<Model>) => boolean,
  apply: (m: Model) => void,
  line: string,
  i: number
): Property.Command<Model, Real> => ({
  check,
  run: (m, real) => Effect.sync(() => apply(m)).pipe(Effect.andThen(send(real, i, line))),
  toString: () => `${nick(i)}: ${name}`
})

const join = (i: number, room: string) =>
  command(`/join ${room}`, (m) => !m.quit[i], (m) => {
    const old = m.room[i]
    if (old === room) return
    if (old !== undefined) {
      m.expected[i]!.push(`*** you left #${old}`)
      for (const j of others(m, old, i)) m.expected[j]!.push(`*** ${m.nicks[i]} left #${old}`)
    }
    if (others(m, room, i).some((j) => m.nicks[j] === m.nicks[i])) {
      m.room[i] = undefined
      return void m.expected[i]!.push(`*** error: the nick ${m.nicks[i]} is taken in #${room}; choose another with /nick`)
    }
    m.room[i] = room
    for (const j of [...others(m, room, i), i].sort((a, b) => a - b)) m.expected[j]!.push(`*** ${m.nicks[i]} joined #${room}`)
  }, `/join ${room}`, i)

const rename = (i: number, to: string) =>
  command(`/nick ${to}`, (m) => !m.quit[i], (m) => {
    const room = m.room[i]
    if (room === undefined) {
      m.nicks[i] = to
      return void m.expected[i]!.push(`*** you are now ${to}`)
    }
    if (others(m, room, i).some((j) => m.nicks[j] === to)) {
      return void m.expected[i]!.push(`*** error: the nick ${to} is taken in #${room}; choose another with /nick`)
    }
    for (const j of [...others(m, room, i), i].sort((a, b) => a - b)) m.expected[j]!.push(`*** ${m.nicks[i]} is now known as ${to}`)
    m.nicks[i] = to
  }, `/nick ${to}`, i)

const say = (i: number, text: string) =>
  command(`say ${text}`, (m) => !m.quit[i], (m) => {
    const room = m.room[i]
    if (room === undefined) m.expected[i]!.push("*** join a room first: /join ROOM")
    else for (const j of others(m, room, i)) m.expected[j]!.push(`<${m.nicks[i]}> ${text}`)
  }, text, i)

const part = (i: number) =>
  command("/part", (m) => !m.quit[i], (m) => {
    const room = m.room[i]
    if (room === undefined) return void m.expected[i]!.push("*** you are not in a room")
    m.expected[i]!.push(`*** you left #${room}`)
    for (const j of others(m, room, i)) m.expected[j]!.push(`*** ${m.nicks[i]} left #${room}`)
    m.room[i] = undefined
  }, "/part", i)

const quit = (i: number) =>
  command("/quit", (m) => !m.quit[i], (m) => {
    const room = m.room[i]
    if (room !== undefined) for (const j of others(m, room, i)) m.expected[j]!.push(`*** ${m.nicks[i]} quit`)
    m.expected[i]!.push("*** bye")
    m.quit[i] = true
    m.room[i] = undefined
  }, "/quit", i)

/** Node b dies (cluster only): its members (the odd clients) quit, once, in the eyes of everyone in their room. */
const nodeDies: Property.Command<Model, Real> = {
  check: (m) => !m.nodeDead,
  run: (m, real) =>
    Effect.sync(() => {
      m.nodeDead = true
      for (let i = 1; i < CLIENTS; i += 2) {
        const room = m.room[i]
        if (room !== undefined && !m.quit[i]) for (const j of others(m, room, i)) m.expected[j]!.push(`*** ${m.nicks[i]} quit`)
        m.quit[i] = true
        m.room[i] = undefined
      }
    }).pipe(Effect.andThen(real.kill!(1)), Effect.andThen(quiesce(real.progress))),
  toString: () => "node b dies"
}

const CLIENTS = 3
const client = fc.integer({ min: 0, max: CLIENTS - 1 })
const commands = fc.commands([
  fc.tuple(client, fc.constantFrom("red", "blue")).map(([i, r]) => join(i, r)),
  fc.tuple(client, fc.constantFrom("hi", "hello there", "ünïcödé ✓")).map(([i, t]) => say(i, t)),
  client.map(part),
  client.map(quit),
  // a few nicks, so that two members of a room try to share one
  fc.tuple(client, fc.constantFrom("c0", "c1", "zed")).map(([i, to]) => rename(i, to))
], { size: "+1" })
// the cluster runs also lose a node now and then
const clusterCommands = fc.commands([
  fc.tuple(client, fc.constantFrom("red", "blue")).map(([i, r]) => join(i, r)),
  fc.tuple(client, fc.constantFrom("hi", "hello there", "ünïcödé ✓")).map(([i, t]) => say(i, t)),
  client.map(part),
  client.map(quit),
  fc.tuple(client, fc.constantFrom("c0", "c1", "zed")).map(([i, to]) => rename(i, to)),
  fc.constant(nodeDies)
], { size: "+1" })

/** The chat's connection handlers: client i connects to handler i mod n (one per node for the cluster). */
type Chats = Effect.Effect<{ readonly handlers: ReadonlyArray<Chat.ChatServer["handler"]>; readonly kill?: (node: number) => Effect.Effect<void> }, never, Scope.Scope>

const localChat: Chats = Effect.map(Chat.make(), (chat) => ({ handlers: [chat.handler] }))

/** Two nodes' chat services (members on "a" and "b") over one in-process cluster (effect/cluster's TestRunner). */
const clusterChat: Chats = Effect.gen(function*() {
  const hosted = new ClusterRooms.Hosted()
  const context = yield* Layer.build(ClusterRooms.entityLayer({ backlog: 4096, hosted }).pipe(Layer.provideMerge(TestRunner.layer)))
  // each node's rooms and chat in a scope of its own: closing it is the node dying (its members do not leave)
  const scopes: Array<Scope.Closeable> = []
  const handlers = yield* Effect.forEach(["a", "b"], (node) =>
    Effect.gen(function*() {
      const nodeScope = yield* Scope.make()
      scopes.push(nodeScope)
      yield* Effect.addFinalizer(() => Scope.close(nodeScope, Exit.void))
      return yield* ClusterRooms.make({ node, hosted }).pipe(
        Effect.flatMap((rooms) => Chat.make({ rooms })),
        Effect.map((chat) => chat.handler),
        Effect.provide(context),
        Scope.provide(nodeScope)
      )
    }))
  return { handlers, kill: (node: number) => Scope.close(scopes[node]!, Exit.void) }
})

const setup = (chats: Chats) => Effect.gen(function*() {
  const built = yield* chats
  const servers = yield* Effect.forEach(built.handlers, (h) => MemoryServer.make(h))
  const clients: Array<MemoryEnd> = []
  const received: Array<Array<string>> = []
  let bytes = 0
  for (let i = 0; i < CLIENTS; i++) {
    const c = yield* servers[i % servers.length]!.connect()
    const lines: Array<string> = []
    let pending = ""
    const readAll: Effect.Effect<void> = c.read.pipe(
      Effect.flatMap((chunk) => {
        if (Option.isNone(chunk)) return Effect.void
        bytes += chunk.value.byteLength
        pending += Buffer.from(chunk.value).toString("utf8")
        const parts = pending.split("\r\n")
        pending = parts.pop()!
        lines.push(...parts)
        return readAll
      }),
      Effect.ignore
    )
    yield* Effect.forkScoped(readAll)
    clients.push(c)
    received.push(lines)
  }
  const real: Real = { clients, received, progress: () => bytes, ...(built.kill !== undefined ? { kill: built.kill } : {}) }
  for (let i = 0; i < CLIENTS; i++) yield* send(real, i, `/nick ${nick(i)}`)
  for (const lines of received) lines.length = 0 // drop the welcome and nick lines
  const model: Model = { room: Array(CLIENTS).fill(undefined), nicks: Array.from({ length: CLIENTS }, (_, i) => nick(i)), quit: Array(CLIENTS).fill(false), expected: received.map(() => []), nodeDead: false }
  return { model, real }
})

/** Runs the commands against the model and the chat, then compares every client's lines with the model's. */
const agree = (chats: Chats) => (cmds: Iterable<unknown>) =>
  Effect.gen(function*() {
    let final: { model: Model; real: Real } | undefined
    const built = setup(chats).pipe(Effect.tap((s) => Effect.sync(() => (final = s))))
    yield* Property.modelRun(built, cmds)
    for (let i = 0; i < CLIENTS; i++) {
      assert.deepStrictEqual(final!.real.received[i], final!.model.expected[i], `client ${nick(i)} after ${cmds}`)
    }
  })

describe("chat (model-based)", () => {
  it.effect("random joins, parts, messages and quits: every client sees exactly what the model says, in order", () =>
    Property.assert([commands], agree(localChat), { numRuns: 60 }))

  // the same model against rooms as effect/cluster entities, members on two nodes (live clock: the cluster's own timers)
  it.live("the same model against cluster rooms (members on two nodes, one of which may die): both agree with the model", () =>
    Property.assert([clusterCommands], agree(clusterChat), { numRuns: 25 }), 120_000)

  it.live("cluster rooms: a node dies; its member quits once in the others' eyes and the room goes on", () =>
    agree(clusterChat)([join(1, "red"), join(0, "red"), join(2, "red"), say(1, "hi"), nodeDies, say(0, "still here"), rename(2, "c1"), say(2, "me too")]))
})

describe("chat limits", () => {
  it.effect("a line over the limit is refused with an error line; the connection goes on", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make({ maxLineLength: 16 })
      const server = yield* MemoryServer.make(chat.handler)
      const c = yield* server.connect()
      yield* c.write(Buffer.from("x".repeat(40) + "\n/join r\n"))
      yield* quiesce(() => c.unread)
      const text = Buffer.from(c.readAvailable()).toString()
      assert.include(text, "*** error: line too long (max 16 bytes), ignored\r\n")
      assert.include(text, "joined #r")
    }).pipe(Effect.scoped))

  it.effect("a member whose outbox overflows is disconnected with a reason; the room goes on", () =>
    Effect.gen(function*() {
      const chat = yield* Chat.make({ outboxSize: 4 })
      const server = yield* MemoryServer.make(chat.handler)
      const talker = yield* server.connect()
      const stalled = yield* server.connect({ bufferSize: 64 }) // reads nothing, tiny buffer
      const listener = yield* server.connect()
      let heard = ""
      yield* Effect.forkScoped(Effect.forever(listener.read.pipe(Effect.map((o) => {
        if (Option.isSome(o)) heard += Buffer.from(o.value).toString()
      }))).pipe(Effect.ignore))
      const progress = () => heard.length
      for (const [c, n] of [[talker, "t"], [stalled, "s"], [listener, "l"]] as const) {
        yield* c.write(Buffer.from(`/nick ${n}\n/join r\n`))
        yield* quiesce(progress)
      }
      for (let i = 0; i < 40; i++) yield* talker.write(Buffer.from(`message ${i}\n`))
      yield* quiesce(progress)
      assert.include(heard, "*** s was disconnected (too slow)")
      assert.include(heard, "<t> message 39")
      const rest = Buffer.from(stalled.readAvailable()).toString()
      yield* quiesce(() => stalled.unread)
      assert.include(rest + Buffer.from(stalled.readAvailable()).toString(), "*** disconnected: you are not reading fast enough")
    }).pipe(Effect.scoped))
})

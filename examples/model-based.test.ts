// A model-based test with several clients (fiberd/testkit's MemoryServer): run with `npm test`.
// The protocol under test: a key-value store shared by every connection ("SET k v" → "OK", "GET k" → the value or "NONE").
import { assert, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import { Codec, type Connection, type ConnectionError, Lines } from "fiberd"
import { MemoryServer, Property } from "fiberd/testkit"

const makeStore = Effect.sync(() => {
  const store = new Map<string, string>() // shared: what one client sets, another reads
  return (conn: Connection): Effect.Effect<void, ConnectionError> =>
    Effect.gen(function*() {
      const next = Codec.reader(conn, new Lines.Decoder({ maxLength: 1024 }))
      while (true) {
        const line = yield* next
        if (Option.isNone(line)) return yield* conn.endWrite
        if (line.value._tag !== "Line") continue
        const [verb, key = "", value = ""] = line.value.text.split(" ")
        if (verb === "SET") store.set(key, value)
        yield* conn.write(Lines.encode([verb === "SET" ? "OK" : store.get(key) ?? "NONE"]))
      }
    })
})

// The model: a Map; the real system: the clients of one in-memory server, each with a reader of answer lines.
type Model = Map<string, string>
interface Client { readonly conn: Connection; readonly answer: Codec.Reader<Lines.Line> }

const ask = (client: Client, text: string) =>
  Effect.gen(function*() {
    yield* client.conn.write(Lines.encode([text]))
    const line = yield* client.answer
    return Option.isSome(line) && line.value._tag === "Line" ? line.value.text : "(nothing)"
  })

const set = (i: number, key: string, value: string): Property.Command<Model, ReadonlyArray<Client>, unknown> => ({
  check: () => true,
  run: (model, clients) => Effect.map(ask(clients[i]!, `SET ${key} ${value}`), (got) => {
    assert.strictEqual(got, "OK")
    model.set(key, value)
  }),
  toString: () => `client ${i}: SET ${key} ${value}`
})

const get = (i: number, key: string): Property.Command<Model, ReadonlyArray<Client>, unknown> => ({
  check: () => true,
  run: (model, clients) => Effect.map(ask(clients[i]!, `GET ${key}`), (got) => assert.strictEqual(got, model.get(key) ?? "NONE")),
  toString: () => `client ${i}: GET ${key}`
})

// Sizing, so that cross-client bugs are found: few clients and few keys (commands of different clients must
// touch the same key), and sequences long enough to interleave them (size "+1": up to ~50 commands).
const CLIENTS = 3
const client = fc.integer({ min: 0, max: CLIENTS - 1 })
const key = fc.constantFrom("a", "b")
const commands = fc.commands([
  fc.tuple(client, key, fc.constantFrom("1", "2", "x")).map(([i, k, v]) => set(i, k, v)),
  fc.tuple(client, key).map(([i, k]) => get(i, k))
], { size: "+1" })

const setup = Effect.gen(function*() {
  const server = yield* MemoryServer.make(yield* makeStore)
  const clients: Array<Client> = []
  for (let i = 0; i < CLIENTS; i++) {
    const conn = yield* server.connect()
    clients.push({ conn, answer: Codec.reader(conn, new Lines.Decoder({ maxLength: 1024 })) })
  }
  return { model: new Map<string, string>() as Model, real: clients as ReadonlyArray<Client> }
})

// Property.run makes a test function for vitest's `it`: a failure prints once — the shrunk commands, the
// seed, and what the failing command expected vs got.
it("three clients of one store agree with a Map, whatever the interleaving", Property.run([commands], (cmds) => Property.modelRun(setup, cmds), { numRuns: 100 }))

/**
 * The Connection contract as one test suite, run against both
 * implementations (NodeConnection over loopback, the testkit's in-memory
 * pair): whatever passes here, a handler cannot tell apart.
 */
import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import type { Scope } from "effect"
import type { Connection } from "../../src/io/Connection.ts"
import { settle } from "../../src/testkit/Script.ts"

export interface ContractPair {
  readonly server: Connection
  readonly client: Connection
  /** Abortive close of the client (TCP RST). */
  readonly resetClient: Effect.Effect<void>
}

const text = (s: string) => Buffer.from(s)
const readString = (conn: Connection) =>
  conn.read.pipe(Effect.map((o) => (Option.isSome(o) ? Buffer.from(o.value).toString() : null)))

/** Reads until `n` bytes arrived. */
const readExactly = (conn: Connection, n: number) =>
  Effect.gen(function*() {
    const parts: Array<Uint8Array> = []
    let got = 0
    while (got < n) {
      const chunk = yield* conn.read
      if (Option.isNone(chunk)) break
      parts.push(chunk.value)
      got += chunk.value.byteLength
    }
    return Buffer.concat(parts).toString()
  })

/** Lets bytes move (event-loop turns) until `done` holds. */
const readAfter = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000 && !done(); i++) yield* turn
    assert.isTrue(done())
  })

/** One turn of the event loop (its I/O phase included), so real sockets can move bytes. */
const turn = Effect.promise(() => new Promise<void>((r) => setImmediate(r)))

/**
 * Waits until the writer fiber is suspended and `progress` stopped moving across event-loop turns: it
 * waits for 'drain' (its only suspension), which cannot come while nobody reads.
 */
const stalled = (writer: Fiber.Fiber<unknown, unknown>, progress: () => number) =>
  Effect.gen(function*() {
    let quiet = 0
    for (let turns = 0; quiet < 3 && turns < 100_000; turns++) {
      const before = progress()
      yield* settle(progress)
      yield* turn
      quiet = writer.pollUnsafe() === undefined && progress() === before ? quiet + 1 : 0
    }
  })

export const connectionContract = (
  name: string,
  live: boolean,
  makePair: Effect.Effect<ContractPair, never, Scope.Scope>
) => {
  const test = live ? it.live : it.effect
  const scoped = <A, E>(f: (pair: ContractPair) => Effect.Effect<A, E>) =>
    Effect.scoped(Effect.flatMap(makePair, f))

  test(`${name}: bytes arrive in order, several buffers in one write arrive concatenated`, () =>
    scoped(({ client, server }) =>
      Effect.gen(function*() {
        yield* client.write(text("abc"))
        yield* client.write([text("de"), text("f"), text("gh")])
        assert.strictEqual(yield* readExactly(server, 8), "abcdefgh")
        yield* server.write(text("back"))
        assert.strictEqual(yield* readExactly(client, 4), "back")
      })
    ))

  test(`${name}: endWrite is a half-close: the peer reads EOF after the data and can still write back`, () =>
    scoped(({ client, server }) =>
      Effect.gen(function*() {
        yield* client.write(text("last words"))
        yield* client.endWrite
        assert.strictEqual(yield* readExactly(server, 10), "last words")
        assert.isNull(yield* readString(server))
        yield* server.write(text("reply after FIN"))
        assert.strictEqual(yield* readExactly(client, 15), "reply after FIN")
      })
    ))

  test(`${name}: a writer to a peer that does not read is pushed back, and resumes when the peer reads`, () =>
    scoped(({ client, server }) =>
      Effect.gen(function*() {
        const block = Buffer.alloc(64 * 1024, 1)
        let written = 0
        const writer = yield* Effect.forkChild(
          Effect.gen(function*() {
            while (written < 64 * 1024 * 1024) {
              yield* client.write(block)
              written += block.byteLength
            }
          }),
          { startImmediately: true }
        )
        yield* stalled(writer, () => written)
        assert.isUndefined(writer.pollUnsafe(), "the writer must be suspended")
        assert.isBelow(written, 32 * 1024 * 1024)
        const stalledAt = written
        let read = 0
        while (read < stalledAt + 1024 * 1024) {
          const chunk = yield* server.read
          if (Option.isNone(chunk)) break
          read += chunk.value.byteLength
        }
        assert.isAbove(written, stalledAt, "the writer resumed once the peer read")
        yield* Fiber.interrupt(writer)
      })
    ))

  test(`${name}: close: the peer reads EOF after everything written; local reads then fail ConnectionClosed`, () =>
    scoped(({ client, server }) =>
      Effect.gen(function*() {
        yield* server.write(text("bye"))
        yield* server.close
        assert.strictEqual(yield* readExactly(client, 3), "bye")
        assert.isNull(yield* readString(client))
        const error = yield* Effect.flip(server.read)
        assert.strictEqual(error._tag, "ConnectionClosed")
      })
    ))

  test(`${name}: readWith hands every chunk to its consumer in order, without resuming the fiber, until the consumer says stop; then EOF`, () =>
    scoped(({ client, server }) =>
      Effect.gen(function*() {
        yield* client.write(text("queued "))
        yield* settle(() => 0)
        yield* turn
        let seen = ""
        let calls = 0
        const reader = yield* Effect.forkChild(
          server.readWith((chunk) => {
            calls++
            seen += Buffer.from(chunk).toString()
            return !seen.includes("stop")
          }),
          { startImmediately: true }
        )
        for (const word of ["one ", "two ", "three "]) {
          yield* client.write(text(word))
          yield* readAfter(() => seen.endsWith(word))
        }
        assert.isUndefined(reader.pollUnsafe(), "the fiber sleeps while the consumer takes the chunks")
        yield* client.write(text("stop"))
        assert.strictEqual(yield* Fiber.join(reader), "yield")
        assert.strictEqual(seen, "queued one two three stop")
        assert.isAtLeast(calls, 2) // the queued chunk, then what arrived while it waited (TCP may merge writes)
        yield* client.endWrite
        assert.strictEqual(yield* server.readWith(() => true), "eof")
      })
    ))

  test(`${name}: a readWith consumer that throws fails the read with that defect (the connection's owner sees it)`, () =>
    scoped(({ client, server }) =>
      Effect.gen(function*() {
        const reader = yield* Effect.forkChild(Effect.exit(server.readWith(() => {
          throw new Error("consumer bug")
        })), { startImmediately: true })
        yield* client.write(text("x"))
        const exit = yield* Fiber.join(reader)
        assert.isTrue(exit._tag === "Failure" && String(exit.cause).includes("consumer bug"))
      })
    ))

  test(`${name}: writeUnsafe says false once the peer stops reading; write([]) then waits until the peer reads`, () =>
    scoped(({ client, server }) =>
      Effect.gen(function*() {
        const block = Buffer.alloc(64 * 1024, 2)
        let written = 0
        while (server.writeUnsafe(block)) {
          written += block.byteLength
          if (written > 256 * 1024 * 1024) break
          if (written % (4 * 1024 * 1024) === 0) yield* turn
        }
        written += block.byteLength
        assert.isBelow(written, 256 * 1024 * 1024, "the peer does not read: writeUnsafe must say stop")
        let waited = false
        const waiter = yield* Effect.forkChild(server.write([]).pipe(Effect.tap(() => Effect.sync(() => (waited = true)))), { startImmediately: true })
        yield* turn
        assert.isFalse(waited)
        assert.strictEqual((yield* readExactly(client, written)).length, written)
        yield* Fiber.join(waiter)
        assert.isTrue(waited)
      })
    ))

  test(`${name}: a reset peer makes a pending read fail with ConnectionReset`, () =>
    scoped(({ server, resetClient }) =>
      Effect.gen(function*() {
        // started immediately: the read is pending before the reset
        const reader = yield* Effect.forkChild(Effect.flip(server.read), { startImmediately: true })
        yield* resetClient
        const error = yield* Fiber.join(reader)
        assert.strictEqual(error._tag, "ConnectionReset")
      })
    ))
}

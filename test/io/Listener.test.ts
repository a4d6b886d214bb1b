/**
 * The listener over real sockets on 127.0.0.1 (port 0): concurrency,
 * backpressure, half-close, limits, idle timeout, drain, crash containment.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Option, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Os from "node:os"
import * as Path from "node:path"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import type { Connection, Handler } from "../../src/io/Connection.ts"
import * as Listener from "../../src/io/Listener.ts"
import * as Echo from "../../src/protocols/echo.ts"
import { type CapturedLog, captureLogs } from "../support/logs.ts"
import { closed, connect, prng, readAll, readBytes, writeChunks } from "../support/netClient.ts"

const withListener = <A, E>(
  options: Listener.ListenOptions,
  handler: Handler<E>,
  body: (listener: Listener.Listener) => Promise<A>
) =>
  Effect.scoped(Effect.gen(function*() {
    const listener = yield* Listener.make(options, handler)
    return yield* Effect.promise(() => body(listener))
  }))

/** Waits until `check` holds, checking once per event-loop turn (after I/O), for at most `ms`. */
const eventually = (check: () => boolean, ms = 5000) =>
  new Promise<void>((resolve, reject) => {
    const until = Date.now() + ms
    const poll = () => (check() ? resolve() : Date.now() > until ? reject(new Error("condition not reached in time")) : setImmediate(poll))
    poll()
  })

describe("Listener", () => {
  it.live("1,000 concurrent echo clients each get exactly their random bytes back, in random chunkings", () =>
    withListener({ name: "echo", backlog: 2048, maxConnections: 2000 }, Echo.handler, async (listener) => {
      const random = prng(862)
      const clients = Array.from({ length: 1000 }, async (_, i) => {
        const size = 1 + Math.floor(random() * 4096)
        const payload = Buffer.alloc(size)
        for (let b = 0; b < size; b++) payload[b] = Math.floor(random() * 256)
        const chunks: Array<Buffer> = []
        for (let at = 0; at < size;) {
          const n = 1 + Math.floor(random() * 700)
          chunks.push(payload.subarray(at, at + n))
          at += n
        }
        const socket = await connect(listener.address)
        const received = readAll(socket)
        await writeChunks(socket, chunks)
        socket.end()
        const got = await received
        assert.isTrue(got.equals(payload), `client ${i}: ${got.length} bytes back of ${size}`)
      })
      await Promise.all(clients)
      assert.strictEqual(listener.stats.accepted, 1000)
      assert.strictEqual(listener.stats.handlerFailures, 0)
      await eventually(() => listener.stats.active === 0)
    }))

  it.live("backpressure: a client that writes 64 MiB and reads nothing stalls the server; then every byte arrives", () =>
    withListener({ name: "echo" }, Echo.handler, async (listener) => {
      const total = 64 * 1024 * 1024
      const block = 64 * 1024
      const pattern = (offset: number) => {
        const b = Buffer.alloc(block)
        for (let i = 0; i < block; i += 4) b.writeUInt32LE(((offset + i) * 2654435761) >>> 0, i)
        return b
      }
      const socket = await connect(listener.address)
      socket.pause() // read nothing
      let written = 0
      let writing = true
      const writer = (async () => {
        while (written < total) {
          const ok = socket.write(pattern(written))
          written += block
          if (!ok) await new Promise<void>((resolve) => socket.once("drain", () => resolve()))
        }
        socket.end()
        writing = false
      })()
      const rssBefore = process.memoryUsage().rss
      // the event: echo is blocked writing to a client that reads nothing, so its socket queue fills and
      // the server pauses reading (backpressure); from then on it reads no more
      await eventually(() => listener.stats.readPauses > 0, 30_000)
      const stalledAt = listener.stats.bytesIn
      if (process.env.FIBERD_TEST_VERBOSE) console.log({ stalledAt, written })
      const rssGrowth = process.memoryUsage().rss - rssBefore
      assert.isTrue(writing, "the client must still be blocked")
      assert.isBelow(stalledAt, 24 * 1024 * 1024, `server read ${stalledAt} bytes while nobody read its output`)
      assert.isBelow(rssGrowth, 48 * 1024 * 1024, `rss grew by ${rssGrowth}`)
      // now read everything and check every byte
      let received = 0
      let corrupt = false
      let pending: Buffer = Buffer.alloc(0)
      const done = new Promise<void>((resolve) => socket.once("end", () => resolve()))
      socket.on("data", (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
        while (pending.length >= block) {
          if (!pending.subarray(0, block).equals(pattern(received))) corrupt = true
          received += block
          pending = pending.subarray(block)
        }
      })
      socket.resume()
      await writer
      await done
      assert.isFalse(corrupt)
      assert.strictEqual(received, total)
      assert.strictEqual(pending.length, 0)
    }))

  it.live("half-close: after the client ends its side, the server still sends everything back, then closes", () =>
    withListener({ name: "echo" }, Echo.handler, async (listener) => {
      const socket = await connect(listener.address)
      const received = readAll(socket)
      const payload = Buffer.from("x".repeat(200_000))
      socket.end(payload)
      const got = await received
      assert.strictEqual(got.length, payload.length)
      assert.isTrue(got.equals(payload))
    }))

  it.live("lingering after the handler ended is bounded by bytes too: a peer that keeps sending is reset after lingerBytes, long before the linger time", () => {
    // answers one line and ends: whatever the peer sends after that is discarded while lingering
    const answerOnce: Handler<never> = (conn) => Effect.andThen(Effect.ignore(conn.read), Effect.ignore(conn.write(Buffer.from("bye\n"))))
    return withListener({ name: "linger", lingerTimeout: "1 hour", lingerBytes: 64 * 1024 }, answerOnce, async (listener) => {
      const socket = await connect(listener.address)
      socket.on("error", () => {})
      let written = 0
      const chunk = Buffer.alloc(64 * 1024, 0x61)
      const limit = 256 * 1024 * 1024
      // write until the server resets the connection (or 256 MiB went out: then it read far past the bound)
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve())
        const pump = () => {
          while (written < limit && !socket.destroyed) {
            written += chunk.byteLength
            if (!socket.write(chunk)) return void socket.once("drain", pump)
          }
          if (written >= limit) resolve()
        }
        pump()
      })
      assert.isBelow(written, limit, "the server stopped reading long before 256 MiB")
      await eventually(() => listener.stats.active === 0)
    })
  })

  it.live("maxConnections: a connection over the limit waits unread until a slot frees, then is served", () =>
    withListener({ name: "echo", maxConnections: 2 }, Echo.handler, async (listener) => {
      const a = await connect(listener.address)
      const b = await connect(listener.address)
      const c = await connect(listener.address)
      await eventually(() => listener.stats.accepted === 3)
      let cGot = ""
      c.on("data", (d) => (cGot += d))
      c.write("third")
      a.write("first")
      assert.strictEqual((await readBytes(a, 5)).toString(), "first")
      // parked: accepted but held unread in the waiting list (its bytes stay in the kernel)
      assert.strictEqual(cGot, "", "the third connection must not be served yet")
      assert.strictEqual(listener.stats.limited, 1)
      assert.strictEqual(listener.stats.pending, 1)
      a.end()
      await eventually(() => cGot === "third")
      assert.strictEqual(listener.stats.pending, 0)
      b.destroy()
      c.destroy()
    }))

  it.live("maxPending: beyond the waiting room, connections are refused and counted, never lost silently", () =>
    withListener({ name: "echo", maxConnections: 1, maxPending: 1 }, Echo.handler, async (listener) => {
      const a = await connect(listener.address)
      const b = await connect(listener.address)
      const c = await connect(listener.address)
      const cClosed = closed(c)
      await cClosed
      assert.strictEqual(listener.stats.refused, 1)
      assert.strictEqual(listener.stats.pending, 1)
      a.destroy()
      b.write("ok")
      assert.strictEqual((await readBytes(b, 2)).toString(), "ok")
      b.destroy()
    }))

  it.effect("idleTimeout: a silent connection is closed after the timeout (TestClock), an active one is not", () =>
    Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make({ name: "echo", idleTimeout: "10 seconds" }, Echo.handler)
      const silent = yield* Effect.promise(() => connect(listener.address))
      const active = yield* Effect.promise(() => connect(listener.address))
      const silentClosed = closed(silent)
      let activeClosed = false
      active.once("close", () => (activeClosed = true))
      for (let second = 0; second < 14; second++) {
        active.write("ping")
        yield* Effect.promise(() => readBytes(active, 4))
        yield* TestClock.adjust("1 second")
      }
      yield* Effect.promise(() => silentClosed)
      assert.isFalse(activeClosed)
      assert.strictEqual(listener.stats.idleTimeouts, 1)
      active.destroy()
    })))

  it.live("sendTimeout: a response that makes no write progress closes the connection (the idle timeout is far away)", () =>
    withListener({ name: "flood", sendTimeout: "300 millis", idleTimeout: "5 minutes" }, (conn) =>
      Effect.gen(function*() {
        const block = Buffer.alloc(64 * 1024, 0x61)
        while (true) yield* conn.write(block)
      }), async (listener) => {
      const socket = await connect(listener.address)
      socket.on("error", () => {}) // the reset arrives once it reads again
      socket.pause() // reads nothing: the server's writes stop making progress
      await eventually(() => listener.stats.sendTimeouts === 1, 30_000)
      await eventually(() => listener.stats.active === 0)
      // the client finds the connection gone as soon as it reads again
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
      socket.resume()
      await closed
      assert.strictEqual(listener.stats.idleTimeouts, 0)
      assert.strictEqual(listener.stats.handlerFailures, 0, "a peer that does not read is not a handler failure")
    }))

  it.live("drain: an in-flight handler finishes inside the drain window; a new connection is refused", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const slow: Handler<never> = (conn) =>
        Effect.gen(function*() {
          yield* Effect.orDie(conn.read)
          yield* Effect.sleep("300 millis")
          yield* Effect.orDie(conn.write(Buffer.from("done")))
        })
      const listener = yield* Listener.make({ name: "slow", drainTimeout: "5 seconds" }, slow).pipe(Scope.provide(scope))
      const client = yield* Effect.promise(() => connect(listener.address))
      const reply = readAll(client)
      client.write("go")
      yield* Effect.promise(() => eventually(() => listener.stats.bytesIn === 2))
      // the shutdown closes the listening socket synchronously, before its first suspension
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      const refused = yield* Effect.promise(() =>
        connect(listener.address).then(() => false, (e: NodeJS.ErrnoException) => e.code === "ECONNREFUSED")
      )
      assert.isTrue(refused, "a connection during drain must be refused")
      assert.strictEqual((yield* Effect.promise(() => reply)).toString(), "done")
      yield* Fiber.join(closing)
    }))

  it.live("drain timeout: a handler still running after drainTimeout is interrupted and its socket closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      let interrupted = false
      const stuck: Handler<never> = () => Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
      const listener = yield* Listener.make({ name: "stuck", drainTimeout: "100 millis" }, stuck).pipe(
        Scope.provide(scope)
      )
      const client = yield* Effect.promise(() => connect(listener.address))
      yield* Effect.promise(() => eventually(() => listener.stats.active === 1))
      const gone = closed(client)
      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => gone)
      assert.isTrue(interrupted)
    }))

  it.live("a crashing handler is logged with its connection id and peer, its socket destroyed, others unaffected", () => {
    const logs: Array<CapturedLog> = []
    const crashOnBang: Handler<never> = (conn: Connection) =>
      Effect.gen(function*() {
        while (true) {
          const chunk = yield* Effect.orDie(conn.read)
          if (Option.isNone(chunk)) return yield* conn.endWrite
          if (Buffer.from(chunk.value).includes("!")) throw new Error("handler bug")
          yield* Effect.orDie(conn.write(chunk.value))
        }
      })
    return withListener({ name: "crashy" }, crashOnBang, async (listener) => {
      const good = await connect(listener.address)
      const bad = await connect(listener.address)
      good.write("hello")
      assert.strictEqual((await readBytes(good, 5)).toString(), "hello")
      const badPort = bad.localPort
      const badClosed = closed(bad)
      bad.write("boom!")
      await badClosed
      good.write(" again")
      assert.strictEqual((await readBytes(good, 6)).toString(), " again")
      const later = await connect(listener.address)
      later.write("still accepting")
      assert.strictEqual((await readBytes(later, 15)).toString(), "still accepting")
      assert.strictEqual(listener.stats.handlerFailures, 1)
      const entry = logs.find((l) => l.message.includes("connection handler failed"))
      assert.isDefined(entry)
      assert.strictEqual(entry!.annotations.connection, 2)
      assert.strictEqual(entry!.annotations.peer, `127.0.0.1:${badPort}`)
      assert.include(entry!.cause, "handler bug")
      good.destroy()
      later.destroy()
    }).pipe(Effect.provide(captureLogs(logs)))
  })

  it.live("metrics carry the service name and count accepted connections and bytes", () =>
    withListener({ name: "metered" }, Echo.handler, async (listener) => {
      const socket = await connect(listener.address)
      const reply = readAll(socket)
      socket.end("12345")
      await reply
      await eventually(() => listener.stats.active === 0)
      const snapshot = await Effect.runPromise(Metric.snapshot)
      const find = (id: string) => snapshot.find((s) => s.id === id && s.attributes?.service === "metered")
      assert.deepInclude(find("fiberd_connections_accepted_total")?.state, { count: 1 })
      assert.deepInclude(find("fiberd_bytes_in_total")?.state, { count: 5 })
      assert.deepInclude(find("fiberd_bytes_out_total")?.state, { count: 5 })
      assert.deepInclude(find("fiberd_connections_active")?.state, { value: 0 })
    }))

  it.live("Unix domain socket: serves on a path and replaces a stale socket file", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-"))
    const path = Path.join(dir, "echo.sock")
    const run = () =>
      withListener({ name: "unix", path }, Echo.handler, async (listener) => {
        assert.deepStrictEqual(listener.address, { _tag: "unix", path })
        const socket = await connect(listener.address)
        const reply = readAll(socket)
        socket.end("via unix")
        assert.strictEqual((await reply).toString(), "via unix")
      })
    return Effect.gen(function*() {
      yield* run()
      // leave a stale socket file behind, as a killed process would
      ChildProcess.spawnSync(process.execPath, [
        "-e",
        `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`
      ])
      assert.isTrue(Fs.existsSync(path))
      yield* run()
    })
  })

  it.live("IPv6 loopback", () =>
    withListener({ name: "v6", host: "::1" }, Echo.handler, async (listener) => {
      assert.strictEqual(listener.address._tag === "tcp" && listener.address.family, "IPv6")
      assert.strictEqual(Listener.formatAddress(listener.address), `[::1]:${(listener.address as { port: number }).port}`)
      const socket = await connect(listener.address)
      const reply = readAll(socket)
      socket.end("six")
      assert.strictEqual((await reply).toString(), "six")
    }))

  it.live("a port already in use is a ListenError naming the service and address", () =>
    Effect.scoped(Effect.gen(function*() {
      const first = yield* Listener.make({ name: "first" }, Echo.handler)
      const port = (first.address as { port: number }).port
      const error = yield* Effect.flip(Listener.make({ name: "second", port }, Echo.handler))
      assert.strictEqual(error._tag, "ListenError")
      assert.strictEqual(error.code, "EADDRINUSE")
      assert.include(error.message, `second: cannot listen: address already in use, EADDRINUSE (127.0.0.1:${port})`)
    })))
})

describe("Listener accept errors", () => {
  it.live("a burst of EMFILE accept errors backs off (few log lines, counted) and accepting goes on", () => {
    const logs: Array<CapturedLog> = []
    let server: import("node:net").Server | undefined
    const options: Listener.ListenOptions = {
      name: "emfile",
      acceptBackoff: { initial: "50 millis", max: "200 millis" },
      onServer: (s) => (server = s)
    }
    return withListener(options, Echo.handler, async (listener) => {
      const emfile = () => Object.assign(new Error("accept EMFILE"), { code: "EMFILE", syscall: "accept" })
      for (let i = 0; i < 100; i++) server!.emit("error", emfile())
      assert.strictEqual(listener.stats.acceptErrors, 100)
      // during the back-off a new connection waits; afterwards it is served
      const socket = await connect(listener.address)
      const reply = readAll(socket)
      socket.end("still here")
      assert.strictEqual((await reply).toString(), "still here")
      const warnings = logs.filter((l) => l.message.includes("accept failed"))
      assert.strictEqual(warnings.length, 1, "one warning per back-off window, not one per error")
      assert.include(warnings[0]!.message, "EMFILE")
      assert.strictEqual(listener.stats.limited, 1)
    }).pipe(Effect.provide(captureLogs(logs)))
  })
})

describe("Listener scopes", () => {
  it.live("each handler runs in a Scope of its own: its finalizers run when its connection ends", () => {
    let finalized = 0
    const handler: Handler<never, Scope.Scope> = (conn) =>
      Effect.addFinalizer(() => Effect.sync(() => finalized++)).pipe(Effect.andThen(Effect.orDie(conn.read)), Effect.asVoid)
    return Effect.scoped(Effect.gen(function*() {
      const listener = yield* Listener.make({ name: "scoped" }, handler)
      const socket = yield* Effect.promise(() => connect(listener.address))
      socket.end("x")
      yield* Effect.promise(() => closed(socket))
      yield* Effect.promise(() => eventually(() => finalized === 1))
      assert.strictEqual(finalized, 1, "before the listener closes")
    }))
  })
})

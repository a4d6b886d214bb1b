/**
 * The log actors: nothing told is lost (100,000 entries, then the scope
 * closes), rotation with reopen, unwritable sinks, formats, the error-log
 * Logger and its syslog sink.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { execFileSync } from "node:child_process"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as AccessLog from "../../src/actors/AccessLog.ts"
import * as ErrorLog from "../../src/actors/ErrorLog.ts"
import * as LogWriter from "../../src/actors/LogWriter.ts"
import * as Response from "../../src/protocols/http/Response.ts"
import * as Serve from "../../src/protocols/http/Serve.ts"
import { Script } from "../../src/testkit/index.ts"

const tmp = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-log-"))
const entry = (i: number, extra: Partial<AccessLog.AccessEntry> = {}): AccessLog.AccessEntry => ({
  peer: "127.0.0.1",
  time: Date.UTC(2026, 10, 23, 1, 2, 3),
  requestLine: `GET /item/${i} HTTP/1.1`,
  status: 200,
  bytes: 12,
  durationMs: 1,
  ...extra
})
const clf = /^(\S+) (\S+) (\S+) \[(\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?$/
const lines = (file: string) => Fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "")

describe("AccessLog", () => {
  it("every line is printable ASCII whatever a client sends (control and non-ASCII bytes as \\xNN), and written byte for byte", () => {
    const format = AccessLog.formatEntry("combined")
    const printable = /^[\x20-\x7e]*\n$/
    fc.assert(fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" }), (line, agent, user) => {
      assert.match(format(entry(0, { requestLine: line, userAgent: agent, user })), printable)
      const text = format(entry(0, { requestLine: line, userAgent: agent }))
      assert.match(text, printable)
      // unescaping gives back what the client sent: UTF-8 bytes of the characters above U+00FF, latin1 bytes of the rest
      const quoted = [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!)
      const unescape = (s: string) => Buffer.from(s.replace(/\\x([0-9a-f]{2})|\\(.)/g, (_, h, c) => (h !== undefined ? String.fromCharCode(parseInt(h, 16)) : c)), "latin1")
      const bytesOf = (s: string) => Buffer.concat([...s].map((ch) => Buffer.from(ch, ch.codePointAt(0)! > 0xff ? "utf8" : "latin1")))
      assert.deepStrictEqual(unescape(quoted[0]!), bytesOf(line))
      assert.deepStrictEqual(unescape(quoted[2]!), bytesOf(agent === "" ? "-" : agent))
    }))
  })

  it("formats Common and Combined Log Format lines", () => {
    const e = entry(1, { referer: "http://a/", userAgent: "curl/8 \"quoted\"" })
    assert.strictEqual(AccessLog.formatEntry("common")(e), "127.0.0.1 - - [23/Nov/2026:01:02:03 +0000] \"GET /item/1 HTTP/1.1\" 200 12\n")
    assert.strictEqual(
      AccessLog.formatEntry("combined")(e),
      "127.0.0.1 - - [23/Nov/2026:01:02:03 +0000] \"GET /item/1 HTTP/1.1\" 200 12 \"http://a/\" \"curl/8 \\\"quoted\\\"\"\n"
    )
  })

  it("any request line, referer and user agent still make one well-formed line", () => {
    fc.assert(fc.property(fc.string(), fc.string(), fc.string(), fc.integer({ min: 100, max: 599 }), (line, ref, ua, status) => {
      const text = AccessLog.formatEntry("combined")(entry(0, { requestLine: line, referer: ref, userAgent: ua, status }))
      assert.isTrue(text.endsWith("\n") && text.indexOf("\n") === text.length - 1, JSON.stringify(text))
      assert.match(text.slice(0, -1), clf)
    }), { numRuns: 500 })
  })

  it.live("100,000 entries told, then the scope closes: the file holds exactly 100,000 well-formed lines, in order", () => {
    const file = Path.join(tmp(), "sub", "access.log")
    return Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const log = yield* AccessLog.make({ path: file, format: "common" })
        for (let i = 0; i < 100_000; i++) log.tellUnsafe(entry(i))
      }))
      const got = lines(file)
      assert.strictEqual(got.length, 100_000)
      got.forEach((l, i) => {
        const m = clf.exec(l)
        if (m === null || m[5] !== `GET /item/${i} HTTP/1.1`) assert.fail(`line ${i}: ${l}`)
      })
    })
  })

  it.live("rotation: rename the file, reopen, keep logging: no entry lost or duplicated across the two files", () => {
    const dir = tmp()
    const file = Path.join(dir, "access.log")
    return Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const log = yield* AccessLog.make({ path: file, format: "common" })
        for (let i = 0; i < 20_000; i++) {
          log.tellUnsafe(entry(i))
          if (i === 7_000) {
            yield* log.flush // some batches are in the old file
            Fs.renameSync(file, `${file}.1`)
            yield* log.reopen
          }
        }
      }))
      const all = [...lines(`${file}.1`), ...lines(file)].map((l) => Number(/item\/(\d+)/.exec(l)![1]))
      assert.isAbove(lines(`${file}.1`).length, 0)
      assert.isAbove(lines(file).length, 0)
      assert.deepStrictEqual(all, Array.from({ length: 20_000 }, (_, i) => i))
    })
  })

  it.live("an unwritable sink (disk full: /dev/full) is no crash: the failure shows in stats, metrics and on stderr", () =>
    Effect.gen(function*() {
      const stderr: Array<string> = []
      const write = process.stderr.write.bind(process.stderr)
      process.stderr.write = ((chunk: string) => (stderr.push(String(chunk)), true)) as typeof process.stderr.write
      try {
        const stats = yield* Effect.scoped(Effect.gen(function*() {
          const log = yield* AccessLog.make({ path: "/dev/full", allowNonRegular: true })
          for (let i = 0; i < 10; i++) log.tellUnsafe(entry(i))
          yield* log.flush
          for (let i = 0; i < 10; i++) log.tellUnsafe(entry(i))
          yield* log.flush
          return log.stats
        }))
        assert.strictEqual(stats.dropped, 20)
        assert.strictEqual(stats.written, 0)
        assert.isAtLeast(stats.writeErrors, 2)
        assert.strictEqual(stderr.filter((s) => s.includes("/dev/full") && s.includes("ENOSPC")).length, 1, stderr.join())
        const metric = (yield* Metric.snapshot).find((m) => m.id === "fiberd_log_dropped_total" && m.attributes?.log === "access-log")
        assert.isAtLeast((metric?.state as { count: number }).count, 20)
      } finally {
        process.stderr.write = write
      }
    }))
})

describe("ErrorLog", () => {
  it.live("Effect.log* goes to the error-log file with syslog severities and annotations (text and JSON)", () => {
    const dir = tmp()
    const text = Path.join(dir, "error.log")
    const json = Path.join(dir, "error.json")
    const program = Effect.gen(function*() {
      yield* Effect.logInfo("listening").pipe(Effect.annotateLogs({ service: "echo" }))
      yield* Effect.logWarning("slow")
      yield* Effect.logError("handler failed", new Error("kaboom"))
    })
    return Effect.gen(function*() {
      yield* program.pipe(Effect.provide(ErrorLog.layer({ path: text })))
      yield* program.pipe(Effect.provide(ErrorLog.layer({ path: json, format: "json" })))
      const t = Fs.readFileSync(text, "utf8")
      assert.match(t, /^\d{4}-\d\d-\d\dT[\d:.]+Z info \[service=echo\] listening$/m)
      assert.match(t, / warning slow$/m)
      assert.match(t, / err handler failed kaboom$/m)
      const j = lines(json).map((l) => JSON.parse(l))
      assert.deepStrictEqual(j.map((x) => x.severity), ["info", "warning", "err"])
      assert.strictEqual(j[0].service, "echo")
    })
  })

  it.live("the optional syslog sink sends RFC 5424 messages over UDP", () =>
    Effect.gen(function*() {
      const server = Dgram.createSocket("udp4")
      const received: Array<string> = []
      const first = new Promise<void>((resolve) => server.once("message", () => resolve()))
      server.on("message", (m) => received.push(m.toString()))
      yield* Effect.promise(() => new Promise<void>((r) => server.bind(0, "127.0.0.1", () => r())))
      const port = server.address().port
      yield* Effect.logError("disk on fire").pipe(
        Effect.provide(ErrorLog.layer({ path: Path.join(tmp(), "e.log"), syslog: { host: "127.0.0.1", port } }))
      )
      yield* Effect.promise(() => first)
      server.close()
      assert.strictEqual(received.length, 1)
      // facility daemon (3) * 8 + err (3) = 27
      assert.match(received[0]!, /^<27>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ fiberd \d+ - - disk on fire$/)
    }))
})

describe("AccessLog.layerTest", () => {
  it.effect("an HTTP server logging to the in-memory access log: entries and formatted lines are readable", () =>
    Effect.gen(function*() {
      const log = yield* AccessLog.AccessLog
      const http = yield* Serve.make(() => Effect.succeed(Response.text("ok\n")), { accessLog: log })
      yield* Script.run(http.handler, [Script.send("GET /a HTTP/1.1\r\nHost: t\r\nUser-Agent: ua/1\r\n\r\n")])
      const test = yield* AccessLog.AccessLogTest
      assert.deepStrictEqual(test.entries.map((e) => [e.requestLine, e.status, e.bytes]), [["GET /a HTTP/1.1", 200, 3]])
      assert.match(test.lines[0]!, /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/a HTTP\/1\.1" 200 3 "-" "ua\/1"\n$/)
    }).pipe(Effect.provide(AccessLog.layerTest("combined"))))
})

describe("logs never block or balloon the loop", () => {
  const fifo = () => {
    const path = Path.join(tmp(), "log.fifo")
    execFileSync("mkfifo", [path])
    return path
  }
  const quietStderr = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const write = process.stderr.write.bind(process.stderr)
        process.stderr.write = (() => true) as typeof process.stderr.write
        return write
      }),
      () => effect,
      (write) => Effect.sync(() => void (process.stderr.write = write))
    )

  it.live("a FIFO is refused as a log path unless allowed; an allowed FIFO without a reader never freezes the loop", () =>
    Effect.gen(function*() {
      const path = fifo()
      const refused = yield* Effect.flip(LogWriter.checkDestination("access log", path))
      assert.include(refused.message, "is not a regular file")
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(LogWriter.checkDestination("access log", path, { allowNonRegular: true }))))
      const stats = yield* quietStderr(Effect.scoped(Effect.gen(function*() {
        const log = yield* AccessLog.make({ path: path, allowNonRegular: true })
        for (let i = 0; i < 100; i++) log.tellUnsafe(entry(i))
        yield* log.flush // returns: the open fails at once (ENXIO) instead of blocking a thread
        return { ...log.stats }
      })))
      assert.strictEqual(stats.dropped, 100)
      assert.strictEqual(stats.written, 0)
    }))

  it.live("a FIFO whose reader never reads: the log drops and counts, memory stays bounded (maxQueued)", () =>
    Effect.gen(function*() {
      const path = fifo()
      // a reader that opens the FIFO and never reads (O_NONBLOCK so the open itself does not wait)
      const reader = Fs.openSync(path, Fs.constants.O_RDONLY | Fs.constants.O_NONBLOCK)
      try {
        const stats = yield* quietStderr(Effect.scoped(Effect.gen(function*() {
          const log = yield* AccessLog.make({ path: path, allowNonRegular: true, maxQueued: 1000 })
          for (let i = 0; i < 50_000; i++) log.tellUnsafe(entry(i))
          assert.isAtMost(log.depth(), 1000, "the queue is bounded")
          yield* log.flush
          return { ...log.stats }
        })))
        assert.isAtLeast(stats.dropped, 49_000, "entries beyond the bound, and those the pipe would not take, are dropped and counted")
        assert.strictEqual(stats.dropped + stats.written, 50_000, "every entry is written or counted as dropped")
      } finally {
        Fs.closeSync(reader)
      }
    }))

  it.live("a path under /proc is refused at startup and, used anyway, fails fast instead of spinning", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(LogWriter.checkDestination("access log", "/proc/fiberd-test/access.log"))
      assert.include(refused.message, "/proc")
      const stats = yield* quietStderr(Effect.scoped(Effect.gen(function*() {
        const log = yield* AccessLog.make({ path: "/proc/fiberd-test/access.log" })
        log.tellUnsafe(entry(1))
        yield* log.flush
        return { ...log.stats }
      })))
      assert.strictEqual(stats.dropped, 1)
    }))

  it.live("a path that reaches /proc or /sys through `..` or a symlink is refused at startup too (the real path is judged)", () =>
    Effect.gen(function*() {
      const dir = tmp()
      Fs.symlinkSync("/proc/self", Path.join(dir, "self"))
      Fs.symlinkSync("/proc/self/environ", Path.join(dir, "environ.log"))
      Fs.symlinkSync("/sys", Path.join(dir, "sys"))
      const depth = Path.resolve(dir).split("/").length - 1
      const cases = [
        `${dir}/${"../".repeat(depth)}proc/self/fd/1`,
        `${dir}/self/new.log`,
        `${dir}/environ.log`,
        `${dir}/sys/kernel/new/access.log`
      ]
      for (const path of cases) {
        const refused = yield* Effect.flip(LogWriter.checkDestination("access log", path))
        assert.match(refused.message, /under \/(proc|sys)/, path)
      }
      // an ordinary relative path with `..` that stays out of them is fine
      yield* LogWriter.checkDestination("access log", `${dir}/a/../b/access.log`)
    }))

  it.live("the file is opened at start (descriptors may run out later), and a reopen that cannot open the path keeps writing to the file it has", () =>
    Effect.gen(function*() {
      const dir = Path.join(tmp(), "logs")
      const file = Path.join(dir, "access.log")
      const stats = yield* quietStderr(Effect.scoped(Effect.gen(function*() {
        const log = yield* AccessLog.make({ path: file, format: "common" })
        assert.isTrue(Fs.existsSync(file), "opened before any entry")
        // rotation to a path that cannot be opened now (its directory is a file): nothing is lost
        Fs.renameSync(dir, `${dir}.1`)
        Fs.writeFileSync(dir, "not a directory")
        yield* log.reopen
        log.tellUnsafe(entry(1))
        yield* log.flush
        assert.deepStrictEqual(lines(`${dir}.1/access.log`).map((l) => /item\/(\d+)/.exec(l)![1]), ["1"], "written to the file it had")
        // once the path can be opened again, the next batch goes there
        Fs.rmSync(dir)
        yield* log.reopen
        log.tellUnsafe(entry(2))
        yield* log.flush
        assert.deepStrictEqual(lines(file).map((l) => /item\/(\d+)/.exec(l)![1]), ["2"])
        return { ...log.stats }
      })))
      assert.strictEqual(stats.dropped, 0)
      assert.strictEqual(stats.written, 2)
    }))

  it.effect("a log directory removed while running is noticed within a second and the file recreated (TestClock)", () =>
    Effect.gen(function*() {
      const dir = Path.join(tmp(), "logs")
      const file = Path.join(dir, "access.log")
      const log = yield* AccessLog.make({ path: file, format: "common" })
      log.tellUnsafe(entry(1))
      yield* log.flush
      assert.strictEqual(lines(file).length, 1)
      Fs.rmSync(dir, { recursive: true })
      yield* TestClock.adjust("1 second")
      log.tellUnsafe(entry(2))
      yield* log.flush
      assert.deepStrictEqual(lines(file).map((l) => /item\/(\d+)/.exec(l)![1]), ["2"], "a new file at the path holds what came after")
      assert.strictEqual(log.stats.written, 2)
    }))
})

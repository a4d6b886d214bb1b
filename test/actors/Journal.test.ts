/**
 * The error log on the systemd journal: sd-daemon(3) `<N>` priority prefixes
 * on every line (cause lines too, no timestamp), chosen only when
 * `JOURNAL_STREAM` names this process's stderr; and the real program, its
 * stderr a file named by `JOURNAL_STREAM`, writes them (a warning as `<4>`,
 * a reload's information as `<6>`).
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as ErrorLog from "../../src/actors/ErrorLog.ts"
import { mainScript } from "../support/serverProcess.ts"

const entry = (level: ErrorLog.ErrorEntry["level"], cause = ""): ErrorLog.ErrorEntry =>
  ({ time: 0, level, message: "something happened", annotations: { service: "web" }, cause, fiber: 1 })

describe("error log on the journal", () => {
  it("<N> on every line, by severity; no timestamp; JSON one prefixed line", () => {
    assert.strictEqual(ErrorLog.formatJournal("text")(entry("Warn")), "<4>warning [service=web] something happened\n")
    assert.strictEqual(ErrorLog.formatJournal("text")(entry("Error", "Error: boom\n  at x")), "<3>err [service=web] something happened\n<3>    Error: boom\n<3>      at x\n")
    assert.deepStrictEqual((["Fatal", "Error", "Warn", "Info", "Debug"] as const).map(ErrorLog.priorityOf), [2, 3, 4, 6, 7])
    assert.match(ErrorLog.formatJournal("json")(entry("Info")), /^<6>\{"time":/)
  })

  it("JOURNAL_STREAM must name this process's stderr", () => {
    const stat = Fs.fstatSync(2)
    assert.isTrue(ErrorLog.stderrIsJournal({ JOURNAL_STREAM: `${stat.dev}:${stat.ino}` }))
    assert.isFalse(ErrorLog.stderrIsJournal({ JOURNAL_STREAM: `${stat.dev}:${stat.ino + 1}` }))
    assert.isFalse(ErrorLog.stderrIsJournal({}))
  })

  it("the program with its stderr on a 'journal': a refused connection is <4>, a reload's notice <6>", { timeout: 30_000 }, async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-journal-"))
    const table = Path.join(dir, "fiberd.json")
    Fs.writeFileSync(table, JSON.stringify({ services: [{ name: "echo", protocol: "echo", listen: "127.0.0.1:0", maxConnections: 1, maxPending: 0 }] }))
    const journal = Path.join(dir, "journal")
    const fd = Fs.openSync(journal, "a")
    const stat = Fs.fstatSync(fd)
    const child = spawn(process.execPath, [mainScript, "--config", table], {
      cwd: dir,
      stdio: ["ignore", "pipe", fd],
      env: { ...process.env, JOURNAL_STREAM: `${stat.dev}:${stat.ino}` }
    })
    Fs.closeSync(fd)
    let out = ""
    const port = await new Promise<number>((resolve) =>
      child.stdout!.on("data", (d) => {
        out += d
        const m = /^echo\t\S+\t127\.0\.0\.1:(\d+)$/m.exec(out)
        if (m !== null) resolve(Number(m[1]))
      }))
    const first = Net.connect({ host: "127.0.0.1", port })
    await new Promise((resolve) => first.once("connect", resolve))
    const second = Net.connect({ host: "127.0.0.1", port })
    second.on("error", () => {})
    await new Promise((resolve) => second.once("close", resolve)) // refused: over maxConnections, nothing may wait
    child.kill("SIGHUP") // a reload says so at info level
    await new Promise<void>((resolve) => {
      const check = () => (Fs.readFileSync(journal, "utf8").includes("SIGHUP: table reloaded") ? resolve() : setTimeout(check, 20))
      check()
    })
    first.destroy()
    child.kill("SIGTERM")
    await new Promise((resolve) => child.once("exit", resolve))
    const lines = Fs.readFileSync(journal, "utf8").split("\n").filter((l) => l !== "")
    assert.isTrue(lines.some((l) => /^<4>warning \[service=echo\] refused a connection/.test(l)), lines.join("\n"))
    assert.isTrue(lines.some((l) => /^<6>info SIGHUP: table reloaded/.test(l)), lines.join("\n"))
    assert.isTrue(lines.every((l) => /^<[0-7]>/.test(l)), lines.join("\n"))
  })
})

/**
 * `fiberd unit`: a Type=notify service unit and one socket unit per
 * service (ListenStream=, ListenDatagram= for UDP; FileDescriptorName= the
 * service's name), which systemd's own
 * `systemd-analyze verify` accepts without a complaint about them.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { runOnce, start } from "../support/serverProcess.ts"

describe("fiberd unit", () => {
  it("writes the units for a table; systemd-analyze verify accepts them; every service has its socket (datagram for UDP)", { timeout: 60_000 }, async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-units-"))
    const table = Path.join(dir, "fiberd.json")
    Fs.writeFileSync(table, JSON.stringify({
      drainTimeout: "20 seconds",
      services: [
        { name: "web", protocol: "http", listen: "127.0.0.1:8080" },
        { name: "echo", protocol: "echo", listen: "[::1]:7007" },
        { name: "echo-udp", protocol: "echo", transport: "udp", listen: "127.0.0.1:7007" },
        { name: "local", protocol: "echo", transport: "unix", listen: Path.join(dir, "echo.sock") }
      ]
    }))
    const out = Path.join(dir, "units")
    const made = await runOnce(["unit", "--config", table, "--out", out])
    assert.strictEqual(made.code, 0, made.stderr)
    const files = made.stdout.trim().split("\n").map((f) => Path.basename(f))
    assert.deepStrictEqual(files, ["fiberd.service", "fiberd-web.socket", "fiberd-echo.socket", "fiberd-echo-udp.socket", "fiberd-local.socket"])
    const service = Fs.readFileSync(Path.join(out, "fiberd.service"), "utf8")
    assert.match(service, /^Type=notify$/m)
    assert.match(service, /^NotifyAccess=all$/m)
    assert.match(service, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m)
    assert.match(service, /^WatchdogSec=30s$/m)
    assert.match(service, /^TimeoutStopSec=30s$/m) // the drain's 20 s and some
    assert.match(service, new RegExp(`^ExecStart=\\S+ \\S+/bin/fiberd\\.js --config ${table.replace(/[/.]/g, "\\$&")}$`, "m"))
    assert.match(service, /^Requires=fiberd-web\.socket fiberd-echo\.socket fiberd-echo-udp\.socket fiberd-local\.socket$/m)
    assert.match(Fs.readFileSync(Path.join(out, "fiberd-web.socket"), "utf8"), /^ListenStream=127\.0\.0\.1:8080\nFileDescriptorName=web$/m)
    assert.match(Fs.readFileSync(Path.join(out, "fiberd-echo.socket"), "utf8"), /^ListenStream=\[::1\]:7007\nFileDescriptorName=echo$/m)
    const udp = Fs.readFileSync(Path.join(out, "fiberd-echo-udp.socket"), "utf8")
    assert.match(udp, /^ListenDatagram=127\.0\.0\.1:7007\nFileDescriptorName=echo-udp$/m)
    assert.notMatch(udp, /Backlog/)
    assert.match(Fs.readFileSync(Path.join(out, "fiberd-local.socket"), "utf8"), new RegExp(`^ListenStream=${Path.join(dir, "echo.sock").replace(/[/.]/g, "\\$&")}$`, "m"))
    const verify = await new Promise<{ code: number; text: string }>((resolve) =>
      execFile("systemd-analyze", ["verify", ...files.map((f) => Path.join(out, f))], { timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : Number((error as NodeJS.ErrnoException).code ?? 1), text: stdout + stderr })))
    assert.strictEqual(verify.code, 0, verify.text)
    assert.notMatch(verify.text, /fiberd[\w-]*\.(service|socket)/, verify.text)
  })

  it("--pid-file: the pid once the services listen, removed at exit (single process and prefork)", { timeout: 60_000 }, async () => {
    for (const workers of [1, 2]) {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-pid-"))
      const pidPath = Path.join(dir, "fiberd.pid")
      const server = await start({ workers, services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }] }, ["--pid-file", pidPath])
      // the line is printed before the file is written: wait for the file, not a time
      while (!Fs.existsSync(pidPath)) await new Promise((r) => setImmediate(r))
      assert.strictEqual(Fs.readFileSync(pidPath, "utf8"), `${server.child.pid}\n`)
      server.child.kill("SIGTERM")
      assert.strictEqual(await server.exited, 0)
      assert.isFalse(Fs.existsSync(pidPath), "removed at exit")
    }
  })
})

/**
 * sd_notify with a notify socket the test makes (a Unix datagram socket,
 * through Python): READY=1 only once the services accept, RELOADING=1 with
 * MONOTONIC_USEC= and READY=1 around SIGHUP, WATCHDOG=1 at half of
 * WATCHDOG_USEC from the event loop — and none while the loop is blocked on
 * purpose (`/api/pbkdf2?inline=1`) — and STOPPING=1 at SIGTERM. fiberd sends
 * them with systemd's `systemd-notify` (pretest installs systemd's tools).
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { mainScript } from "../support/serverProcess.ts"

/**
 * A notify socket in `dir`, or in the abstract namespace (`@name`, as systemd's) when `abstract`
 * (Python binds it): the datagrams received, with the ms since it bound, and a wait on them.
 */
const notifyListener = async (dir: string, abstract = false) => {
  const path = abstract ? `@fiberd-test-${process.pid}-${Path.basename(dir)}` : Path.join(dir, "notify.sock")
  const listener = spawn("/usr/bin/python3", [Path.join(import.meta.dirname, "notify_listener.py"), path], { stdio: ["ignore", "pipe", "inherit"] })
  const received: Array<{ at: number; fields: Array<string> }> = []
  let wake = () => {}
  let buffered = ""
  listener.stdout.on("data", (d: Buffer) => {
    buffered += d.toString()
    const lines = buffered.split("\n")
    buffered = lines.pop()!
    for (const line of lines) {
      if (line === "bound") continue
      const space = line.indexOf(" ")
      received.push({ at: Number(line.slice(0, space)), fields: line.slice(space + 1).split("|") })
    }
    wake()
  })
  await new Promise<void>((resolve) => listener.stdout.once("data", () => resolve()))
  return {
    path,
    received,
    /** Waits until `test` holds on what was received (the test's timeout bounds it). */
    until: async (test: () => boolean) => {
      while (!test()) await new Promise<void>((resolve) => (wake = resolve))
    },
    /** The index of the first datagram from `from` on with `field`, or -1. */
    index: (field: string, from = 0) => {
      const i = received.slice(from).findIndex((m) => m.fields.includes(field))
      return i < 0 ? -1 : i + from
    },
    stop: () => listener.kill("SIGKILL")
  }
}

describe("sd_notify", () => {
  it("READY after listening, RELOADING/READY around SIGHUP, WATCHDOG from the loop (none while it is blocked), STOPPING at SIGTERM", { timeout: 60_000 }, async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-notify-"))
    const notify = await notifyListener(dir)
    const { received, until: waitFor } = notify
    const until = (_what: string, test: () => boolean) => waitFor(test)
    const table = Path.join(dir, "fiberd.json")
    Fs.writeFileSync(table, JSON.stringify({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }] }))
    const child = spawn(process.execPath, [mainScript, "--config", table], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: "200000" }
    })
    let out = ""
    child.stdout!.on("data", (d) => (out += d))
    child.stderr!.on("data", (d) => (out += d))
    const has = (field: string, from = 0) => notify.index(field, from)
    try {
      await until("READY=1", () => has("READY=1") >= 0)
      // ready means listening: the service's line is out and it accepts
      const port = Number(/^web\t\S+\t127\.0\.0\.1:(\d+)$/m.exec(out)?.[1])
      assert.isAbove(port, 0, out)
      await new Promise<void>((resolve, reject) => Net.connect({ host: "127.0.0.1", port }, function(this: Net.Socket) {
        this.destroy()
        resolve()
      }).on("error", reject))
      assert.match(received[has("READY=1")]!.fields.find((f) => f.startsWith("STATUS="))!, /^STATUS=1 services, \d+ connections$/)

      // the watchdog: every 100 ms (half of 200 ms), from the loop
      const before = received.length
      await until("watchdogs", () => received.slice(before).filter((m) => m.fields.includes("WATCHDOG=1")).length >= 8)
      const dogs = received.slice(before).filter((m) => m.fields.includes("WATCHDOG=1")).map((m) => m.at)
      const gaps = dogs.slice(1).map((t, i) => t - dogs[i]!)
      assert.isBelow(Math.max(...gaps), 1000, `periodic: ${gaps.join(", ")} ms`)

      // a blocked loop sends none: the most PBKDF2 rounds one request may ask for, on the loop itself (~0.3 s here)
      const blockFrom = received.length
      await new Promise((resolve) => execFile("curl", ["-sS", "-o", "/dev/null", `http://127.0.0.1:${port}/api/pbkdf2?inline=1&rounds=2000000`], resolve))
      await until("watchdogs after the block", () => received.slice(blockFrom).filter((m) => m.fields.includes("WATCHDOG=1")).length >= 3)
      // the last watchdog before the request, and those after it
      const lastBefore = received.slice(0, blockFrom).filter((m) => m.fields.includes("WATCHDOG=1")).at(-1)!.at
      const around = [lastBefore, ...received.slice(blockFrom).filter((m) => m.fields.includes("WATCHDOG=1")).map((m) => m.at)]
      const longest = Math.max(...around.slice(1).map((t, i) => t - around[i]!))
      assert.isAbove(longest, 250, `the blocked loop left a gap (the watchdog's period is 100 ms): ${around.join(", ")}`)

      // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1
      const reloadFrom = received.length
      child.kill("SIGHUP")
      await until("reloaded", () => has("READY=1", reloadFrom) >= 0)
      const reloading = received.slice(reloadFrom).find((m) => m.fields.includes("RELOADING=1"))
      assert.isDefined(reloading)
      assert.match(reloading!.fields.find((f) => f.startsWith("MONOTONIC_USEC="))!, /^MONOTONIC_USEC=\d+$/)
      assert.isBelow(has("RELOADING=1", reloadFrom), has("READY=1", reloadFrom))

      // SIGTERM: STOPPING=1
      const stopFrom = received.length
      child.kill("SIGTERM")
      await until("stopping", () => has("STOPPING=1", stopFrom) >= 0)
      assert.strictEqual(await new Promise((resolve) => child.once("exit", resolve)), 0)
    } finally {
      child.kill("SIGKILL")
      notify.stop()
    }
  })

  it("prefork: the primary says READY once the workers listen, RELOADING/READY around a roll, STOPPING at SIGTERM (an abstract notify socket)", { timeout: 60_000 }, async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-notify-prefork-"))
    const notify = await notifyListener(dir, true)
    const { received, until, index } = notify
    const table = Path.join(dir, "fiberd.json")
    Fs.writeFileSync(table, JSON.stringify({ workers: 2, services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }] }))
    const child = spawn(process.execPath, [mainScript, "--config", table], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NOTIFY_SOCKET: notify.path } })
    let out = ""
    child.stdout!.on("data", (d) => (out += d))
    const seen = (field: string, from = 0) => index(field, from) >= 0
    try {
      await until(() => seen("READY=1"))
      assert.match(out, /^web\t\S+\t127\.0\.0\.1:\d+$/m, "the workers listen before READY")
      assert.isTrue(received[index("READY=1")]!.fields.some((f) => /^STATUS=2 workers, 1 services$/.test(f)))
      const reloadFrom = received.length
      child.kill("SIGHUP")
      await until(() => seen("READY=1", reloadFrom))
      assert.isBelow(index("RELOADING=1", reloadFrom), index("READY=1", reloadFrom))
      const stopFrom = received.length
      child.kill("SIGTERM")
      await until(() => seen("STOPPING=1", stopFrom))
      assert.strictEqual(await new Promise((resolve) => child.once("exit", resolve)), 0)
      // one READY per state change, from the primary only (the workers do not have the socket)
      assert.strictEqual(received.filter((m) => m.fields.includes("READY=1")).length, 2)
    } finally {
      child.kill("SIGKILL")
      notify.stop()
    }
  })
})

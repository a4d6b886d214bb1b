/**
 * systemd socket activation with systemd's own tool: `systemd-socket-activate`
 * holds the listening sockets and starts fiberd with them (LISTEN_FDS,
 * LISTEN_PID, LISTEN_FDNAMES); fiberd serves its http and echo services on
 * the sockets it was handed — by name, whatever the order — and `/_status`
 * says so; a UDP service on a handed datagram socket; prefork workers on the
 * primary's handed socket (and across a roll); a restart under load. npm test's pretest installs Debian's systemd package (the tool)
 * when it is missing.
 */
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as SocketActivation from "../../src/runtime/SocketActivation.ts"
import { makeCert } from "../support/certs.ts"
import { mainScript } from "../support/serverProcess.ts"

/** Two ports nothing listens on now (the tool binds them). */
const freePorts = async (n: number) => {
  const servers = await Promise.all(Array.from({ length: n }, () =>
    new Promise<Net.Server>((resolve) => {
      const s = Net.createServer().listen(0, "127.0.0.1", () => resolve(s))
    })))
  const ports = servers.map((s) => (s.address() as Net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

const curl = (url: string, extra: ReadonlyArray<string> = []) =>
  new Promise<string>((resolve) => execFile("curl", ["-sS", ...extra, "-o", "/dev/null", "-w", "%{http_code}", url], { timeout: 15_000 }, (_e, out, err) => resolve(out + err)))

const echoOnce = (to: number | { readonly path: string }, text: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = Net.connect(typeof to === "number" ? { host: "127.0.0.1", port: to } : to, () => socket.end(text))
    let got = ""
    socket.on("data", (d) => (got += d))
    socket.on("close", () => resolve(got))
    socket.on("error", reject)
  })

/**
 * Starts `systemd-socket-activate` with `args` (its options, then fiberd with `table`) in `dir`:
 * everything both print, a wait on a pattern in it, and a stop (SIGTERM, then the exit).
 */
const activate = (dir: string, args: ReadonlyArray<string>, table: string) => {
  const child: ChildProcess = spawn("systemd-socket-activate", [...args, process.execPath, mainScript, "--config", table], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let wake = () => {}
  const onData = (d: Buffer) => {
    out += d
    wake()
  }
  child.stdout!.on("data", onData)
  child.stderr!.on("data", onData)
  return {
    /** fiberd's pid (the tool execs it). */
    pid: child.pid!,
    output: () => out,
    until: async (pattern: RegExp) => {
      while (!pattern.test(out)) await new Promise<void>((resolve) => (wake = resolve))
    },
    stop: async () => {
      child.kill("SIGTERM")
      await new Promise((resolve) => child.once("exit", resolve))
    }
  }
}

describe("socket activation", () => {
  it("the inherited descriptors are matched by LISTEN_FDNAMES, else by table order; only when LISTEN_PID is this process", () => {
    const services = ["web", "echo", "chat"]
    assert.deepStrictEqual([...SocketActivation.inherited({ LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: "echo:web" }, 42, services)], [["echo", 3], ["web", 4]])
    assert.deepStrictEqual([...SocketActivation.inherited({ LISTEN_PID: "42", LISTEN_FDS: "2" }, 42, services)], [["web", 3], ["echo", 4]])
    assert.deepStrictEqual([...SocketActivation.inherited({ LISTEN_PID: "42", LISTEN_FDS: "2", LISTEN_FDNAMES: "unknown:unknown" }, 42, services)], [["web", 3], ["echo", 4]])
    assert.strictEqual(SocketActivation.inherited({ LISTEN_PID: "41", LISTEN_FDS: "2" }, 42, services).size, 0)
    assert.strictEqual(SocketActivation.inherited({}, 42, services).size, 0)
  })

  it("systemd-socket-activate hands fiberd its sockets: http, https (TLS over the handed socket), echo and a Unix-socket echo served on them, picked by name; /_status says inherited", { timeout: 60_000 }, async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-activate-"))
    const table = Path.join(dir, "fiberd.json")
    const cert = makeCert(dir, "localhost", ["localhost"])
    // the table's own ports are not the ones the tool listens on: only the handed sockets can serve
    Fs.writeFileSync(table, JSON.stringify({
      services: [
        { name: "web", protocol: "http", listen: "127.0.0.1:1" },
        { name: "echo", protocol: "echo", listen: "127.0.0.1:2" },
        { name: "secure", protocol: "http", listen: "127.0.0.1:4", tls: { cert: cert.cert, key: cert.key } },
        { name: "local", protocol: "echo", transport: "unix", listen: Path.join(dir, "as-written.sock") }
      ]
    }))
    const [echoPort = 0, webPort = 0, securePort = 0] = await freePorts(3)
    // echo's socket first: the names, not the order, pick the services
    const tool = activate(dir, [
      "-l", `127.0.0.1:${echoPort}`, "--fdname=echo",
      "-l", `127.0.0.1:${webPort}`, "--fdname=web",
      "-l", `127.0.0.1:${securePort}`, "--fdname=secure",
      "-l", Path.join(dir, "handed.sock"), "--fdname=local"
    ], table)
    try {
      // the tool listens first ("Listening on … as 3."), and starts fiberd when a connection comes
      await tool.until(/(Listening on[^]*){4}/)
      // connections wait in the tool's listening sockets until fiberd accepts them
      assert.strictEqual(await curl(`http://127.0.0.1:${webPort}/`), "200")
      assert.strictEqual(await echoOnce(echoPort, "hello through an inherited socket\n"), "hello through an inherited socket\n")
      assert.strictEqual(await echoOnce({ path: Path.join(dir, "handed.sock") }, "over a handed Unix socket\n"), "over a handed Unix socket\n")
      assert.isFalse(Fs.existsSync(Path.join(dir, "as-written.sock")))
      assert.strictEqual(await curl(`https://localhost:${securePort}/`, ["--cacert", cert.cert, "--resolve", `localhost:${securePort}:127.0.0.1`]), "200")
      const status = JSON.parse(await new Promise<string>((resolve) => execFile("curl", ["-sS", `http://127.0.0.1:${webPort}/_status`], (_e, o) => resolve(o)))) as {
        services: Array<{ name: string; inheritedSocket?: boolean }>
      }
      assert.deepStrictEqual(status.services.map((s) => [s.name, s.inheritedSocket]), [["web", true], ["echo", true], ["secure", true], ["local", true]])
    } finally {
      await tool.stop()
    }
    assert.notMatch(tool.output(), /cannot listen/)
  })
})

describe("socket activation in prefork mode", () => {
  it("the primary holds the handed socket and its workers serve it (node:cluster): the connection that started fiberd is answered, and after a SIGHUP roll too", { timeout: 60_000 }, async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-activate-prefork-"))
    const table = Path.join(dir, "fiberd.json")
    Fs.writeFileSync(table, JSON.stringify({ workers: 2, services: [{ name: "web", protocol: "http", listen: "127.0.0.1:1" }] }))
    const [webPort = 0] = await freePorts(1)
    const tool = activate(dir, ["-l", `127.0.0.1:${webPort}`, "--fdname=web"], table)
    try {
      await tool.until(/Listening on/)
      // this connection starts fiberd; the primary's handle accepts it and hands it to a worker in the
      // same turn as the worker's listen answer (it was reset before the listener kept early connections)
      assert.strictEqual(await curl(`http://127.0.0.1:${webPort}/`), "200")
      // both workers ready (the first request may be served before the second is)
      await tool.until(/worker 1 \(pid \d+\) listening/)
      await tool.until(/worker 2 \(pid \d+\) listening/)
      for (let i = 0; i < 6; i++) assert.strictEqual(await curl(`http://127.0.0.1:${webPort}/`), "200")
      const status = JSON.parse(await new Promise<string>((resolve) => execFile("curl", ["-sS", `http://127.0.0.1:${webPort}/_status`], (_e, o) => resolve(o)))) as {
        mode: string
        processes: Array<{ name: string; services: Array<{ name: string; inheritedSocket?: boolean }> }>
      }
      assert.strictEqual(status.mode, "prefork")
      const workers = status.processes.filter((p) => p.name !== "primary")
      assert.strictEqual(workers.length, 2)
      for (const w of workers) assert.deepStrictEqual(w.services.map((s) => [s.name, s.inheritedSocket]), [["web", true]])
      // a roll: new workers take the primary's handle of the same descriptor
      process.kill(tool.pid, "SIGHUP")
      await tool.until(/SIGHUP: 2 workers rolled/)
      for (let i = 0; i < 6; i++) assert.strictEqual(await curl(`http://127.0.0.1:${webPort}/`), "200")
    } finally {
      await tool.stop()
    }
    assert.notMatch(tool.output(), /cannot listen/)
  })
})

describe("socket activation of a UDP service", () => {
  for (const workers of [1, 2]) {
    it(`systemd-socket-activate --datagram starts fiberd on the first datagram; the UDP echo answers it and the next from the handed socket (${workers === 1 ? "one process" : "prefork: the workers read the primary's socket"})`, { timeout: 60_000 }, async () => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-activate-udp-"))
      const table = Path.join(dir, "fiberd.json")
      // a TCP service first in the table: the name, not the order, gives the datagram socket to the UDP service
      Fs.writeFileSync(table, JSON.stringify({
        workers,
        services: [
          { name: "web", protocol: "http", listen: "127.0.0.1:0" },
          { name: "echo-udp", protocol: "echo", transport: "udp", listen: "127.0.0.1:3" }
        ]
      }))
      const socket = Dgram.createSocket("udp4")
      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve))
      const udpPort = socket.address().port
      await new Promise<void>((resolve) => socket.close(() => resolve()))
      const tool = activate(dir, ["--datagram", "-l", `127.0.0.1:${udpPort}`, "--fdname=echo-udp"], table)
      const client = Dgram.createSocket("udp4")
      const replies: Array<string> = []
      let replied = () => {}
      client.on("message", (m) => {
        replies.push(m.toString())
        replied()
      })
      try {
        await tool.until(/Listening on/)
        // the first datagram waits in the tool's socket while fiberd starts, and is answered by it
        client.send("first datagram", udpPort, "127.0.0.1")
        while (replies.length < 1) await new Promise<void>((resolve) => (replied = resolve))
        client.send("second datagram", udpPort, "127.0.0.1")
        while (replies.length < 2) await new Promise<void>((resolve) => (replied = resolve))
        assert.deepStrictEqual(replies, ["first datagram", "second datagram"])
        // fiberd printed the service on the handed port, not the table's
        await tool.until(new RegExp(`echo-udp.*127\\.0\\.0\\.1:${udpPort}`))
      } finally {
        client.close()
        await tool.stop()
      }
      assert.notMatch(tool.output(), /cannot listen|UdpBindError/)
    })
  }
})

describe("socket activation across restarts", () => {
  it("a holder keeps the listening socket (as systemd does) while fiberd is stopped and started again under a client loop: no connection refused", { timeout: 60_000 }, async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-restart-"))
    const table = Path.join(dir, "fiberd.json")
    Fs.writeFileSync(table, JSON.stringify({ services: [{ name: "echo", protocol: "echo", listen: "127.0.0.1:1" }] }))
    const holder = spawn("/usr/bin/python3", [Path.join(import.meta.dirname, "socket_holder.py"), "echo", "--", process.execPath, mainScript, "--config", table], {
      cwd: dir,
      stdio: ["pipe", "pipe", "pipe"]
    })
    let said = ""
    let wake = () => {}
    holder.stdout!.on("data", (d) => {
      said += d
      wake()
    })
    let logs = ""
    holder.stderr!.on("data", (d) => (logs += d))
    const until = async (pattern: RegExp) => {
      while (!pattern.test(said)) await new Promise<void>((resolve) => (wake = resolve))
    }
    const tell = (verb: string) => holder.stdin!.write(`${verb}\n`)
    try {
      await until(/^port echo (\d+)$/m)
      const port = Number(/^port echo (\d+)$/m.exec(said)![1])
      tell("start")
      assert.strictEqual(await echoOnce(port, "first\n"), "first\n")
      // clients keep coming: each connects, sends a line and reads it back
      let refused = 0
      let served = 0
      let stop = false
      const clients = (async () => {
        while (!stop) {
          try {
            if ((await echoOnce(port, "again\n")) === "again\n") served++
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ECONNREFUSED") refused++
          }
        }
      })()
      const servedBefore = () => served
      await new Promise<void>((resolve) => {
        const check = () => (servedBefore() >= 20 ? resolve() : setTimeout(check, 10))
        check()
      })
      // stop fiberd and start it again on the same socket; meanwhile connections wait in the backlog
      tell("stop")
      await until(/^stopped 0$/m)
      tell("start")
      await until(/^started \d+\nstopped 0\nstarted \d+$/m)
      const after = served
      await new Promise<void>((resolve) => {
        const check = () => (served >= after + 20 ? resolve() : setTimeout(check, 10))
        check()
      })
      stop = true
      await clients
      assert.strictEqual(refused, 0, logs)
      assert.isAtLeast(served, 40)
    } finally {
      tell("quit")
      await new Promise((resolve) => holder.once("exit", resolve))
    }
  })
})

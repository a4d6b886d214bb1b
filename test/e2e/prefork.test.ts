/**
 * End-to-end: fiberd with prefork workers, as real processes on loopback.
 * Two workers serve one port (round-robin and reuse-port) with one access
 * log; UDP, Unix-socket and chat services; whole-server /_status and
 * /metrics; a worker killed with SIGKILL is replaced; crashes beyond the
 * restart intensity stop fiberd (exit 1); SIGHUP rolls the workers under a
 * hammering client with no failed request and a rotated access log is
 * opened afresh; SIGTERM drains all and exits 0.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileMatches } from "../support/files.ts"
import { untilTrue } from "../support/until.ts"
import { type ServerProcess, start } from "../support/serverProcess.ts"

const servers: Array<ServerProcess> = []
afterAll(async () => {
  for (const s of servers) await s.stop()
})
const launch = async (table: unknown, args: ReadonlyArray<string> = []) => {
  const server = await start(table, ["--workers", "2", ...args])
  servers.push(server)
  return server
}

const site = (text: string) => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-prefork-site-"))
  Fs.writeFileSync(Path.join(dir, "index.html"), text)
  return dir
}

const get = (port: number, path: string, agent: Http.Agent | false = false) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = Http.get({ host: "127.0.0.1", port, path, agent }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode!, body }))
    })
    req.on("error", reject)
  })

interface Process {
  readonly name: string
  readonly pid: number
  readonly restarts: number
  readonly answered: boolean
  readonly services: ReadonlyArray<Record<string, number | string>>
}
interface ServerDoc {
  readonly workers: number
  readonly processes: ReadonlyArray<Process>
  readonly services: ReadonlyArray<Record<string, number | string>>
  readonly offload?: { readonly inFlight: number }
}
const status = async (port: number): Promise<ServerDoc> => JSON.parse((await get(port, "/_status?format=json")).body)
const workersOf = (doc: ServerDoc) => doc.processes.filter((p) => p.name !== "primary")
const service = (rows: ReadonlyArray<Record<string, number | string>>, name: string) => rows.find((r) => r["name"] === name)!

/** The worker processes of the primary `pid`, from ps. */
const childPids = (pid: number) => {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" }).split("\n").map((p) => Number(p.trim())).filter((p) => p > 0)
  } catch {
    return [] // ps exits 1 when there is none
  }
}

/** Asks `/_status` until `ok` holds (each ask waits for a response, not a timer); fails after `ms`. */
const statusUntil = async (port: number, ok: (doc: ServerDoc) => boolean, ms = 15_000) => {
  const deadline = Date.now() + ms
  let doc = await status(port)
  while (!ok(doc) && Date.now() < deadline) doc = await status(port)
  assert.isTrue(ok(doc), JSON.stringify(doc.processes.map((p) => [p.name, p.pid, p.restarts])) + JSON.stringify(doc.offload))
  return doc
}

describe("prefork workers", () => {
  it("two workers serve one port with one access log; UDP, Unix socket, chat (TCP and WebSocket) and /api/pbkdf2 work; status and metrics cover every process", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-prefork-"))
    const socketPath = Path.join(dir, "web.sock")
    const server = await launch({
      services: [
        { name: "web", protocol: "http", listen: "127.0.0.1:0", root: site("<h1>prefork</h1>"), chat: "chat" },
        { name: "web-unix", protocol: "http", transport: "unix", listen: socketPath, root: site("<h1>unix</h1>") },
        { name: "echo-udp", protocol: "echo", transport: "udp", listen: "127.0.0.1:0" },
        { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }
      ],
      accessLog: { path: "access.log" }
    })
    const port = server.port("web")
    // 40 connections, one request each: the primary hands them to the workers in turn
    for (let i = 0; i < 40; i++) assert.strictEqual((await get(port, "/")).body, "<h1>prefork</h1>")
    const doc = await status(port)
    const workers = workersOf(doc)
    assert.strictEqual(doc.workers, 2)
    assert.deepStrictEqual(workers.map((w) => w.name), ["1", "2"])
    assert.sameMembers(workers.map((w) => w.pid), childPids(server.child.pid!))
    for (const w of workers) assert.isAbove(Number(service(w.services, "web")["totalConnections"]), 5, `worker ${w.name} got its share`)
    const perProcess = workers.reduce((n, w) => n + Number(service(w.services, "web")["requests"]), 0)
    assert.strictEqual(service(doc.services, "web")["requests"], perProcess, "the sum is the sum of the workers")
    assert.isAtLeast(perProcess, 40)
    assert.isDefined(service(doc.processes.find((p) => p.name === "primary")!.services, "chat"), "chat runs in the primary")

    // the metrics of every process, labelled by worker, one TYPE per family
    const metrics = (await get(port, "/metrics")).body
    assert.match(metrics, /fiberd_connections_accepted_total\{worker="1",service="web"\} \d+/)
    assert.match(metrics, /fiberd_connections_accepted_total\{worker="2",service="web"\} \d+/)
    assert.match(metrics, /fiberd_connections_accepted_total\{worker="primary",service="chat"\} \d+/)
    const types = metrics.split("\n").filter((l) => l.startsWith("# TYPE "))
    assert.strictEqual(new Set(types).size, types.length)

    // one access log written by both workers: every request once, no torn or interleaved line
    const log = await fileMatches(Path.join(server.dir, "access.log"), { test: (t) => t.split("\n").filter((l) => l.includes("GET / ")).length >= 40 })
    const lines = log.split("\n").filter((l) => l.length > 0)
    for (const line of lines) assert.match(line, /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/[^"]* HTTP\/1\.1" \d{3} (\d+|-)( "[^"]*" "[^"]*")?$/)
    assert.strictEqual(lines.filter((l) => l.includes("GET / ")).length, 40)

    // UDP (every worker reads the primary's socket) and the Unix socket (through the primary)
    const echoed = await new Promise<string>((resolve) => {
      const s = Dgram.createSocket("udp4")
      s.on("message", (m) => {
        s.close()
        resolve(m.toString())
      })
      s.send("ping", server.port("echo-udp"), "127.0.0.1")
    })
    assert.strictEqual(echoed, "ping")
    const unix = await new Promise<string>((resolve, reject) => {
      Http.get({ socketPath, path: "/" }, (res) => {
        let body = ""
        res.on("data", (d) => (body += d))
        res.on("end", () => resolve(body))
      }).on("error", reject)
    })
    assert.strictEqual(unix, "<h1>unix</h1>")

    // the offload example in a worker
    assert.strictEqual((await get(port, "/api/pbkdf2?rounds=1000")).status, 200)

    // chat: a WebSocket member (bridged by a worker to the primary's rooms) and a TCP member meet
    const tcp = Net.connect(server.port("chat"), "127.0.0.1")
    let tcpText = ""
    const tcpSees = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (tcpText.includes(text)) {
            tcp.off("data", onData)
            resolve()
          }
        }
        const onData = (d: Buffer) => {
          tcpText += d.toString()
          check()
        }
        tcp.on("data", onData)
        check()
      })
    tcp.write("/nick tcpuser\r\n/join lobby\r\n")
    await tcpSees("lobby")
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`)
    const wsLines: Array<string> = []
    const wsSees = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => wsLines.some((l) => l.includes(text)) && resolve()
        ws.addEventListener("message", (e) => {
          wsLines.push(String(e.data))
          check()
        })
        check()
      })
    await new Promise((r) => ws.addEventListener("open", r))
    ws.send("/nick webuser")
    ws.send("/join lobby")
    await tcpSees("webuser")
    ws.send("hello from the browser side")
    await tcpSees("hello from the browser side")
    tcp.write("hello from tcp\r\n")
    await wsSees("hello from tcp")
    ws.close()
    tcp.destroy()
  })

  it("reuse-port: each worker binds its own socket and the kernel spreads the connections", async () => {
    const server = await launch({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: site("reuse") }], accessLog: { path: "access.log" } }, ["--port-sharing", "reuse-port"])
    const port = server.port("web")
    for (let i = 0; i < 40; i++) assert.strictEqual((await get(port, "/")).body, "reuse")
    const doc = await status(port)
    for (const w of workersOf(doc)) assert.isAbove(Number(service(w.services, "web")["totalConnections"]), 0, `worker ${w.name} accepted some`)
    const listening = execFileSync("ss", ["-Hltn", `sport = :${port}`], { encoding: "utf8" }).trim().split("\n")
    assert.strictEqual(listening.length, 2, "two listening sockets on the port")
  })

  it("a worker killed with SIGKILL is replaced while the other keeps serving", async () => {
    const server = await launch({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: site("ok") }], accessLog: { path: "access.log" } })
    const port = server.port("web")
    const before = workersOf(await status(port))
    const victim = before[0]!
    process.kill(victim.pid, "SIGKILL")
    await server.waitFor(`worker 1 (pid ${victim.pid}) was killed by SIGKILL`)
    assert.strictEqual((await get(port, "/")).body, "ok")
    await server.waitFor(new RegExp(`worker 1 \\(pid (?!${victim.pid}\\))\\d+\\) listening`))
    const after = await statusUntil(port, (d) => workersOf(d).length === 2 && workersOf(d).every((w) => w.pid !== victim.pid))
    const replaced = workersOf(after).find((w) => w.name === "1")!
    assert.strictEqual(replaced.restarts, 1)
    assert.strictEqual(workersOf(after).find((w) => w.name === "2")!.pid, before[1]!.pid, "the other worker was not touched")
  })

  it("crashes beyond the restart intensity stop fiberd with a message and exit 1", async () => {
    const server = await launch({
      services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: site("ok") }],
      workerRestarts: { maxRestarts: 1, period: "1 minute" },
      accessLog: { path: "access.log" }
    })
    const [first, second] = workersOf(await status(server.port("web")))
    process.kill(first!.pid, "SIGKILL")
    await server.waitFor("restarting child worker-1")
    process.kill(second!.pid, "SIGKILL")
    assert.strictEqual(await server.exited, 1)
    assert.match(server.stderr(), /fiberd: supervisor workers gave up: more than 1 restarts in 1m/)
    assert.deepStrictEqual(childPids(server.child.pid!), [])
  })

  it("SIGHUP rolls the workers one at a time under a hammering client: no request fails, the new table is served", async () => {
    const oldRoot = site("old")
    const server = await launch({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: oldRoot }], accessLog: { path: "access.log" } })
    const port = server.port("web")
    const before = workersOf(await status(port)).map((w) => w.pid)
    // still port 0 in the file: the roll keeps the port the primary picked at start
    Fs.writeFileSync(server.configPath, JSON.stringify({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: site("new") }], accessLog: { path: "access.log" } }))
    const agent = new Http.Agent({ keepAlive: true, maxSockets: 20 })
    let running = true
    let ok = 0
    const failures: Array<string> = []
    const bodies = new Set<string>()
    const hammer = async () => {
      while (running) {
        try {
          const r = await get(port, "/", agent)
          if (r.status === 200) {
            ok++
            bodies.add(r.body)
          } else failures.push(`status ${r.status}`)
        } catch (e) {
          failures.push((e as Error).message)
        }
      }
    }
    const loops = Array.from({ length: 20 }, hammer)
    await new Promise<void>((resolve) => {
      const check = () => (ok > 200 ? resolve() : setImmediate(check))
      check()
    })
    // log rotation: the file is moved away, then SIGHUP; the new workers open a fresh access.log
    Fs.renameSync(Path.join(server.dir, "access.log"), Path.join(server.dir, "access.log.1"))
    server.child.kill("SIGHUP")
    await server.waitFor("SIGHUP: 2 workers rolled", 30_000)
    const atRoll = ok
    await new Promise<void>((resolve) => {
      const check = () => (ok > atRoll + 200 ? resolve() : setImmediate(check))
      check()
    })
    running = false
    await Promise.all(loops)
    agent.destroy()
    assert.deepStrictEqual(failures, [])
    assert.isTrue(bodies.has("new"), "the new table's root is served after the roll")
    assert.strictEqual((await get(port, "/")).body, "new")
    const after = workersOf(await status(port)).map((w) => w.pid)
    assert.strictEqual(after.length, 2)
    for (const pid of after) assert.notInclude(before, pid, "every worker was replaced")
    assert.match(Fs.readFileSync(Path.join(server.dir, "access.log.1"), "utf8"), /"GET \/ HTTP\/1\.1" 200/, "the rotated file kept the lines from before")
    await fileMatches(Path.join(server.dir, "access.log"), /"GET \/ HTTP\/1\.1" 200/)
  }, 60_000)

  it("SIGTERM drains every worker (a request in flight completes) and exits 0", async () => {
    const server = await launch({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: site("ok") }], accessLog: { path: "access.log" } })
    const port = server.port("web")
    const workers = childPids(server.child.pid!)
    assert.strictEqual(workers.length, 2)
    // a slow request (PBKDF2 on a worker's offload pool) is in flight when SIGTERM comes: the status says so
    const slow = get(port, "/api/pbkdf2?rounds=2000000")
    await statusUntil(port, (d) => (d.offload?.inFlight ?? 0) === 1)
    server.child.kill("SIGTERM")
    const answer = await slow
    assert.strictEqual(answer.status, 200)
    assert.match(answer.body, /^[0-9a-f]{64}\n$/)
    assert.strictEqual(await server.exited, 0)
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), /ESRCH/)
  })

  it("exec children die with their worker: kill -9 of the worker, then kill -9 of the primary — nothing fiberd started outlives it", async () => {
    const marker = `${4000 + Math.floor(Math.random() * 1000)}.${process.pid}`
    const server = await launch({ services: [{ name: "hold", protocol: "exec", listen: "127.0.0.1:0", command: ["sleep", marker] }] })
    /** Live (not zombie) processes running `sleep <marker>`, with their parent pid. */
    const holders = () =>
      Fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((d) => {
        try {
          if (!Fs.readFileSync(`/proc/${d}/cmdline`, "utf8").endsWith(`sleep\0${marker}\0`)) return []
          const stat = Fs.readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1]!.split(" ")
          return stat[0] === "Z" ? [] : [{ pid: Number(d), ppid: Number(stat[1]) }]
        } catch {
          return []
        }
      })
    const connectAndWaitForChild = async (count: number) => {
      const socket = Net.connect({ host: "127.0.0.1", port: server.port("hold") })
      socket.on("error", () => {})
      await untilTrue(() => holders().length === count, `${count} exec children running`)
      return socket
    }
    await connectAndWaitForChild(1)
    const [first] = holders()
    const worker = first!.ppid
    assert.include(childPids(server.child.pid!), worker, "the exec child is a worker's child")
    process.kill(worker, "SIGKILL")
    await untilTrue(() => holders().length === 0, "the exec child of the killed worker is gone")
    // the worker is replaced; a new exec child; then the primary itself is killed without any cleanup
    await untilTrue(() => childPids(server.child.pid!).length === 2, "two workers again")
    await connectAndWaitForChild(1)
    const workers = childPids(server.child.pid!)
    server.child.kill("SIGKILL")
    await untilTrue(() => holders().length === 0, "the exec child is gone after the primary was killed")
    await untilTrue(() => workers.every((pid) => { try { process.kill(pid, 0); return false } catch { return true } }), "every worker is gone")
  })
})

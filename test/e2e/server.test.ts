/**
 * End-to-end: the real fiberd process with every kind of service, talked to
 * with real clients (node:net, node:dgram, node:http, curl where installed).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { type ServerProcess, start } from "../support/serverProcess.ts"
import { sleep } from "../support/netClient.ts"

const site = () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-site-"))
  Fs.writeFileSync(Path.join(dir, "index.html"), "<h1>e2e</h1>")
  Fs.writeFileSync(Path.join(dir, "data.txt"), "0123456789")
  return dir
}

const tcp = (port: number) =>
  new Promise<Net.Socket>((resolve, reject) => {
    const s = Net.connect(port, "127.0.0.1", () => resolve(s))
    s.once("error", reject)
  })
const exchange = async (port: number, send: string | Buffer, end = true) => {
  const s = await tcp(port)
  const chunks: Array<Buffer> = []
  s.on("data", (d: Buffer) => chunks.push(d))
  const done = new Promise<void>((r) => s.once("close", () => r()))
  if (end) s.end(send)
  else s.write(send)
  await done
  return Buffer.concat(chunks).toString()
}
const udp = (port: number, message: string) =>
  new Promise<string>((resolve, reject) => {
    const s = Dgram.createSocket("udp4")
    const timer = setTimeout(() => reject(new Error("no UDP answer")), 3000)
    s.on("message", (m) => {
      clearTimeout(timer)
      s.close()
      resolve(m.toString())
    })
    s.send(message, port, "127.0.0.1")
  })
const httpGet = (port: number, path: string, headers: Record<string, string> = {}, agent?: Http.Agent, method = "GET") =>
  new Promise<{ status: number; headers: Http.IncomingHttpHeaders; body: string; localPort: number }>((resolve, reject) => {
    const req = Http.request({ host: "127.0.0.1", port, path, headers, agent, method }, (res) => {
      let body = ""
      const localPort = res.socket.localPort!
      res.setEncoding("latin1")
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body, localPort }))
    })
    req.on("error", reject)
    req.end()
  })

/** A line-oriented chat client. */
const chatClient = async (port: number) => {
  const socket = await tcp(port)
  const lines: Array<string> = []
  let pending = ""
  socket.setEncoding("utf8")
  socket.on("data", (d: string) => {
    pending += d
    const parts = pending.split("\r\n")
    pending = parts.pop()!
    lines.push(...parts)
  })
  return {
    socket,
    lines,
    send: (line: string) => socket.write(line + "\n"),
    waitFor: async (pred: (l: string) => boolean, ms = 5000) => {
      const until = Date.now() + ms
      while (!lines.some(pred)) {
        if (Date.now() > until) throw new Error(`no such line; got ${JSON.stringify(lines.slice(-5))}`)
        await sleep(10)
      }
    }
  }
}

const hasCurl = (() => {
  try {
    execFileSync("curl", ["--version"])
    return true
  } catch {
    return false
  }
})()

describe("fiberd end to end", () => {
  let server: ServerProcess
  beforeAll(async () => {
    server = await start({
      services: [
        { name: "web", protocol: "http", listen: "127.0.0.1:0", root: site() },
        { name: "echo", protocol: "echo", listen: "127.0.0.1:0" },
        { name: "echo-udp", protocol: "echo", transport: "udp", listen: "127.0.0.1:0" },
        { name: "daytime", protocol: "daytime", listen: "127.0.0.1:0" },
        { name: "daytime-udp", protocol: "daytime", transport: "udp", listen: "127.0.0.1:0" },
        { name: "chat", protocol: "chat", listen: "127.0.0.1:0", outboxSize: 64 },
        { name: "cat", protocol: "exec", listen: "127.0.0.1:0", command: ["cat"] },
        { name: "wc", protocol: "exec", listen: "127.0.0.1:0", command: ["wc", "-c"] }
      ],
      accessLog: { path: "access.log" }
    })
  })
  afterAll(async () => {
    assert.strictEqual(await server.stop(), 0)
  })

  it("prints one line per service: name, protocol, address", () => {
    for (const name of ["web", "echo", "echo-udp", "daytime", "daytime-udp", "chat", "cat", "wc"]) {
      assert.match(server.stdout(), new RegExp(`^${name}\\t\\w+/\\w+\\t127\\.0\\.0\\.1:\\d+$`, "m"))
    }
  })

  it("echo and daytime over TCP and UDP", async () => {
    assert.strictEqual(await exchange(server.port("echo"), "hello fiberd\n"), "hello fiberd\n")
    assert.match(await exchange(server.port("daytime"), ""), /^\w+day, \w+ \d+, \d{4} \d\d:\d\d:\d\d-UTC\r\n$/)
    assert.strictEqual(await udp(server.port("echo-udp"), "ping"), "ping")
    assert.match(await udp(server.port("daytime-udp"), "?"), /-UTC\r\n$/)
  })

  it("HTTP with node:http: 200, HEAD, Range, 304, keep-alive reuse, access log", async () => {
    const port = server.port("web")
    const agent = new Http.Agent({ keepAlive: true, maxSockets: 1 })
    const a = await httpGet(port, "/", {}, agent)
    const b = await httpGet(port, "/data.txt", {}, agent)
    agent.destroy()
    assert.strictEqual(a.status, 200)
    assert.strictEqual(a.body, "<h1>e2e</h1>")
    assert.strictEqual(a.localPort, b.localPort, "the second request reused the connection")
    const head = await httpGet(port, "/data.txt", {}, undefined, "HEAD")
    assert.strictEqual(head.headers["content-length"], "10")
    assert.strictEqual(head.body, "")
    const range = await httpGet(port, "/data.txt", { Range: "bytes=3-5" })
    assert.strictEqual(range.status, 206)
    assert.strictEqual(range.body, "345")
    const notModified = await httpGet(port, "/data.txt", { "If-None-Match": String(b.headers.etag) })
    assert.strictEqual(notModified.status, 304)
    await sleep(100)
    const log = Fs.readFileSync(Path.join(server.dir, "access.log"), "utf8")
    assert.match(log, /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 12 "-" "-"$/m)
    assert.match(log, /"GET \/data.txt HTTP\/1\.1" 304 - /)
  })

  it.skipIf(!hasCurl)("HTTP with curl: HEAD, Range, 304, keep-alive reuse", () => {
    const url = `http://127.0.0.1:${server.port("web")}`
    const head = execFileSync("curl", ["-sI", `${url}/data.txt`]).toString()
    assert.match(head, /^HTTP\/1\.1 200 OK/)
    assert.match(head, /Content-Length: 10/i)
    assert.strictEqual(execFileSync("curl", ["-s", "-r", "0-3", `${url}/data.txt`]).toString(), "0123")
    const etag = /ETag: (.+)\r/i.exec(head)![1]!
    assert.strictEqual(execFileSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", `If-None-Match: ${etag}`, `${url}/data.txt`]).toString(), "304")
    const verbose = execFileSync("sh", ["-c", `curl -sv ${url}/ ${url}/data.txt 2>&1 >/dev/null`]).toString()
    assert.match(verbose, /Re-using existing connection/i)
  })

  it("chat: three clients in two rooms see exactly their room's messages", async () => {
    const port = server.port("chat")
    const [a, b, c] = await Promise.all([chatClient(port), chatClient(port), chatClient(port)])
    a.send("/nick ann")
    b.send("/nick bob")
    c.send("/nick cy")
    a.send("/join lobby")
    await a.waitFor((l) => l === "*** ann joined #lobby")
    b.send("/join lobby")
    await a.waitFor((l) => l === "*** bob joined #lobby")
    c.send("/join other")
    await c.waitFor((l) => l === "*** cy joined #other")
    a.send("hello lobby")
    await b.waitFor((l) => l === "<ann> hello lobby")
    c.send("hello other")
    b.send("/who")
    await b.waitFor((l) => l.startsWith("*** in #lobby:"))
    assert.include(b.lines, "*** in #lobby: ann bob")
    assert.isFalse(c.lines.some((l) => l.includes("hello lobby")))
    assert.isFalse(a.lines.some((l) => l.includes("hello other")) || b.lines.some((l) => l.includes("hello other")))
    b.send("/quit")
    await a.waitFor((l) => l === "*** bob quit")
    ;[a, c].forEach((x) => x.socket.destroy())
  })

  it("chat: a stalled client is disconnected with a reason while the others keep chatting", async () => {
    const port = server.port("chat")
    const [a, b, stalled] = await Promise.all([chatClient(port), chatClient(port), chatClient(port)])
    for (const [x, n] of [[a, "ann2"], [b, "bob2"], [stalled, "zed"]] as const) {
      x.send(`/nick ${n}`)
      x.send("/join busy")
      await x.waitFor((l) => l === `*** ${n} joined #busy`)
    }
    stalled.socket.pause() // stops reading: the kernel buffers fill, then its outbox
    const line = "x".repeat(900)
    for (let i = 0; i < 10_000; i++) a.send(`${i} ${line}`)
    await b.waitFor((l) => l === "*** zed was disconnected (too slow)", 30_000)
    await b.waitFor((l) => l.startsWith("<ann2> 9999 "), 30_000)
    a.send("still here")
    await b.waitFor((l) => l === "<ann2> still here")
    stalled.socket.resume()
    await stalled.waitFor((l) => l === "*** disconnected: you are not reading fast enough", 30_000)
    ;[a, b, stalled].forEach((x) => x.socket.destroy())
  }, 60_000)

  it("exec: cat and wc -c wired to the connection; no child left behind", async () => {
    assert.strictEqual(await exchange(server.port("cat"), "through cat\n"), "through cat\n")
    assert.strictEqual((await exchange(server.port("wc"), Buffer.alloc(12345, 0x61))).trim(), "12345")
    // a client that goes away while its child still runs: the child is killed and reaped
    const s = await tcp(server.port("cat"))
    s.write("half")
    await sleep(100)
    s.destroy()
    await sleep(500)
    const children = execFileSync("sh", ["-c", `ps -o stat=,comm= --ppid ${server.child.pid} || true`]).toString().trim()
    assert.strictEqual(children, "", `children of the server: ${children}`)
  })

  it("/_status answers JSON for loopback peers, with counts that match the traffic", async () => {
    const before = JSON.parse((await httpGet(server.port("web"), "/_status")).body)
    const echoBefore = before.services.find((s: { name: string }) => s.name === "echo")
    await exchange(server.port("echo"), "abc")
    await exchange(server.port("echo"), "defg")
    const doc = JSON.parse((await httpGet(server.port("web"), "/_status")).body)
    const echo = doc.services.find((s: { name: string }) => s.name === "echo")
    assert.strictEqual(echo.totalConnections - echoBefore.totalConnections, 2)
    assert.strictEqual(echo.bytesIn - echoBefore.bytesIn, 7)
    assert.strictEqual(echo.bytesOut - echoBefore.bytesOut, 7)
    const web = doc.services.find((s: { name: string }) => s.name === "web")
    const webBefore = before.services.find((s: { name: string }) => s.name === "web")
    assert.strictEqual(web.requests - webBefore.requests, 1, "the first /_status request is counted once answered")
    assert.isAtLeast(doc.uptimeSeconds, 0)
    assert.deepInclude(doc.supervisor[0], { id: "web", status: "running", restarts: 0 })
    const page = await httpGet(server.port("web"), "/_status", { Accept: "text/html" })
    assert.match(page.body, /<h1>fiberd status<\/h1>/)
  })
})

describe("fiberd life-cycle", () => {
  it("SIGHUP adds and removes services while a connection to an unchanged one stays open", async () => {
    const table = (services: Array<unknown>) => ({ services, accessLog: { path: "access.log" } })
    const echo = { name: "echo", protocol: "echo", listen: "127.0.0.1:0" }
    const daytime = { name: "daytime", protocol: "daytime", listen: "127.0.0.1:0" }
    const server = await start(table([echo, daytime]))
    try {
      const kept = await tcp(server.port("echo"))
      let got = ""
      kept.on("data", (d) => (got += d))
      kept.write("before ")
      const daytimePort = server.port("daytime")
      Fs.writeFileSync(server.configPath, JSON.stringify(table([echo, { name: "echo2", protocol: "echo", listen: "127.0.0.1:0" }])))
      server.child.kill("SIGHUP")
      await server.waitFor(/^echo2\t/m)
      assert.strictEqual(await exchange(server.port("echo2"), "new"), "new")
      const refused = await tcp(daytimePort).then((s) => (s.destroy(), false), () => true)
      assert.isTrue(refused, "the removed service no longer listens")
      kept.write("after")
      await sleep(200)
      assert.strictEqual(got, "before after", "the unchanged service kept its connection")
      // an invalid table is reported and the old one keeps running
      Fs.writeFileSync(server.configPath, "{ not json")
      server.child.kill("SIGHUP")
      await sleep(500)
      assert.match(server.stdout() + server.stderr(), /new table is invalid/)
      assert.strictEqual(await exchange(server.port("echo2"), "ok"), "ok")
      kept.destroy()
    } finally {
      assert.strictEqual(await server.stop(), 0)
    }
  })

  it("SIGTERM drains: an in-flight download finishes, new connections are refused, exit 0", async () => {
    const dir = site()
    Fs.writeFileSync(Path.join(dir, "big.bin"), Buffer.alloc(20 * 1024 * 1024, 0x62))
    const server = await start({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: dir }], drainTimeout: "20 seconds" })
    const port = server.port("web")
    const socket = await tcp(port)
    let received = 0
    socket.on("data", (d: Buffer) => {
      received += d.length
    })
    socket.pause()
    socket.write("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    await sleep(300)
    server.child.kill("SIGTERM")
    await sleep(300)
    const refused = await tcp(port).then((s) => (s.destroy(), false), () => true)
    assert.isTrue(refused, "no new connections while draining")
    const closed = new Promise<void>((r) => socket.once("close", () => r()))
    socket.resume()
    await closed
    assert.isAbove(received, 20 * 1024 * 1024, "the whole file (and its head) arrived")
    assert.strictEqual(await server.exited, 0)
  }, 60_000)
})

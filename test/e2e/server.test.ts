/**
 * End-to-end: the real fiberd process with every kind of service, talked to
 * with real clients (node:net, node:dgram, node:http, curl where installed).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFileSync, spawn } from "node:child_process"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileMatches } from "../support/files.ts"
import { mainScript, runOnce, type ServerProcess, start } from "../support/serverProcess.ts"

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

/** A line-oriented chat client; `waitFor` resolves on the data event that brings a matching line. */
const chatClient = async (port: number) => {
  const socket = await tcp(port)
  const lines: Array<string> = []
  const waiters = new Set<() => void>()
  let pending = ""
  socket.setEncoding("utf8")
  socket.on("data", (d: string) => {
    pending += d
    const parts = pending.split("\r\n")
    pending = parts.pop()!
    lines.push(...parts)
    for (const w of [...waiters]) w()
  })
  return {
    socket,
    lines,
    send: (line: string) => socket.write(line + "\n"),
    waitFor: (pred: (l: string) => boolean, ms = 5000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`no such line; got ${JSON.stringify(lines.slice(-5))}`))
        }, ms)
        const check = () => {
          if (!lines.some(pred)) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
        check()
      })
  }
}

/** Resolves when `file` exists and matches `pattern` (woken by fs.watch on its directory), or rejects after `ms`. */
/** Resolves once the data the socket receives (from now on) contains `text`. */
const receives = (socket: Net.Socket, text: string) =>
  new Promise<void>((resolve) => {
    let got = ""
    const onData = (d: Buffer) => {
      got += d.toString("latin1")
      if (!got.includes(text)) return
      socket.off("data", onData)
      resolve()
    }
    socket.on("data", onData)
  })

/** The child processes of `pid` (ps), polled once per event-loop turn until none is left, for at most `ms`. */
const noChildren = async (pid: number, ms = 5000) => {
  const list = () => execFileSync("sh", ["-c", `ps -o stat=,comm= --ppid ${pid} || true`]).toString().trim()
  const until = Date.now() + ms
  let children = list()
  while (children !== "" && Date.now() < until) {
    await new Promise((r) => setImmediate(r))
    children = list()
  }
  return children
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
    const log = await fileMatches(Path.join(server.dir, "access.log"), /"GET \/data.txt HTTP\/1\.1" 304/)
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
    // it reads again within the grace time: it gets the notice, then the server closes it
    const stalledClosed = new Promise<void>((r) => stalled.socket.once("end", () => r()))
    stalled.socket.resume()
    await stalled.waitFor((l) => l === "*** disconnected: you are not reading fast enough", 30_000)
    await stalledClosed
    await b.waitFor((l) => l.startsWith("<ann2> 9999 "), 30_000)
    a.send("still here")
    await b.waitFor((l) => l === "<ann2> still here")
    ;[a, b, stalled].forEach((x) => x.socket.destroy())
  }, 60_000)

  it("exec: cat and wc -c wired to the connection; no child left behind", async () => {
    assert.strictEqual(await exchange(server.port("cat"), "through cat\n"), "through cat\n")
    assert.strictEqual((await exchange(server.port("wc"), Buffer.alloc(12345, 0x61))).trim(), "12345")
    // a client that goes away while its child still runs: the child is killed and reaped
    const s = await tcp(server.port("cat"))
    const echoed = receives(s, "half")
    s.write("half")
    await echoed // cat runs: it echoed our bytes
    s.destroy()
    const children = await noChildren(server.child.pid!)
    assert.strictEqual(children, "", `children of the server: ${children}`)
  })

  it("/metrics: Prometheus text with the HTTP, listener, UDP and log counters, matching the traffic", async () => {
    const metric = (text: string, name: string, labels: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && labels.split(",").every((kv) => l.includes(kv)))
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
    }
    const scrape = async () => {
      const r = await httpGet(server.port("web"), "/metrics")
      assert.strictEqual(r.status, 200)
      assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/)
      return r.body
    }
    const before = await scrape()
    await httpGet(server.port("web"), "/data.txt")
    await httpGet(server.port("web"), "/no-such-file")
    await exchange(server.port("echo"), "abc")
    await udp(server.port("echo-udp"), "ping")
    const after = await scrape()
    const delta = (name: string, labels: string) => (metric(after, name, labels) ?? 0) - (metric(before, name, labels) ?? 0)
    // the first scrape itself is a GET 2xx answered before the second
    assert.strictEqual(delta("fiberd_http_requests_total", 'service="web",method="GET",status_class="2xx"'), 2)
    assert.strictEqual(delta("fiberd_http_requests_total", 'service="web",method="GET",status_class="4xx"'), 1)
    assert.strictEqual(delta("fiberd_http_request_duration_ms_count", 'service="web"'), 3)
    assert.isAtLeast(delta("fiberd_http_response_body_bytes_total", 'service="web"'), 10)
    assert.strictEqual(delta("fiberd_connections_accepted_total", 'service="echo"'), 1)
    assert.strictEqual(delta("fiberd_bytes_in_total", 'service="echo"'), 3)
    assert.strictEqual(delta("fiberd_udp_datagrams_in_total", 'service="echo-udp"'), 1)
    assert.isDefined(metric(after, "fiberd_log_written_total", 'log="access-log"'))
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
    // without JavaScript the page is the static table (the live view is drawn over it by the script)
    assert.match(page.body, /<div id="static">[\s\S]*<td>web<\/td>[\s\S]*<\/table>/)
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
      const after = receives(kept, "after")
      kept.write("after")
      await after
      assert.strictEqual(got, "before after", "the unchanged service kept its connection")
      // an invalid table is reported and the old one keeps running
      Fs.writeFileSync(server.configPath, "{ not json")
      server.child.kill("SIGHUP")
      await server.waitFor(/new table is invalid/)
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
    const started = receives(socket, "HTTP/1.1 200 OK")
    socket.write("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    await started // the download is in flight
    socket.pause()
    server.child.kill("SIGTERM")
    await server.waitFor(/stopped accepting; draining 1 connection/)
    const refused = await tcp(port).then((s) => (s.destroy(), false), () => true)
    assert.isTrue(refused, "no new connections while draining")
    const closed = new Promise<void>((r) => socket.once("close", () => r()))
    socket.resume()
    await closed
    assert.isAbove(received, 20 * 1024 * 1024, "the whole file (and its head) arrived")
    assert.strictEqual(await server.exited, 0)
  }, 60_000)
})

describe("fiberd life-cycle: shutdown and reload are orderly", () => {
  const chatLine = (socket: Net.Socket, line: string) => socket.write(line + "\n")

  it("SIGINT with members idle in chat rooms, an idle echo client and a silent HTTP client: everyone is told or closed at once, nothing restarts, exit 0", async () => {
    const server = await start({
      services: [
        { name: "chat", protocol: "chat", listen: "127.0.0.1:0" },
        { name: "echo", protocol: "echo", listen: "127.0.0.1:0" },
        { name: "web", protocol: "http", listen: "127.0.0.1:0", root: site() }
      ],
      drainTimeout: "60 seconds"
    })
    const member = await tcp(server.port("chat"))
    const joined = receives(member, "joined #lobby")
    chatLine(member, "/join lobby")
    await joined
    const idleEcho = await tcp(server.port("echo"))
    const silentWeb = await tcp(server.port("web"))
    const webClosed = new Promise<void>((r) => silentWeb.once("end", () => r()))
    const told = receives(member, "*** server shutting down")
    const echoClosed = new Promise<void>((r) => idleEcho.once("end", () => r()))
    server.child.kill("SIGINT")
    await told
    await echoClosed
    await webClosed // a connection that never sent a byte is idle too
    // well before the 60 s drain timeout
    assert.strictEqual(await server.exited, 0)
    assert.notMatch(server.stderr(), /restarting child|gave up|crashed/)
    member.destroy()
    idleEcho.destroy()
    silentWeb.destroy()
  }, 30_000)

  it("SIGHUP switches a changed access log, restarts a service whose drainTimeout changed, reports a changed errorLog", async () => {
    const table = (extra: object) => ({ services: [{ name: "echo", protocol: "echo", listen: "127.0.0.1:0" }, { name: "web", protocol: "http", listen: "127.0.0.1:0", root: site() }], accessLog: { path: "a.log" }, ...extra })
    const server = await start(table({}))
    try {
      await httpGet(server.port("web"), "/")
      await fileMatches(Path.join(server.dir, "a.log"), /"GET \/ HTTP\/1\.1" 200/)
      const echoPort = server.port("echo")
      Fs.writeFileSync(server.configPath, JSON.stringify(table({ accessLog: { path: "b.log" }, drainTimeout: "3 seconds", errorLog: { path: "stderr", format: "json" } })))
      server.child.kill("SIGHUP")
      await server.waitFor(/SIGHUP: table reloaded/)
      assert.match(server.stderr(), /access log switched to b\.log/)
      assert.match(server.stderr(), /errorLog changed/)
      assert.strictEqual(server.stdout().match(/^echo\t/gm)?.length, 2, "echo restarted for its new drainTimeout (its line printed again)")
      assert.strictEqual(server.port("echo"), echoPort, "on the listening socket it had: handed over, not bound anew")
      await httpGet(server.port("web"), "/data.txt")
      await fileMatches(Path.join(server.dir, "b.log"), /"GET \/data.txt HTTP\/1\.1" 200/)
      assert.notMatch(Fs.readFileSync(Path.join(server.dir, "a.log"), "utf8"), /data\.txt/)
    } finally {
      assert.strictEqual(await server.stop(), 0)
    }
  }, 30_000)

  it("SIGHUP reopens the access log with the built-in table too (log rotation): a rotated file is recreated", async () => {
    // the built-in table: no fiberd.json in the working directory; web on a free port (--port 0), the
    // classic services on their default loopback ports
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-builtin-"))
    const child = spawn(process.execPath, [mainScript, "--port", "0"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    const changed = new Set<() => void>()
    child.stdout!.on("data", (d: Buffer) => {
      out += d
      for (const f of [...changed]) f()
    })
    child.stderr!.on("data", (d: Buffer) => {
      err += d
      for (const f of [...changed]) f()
    })
    const until = (pattern: RegExp) =>
      new Promise<RegExpExecArray>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${pattern} in\n${out}\n${err}`)), 15_000)
        const check = () => {
          const m = pattern.exec(out + err)
          if (m === null) return
          clearTimeout(timer)
          changed.delete(check)
          resolve(m)
        }
        changed.add(check)
        check()
      })
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    try {
      const port = Number((await until(/^web\thttp\/tcp\t127\.0\.0\.1:(\d+)$/m))[1])
      await until(/^chat\t/m)
      await httpGet(port, "/")
      const log = Path.join(dir, "logs", "access.log")
      await fileMatches(log, /"GET \/ HTTP\/1\.1" 200/)
      Fs.renameSync(log, log + ".1")
      child.kill("SIGHUP")
      await until(/logs reopened/)
      await httpGet(port, "/style.css")
      const fresh = await fileMatches(log, /"GET \/style\.css HTTP\/1\.1" 200/)
      assert.notMatch(fresh, /"GET \/ HTTP/, "the new file holds only what came after the rotation")
    } finally {
      child.kill("SIGTERM")
      assert.strictEqual(await exited, 0, err)
    }
  }, 30_000)
})

describe("fiberd life-cycle: signals and children", () => {
  it("a second SIGTERM exits at once (130) and kills the exec children first", async () => {
    const server = await start({ services: [{ name: "cat", protocol: "exec", listen: "127.0.0.1:0", command: ["cat"] }], drainTimeout: "60 seconds" })
    const s = await tcp(server.port("cat"))
    const echoed = receives(s, "ping")
    s.write("ping")
    await echoed // cat runs
    const pids = execFileSync("ps", ["-o", "pid=", "--ppid", String(server.child.pid)]).toString().split("\n").map(Number).filter((p) => p > 0)
    assert.isAtLeast(pids.length, 1)
    server.child.kill("SIGTERM")
    await server.waitFor(/stopped accepting; draining 1 connection/)
    server.child.kill("SIGTERM")
    assert.strictEqual(await server.exited, 130)
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    // SIGKILL was sent before the exit; the orphan is reaped by init right after
    const until = Date.now() + 5000
    while (pids.some(alive) && Date.now() < until) await new Promise((r) => setImmediate(r))
    assert.deepStrictEqual(pids.filter(alive), [], "no exec child left running")
    s.destroy()
  }, 30_000)
})

describe("fiberd refuses log paths that could freeze it", () => {
  it("an access log path that is a FIFO: exit 1 at startup, naming the log, the problem and the path", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-fifo-"))
    const fifo = Path.join(dir, "access.fifo")
    execFileSync("mkfifo", [fifo])
    const run = await runOnce(["--config", (() => {
      const file = Path.join(dir, "fiberd.json")
      Fs.writeFileSync(file, JSON.stringify({ services: [{ name: "echo", protocol: "echo", listen: "127.0.0.1:0" }], accessLog: { path: fifo } }))
      return file
    })()])
    assert.strictEqual(run.code, 1)
    assert.include(run.stderr, `fiberd: access log: is not a regular file (a FIFO, device or socket needs allowNonRegular) (${fifo})`)
  })
})

describe("fiberd reload without dropping a request", () => {
  it("a keep-alive client hammering a service across 10 reloads that change it sees zero errors", async () => {
    const root = site()
    const table = (n: number) => ({
      services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root, headerTimeout: `${10 + n} seconds` }],
      accessLog: { path: "access.log" }
    })
    const server = await start(table(0))
    const port = server.port("web")
    const agent = new Http.Agent({ keepAlive: true, maxSockets: 8 })
    let ok = 0
    const errors: Array<string> = []
    let running = true
    const worker = async () => {
      while (running) {
        try {
          const r = await httpGet(port, "/data.txt", {}, agent)
          if (r.status === 200 && r.body === "0123456789") ok++
          else errors.push(`status ${r.status}`)
        } catch (e) {
          errors.push((e as Error).message)
        }
      }
    }
    const workers = Array.from({ length: 8 }, worker)
    try {
      for (let n = 1; n <= 10; n++) {
        const before = ok
        Fs.writeFileSync(server.configPath, JSON.stringify(table(n)))
        server.child.kill("SIGHUP")
        await server.waitFor(new RegExp(`(SIGHUP: table reloaded[^]*){${n}}`))
        // requests keep flowing after each reload
        while (ok < before + 50 && errors.length === 0) await new Promise((r) => setImmediate(r))
      }
    } finally {
      running = false
      await Promise.all(workers)
      agent.destroy()
    }
    assert.deepStrictEqual(errors, [], "no request failed across the reloads")
    assert.isAbove(ok, 500)
    assert.strictEqual(server.port("web"), port, "the same listening socket throughout")
    assert.strictEqual(await server.stop(), 0)
  }, 60_000)
})

describe("fiberd out of file descriptors (EMFILE)", () => {
  it("a large file requested when no descriptor is left gets 503 with Retry-After (never 200 and a reset), and its access-log line", async () => {
    const root = site()
    Fs.writeFileSync(Path.join(root, "big.bin"), Buffer.alloc(2 * 1024 * 1024, 0x62)) // over the cache limit: opened per request
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-emfile-"))
    const config = Path.join(dir, "fiberd.json")
    Fs.writeFileSync(config, JSON.stringify({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root }], accessLog: { path: "access.log" } }))
    const child = spawn("sh", ["-c", `ulimit -n 64 && exec "${process.execPath}" "${mainScript}" --config "${config}"`], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    child.stdout!.on("data", (d: Buffer) => (out += d))
    child.stderr!.on("data", () => {})
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    const held: Array<Net.Socket> = []
    const waiting: Array<Net.Socket> = []
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no service line: ${out}`)), 15_000)
        child.stdout!.on("data", () => /^web\t/m.test(out) && (clearTimeout(t), resolve()))
      })
      const port = Number(/^web\t\S+\t127\.0\.0\.1:(\d+)$/m.exec(out)![1])
      /** A keep-alive connection that got its answer to GET /, or undefined when the server could not take it. */
      const hold = () =>
        new Promise<Net.Socket | undefined>((resolve) => {
          const s = Net.connect(port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
          let got = ""
          const onData = (d: Buffer) => {
            got += d.toString("latin1")
            if (got.includes("<h1>e2e</h1>")) (s.off("data", onData), resolve(s))
          }
          s.on("data", onData)
          s.on("error", () => {})
          s.once("close", () => resolve(undefined))
          // a connection left in the kernel's backlog (accept failing with EMFILE) gets no answer at all. It is
          // kept open, not destroyed: on a loaded machine it may have been accepted, only slowly, and destroying
          // it would free the server a descriptor
          setTimeout(() => (waiting.push(s), resolve(undefined)), 2000).unref()
        })
      // fill the descriptor table with served, kept-alive connections (three misses in a row: it is full, not
      // merely slow on a loaded machine)
      for (let i = 0, misses = 0; i < 400 && misses < 3; i++) {
        const s = await hold()
        if (s === undefined) misses++
        else (held.push(s), (misses = 0))
      }
      assert.isAbove(held.length, 5)
      const probe = held.pop()!
      // free nothing: ask for the big file on a connection the server already has
      const answer = await new Promise<string>((resolve) => {
        let got = ""
        probe.on("data", (d: Buffer) => {
          got += d.toString("latin1")
          if (got.includes("\r\n\r\n") && (got.startsWith("HTTP/1.1 503") || got.length > 1000)) resolve(got)
        })
        probe.once("close", () => resolve(got))
        probe.write("GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
      })
      assert.match(answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/)
      assert.include(answer, "Retry-After: 1\r\n")
      for (const s of [...held.splice(0), ...waiting.splice(0)]) s.destroy()
      probe.destroy()
      await fileMatches(Path.join(dir, "access.log"), /"GET \/big\.bin HTTP\/1\.1" 503/)
    } finally {
      for (const s of [...held, ...waiting]) s.destroy()
      child.kill("SIGTERM")
      await exited
    }
  }, 60_000)
})

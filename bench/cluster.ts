/**
 * Cluster chat (issue 14), on the real fiberd program and a throwaway
 * PostgreSQL: fan-out (30 members in one room, 3 of them sending 1,000 lines
 * each; delivered lines per second until every member has every line) on a
 * single node vs a 3-node cluster (members spread over the nodes), and
 * failover time (kill -9 of the node hosting the room → the first line
 * delivered again between members on the surviving nodes), and cross-node
 * line latency (a sender on one node, 1,000 lines/s, a member on another node
 * and one on the room's node: p50/p99 from write to delivery).
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { startPostgres } from "../test/support/postgres.ts"
import { freePort } from "../test/support/netClient.ts"

const main = Path.resolve(import.meta.dirname, "../src/runtime/main.ts")

interface Node {
  readonly child: ChildProcess
  readonly chatPort: number
  readonly webPort: number
}

const startNode = (cluster: unknown): Promise<Node> =>
  new Promise((resolve, reject) => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-bench-cluster-"))
    Fs.writeFileSync(Path.join(dir, "fiberd.json"), JSON.stringify({
      services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }, { name: "chat", protocol: "chat", listen: "127.0.0.1:0", outboxSize: 100_000 }],
      accessLog: { path: "access.log" },
      offload: { threads: 0 },
      ...(cluster === undefined ? {} : { cluster })
    }))
    const child = spawn(process.execPath, [main, "--config", "fiberd.json"], { cwd: dir, stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout!.on("data", (d) => {
      out += d
      const chat = /^chat\t\S+\t127\.0\.0\.1:(\d+)$/m.exec(out)
      const web = /^web\t\S+\t127\.0\.0\.1:(\d+)$/m.exec(out)
      if (chat !== null && web !== null) resolve({ child, chatPort: Number(chat[1]), webPort: Number(web[1]) })
    })
    child.once("exit", (code) => reject(new Error(`node exited ${code}`)))
  })

const stop = (node: Node) =>
  new Promise<void>((resolve) => {
    if (node.child.exitCode !== null || node.child.signalCode !== null) return resolve()
    node.child.once("exit", () => resolve())
    node.child.kill("SIGKILL")
  })

const hostsLobby = (node: Node) =>
  fetch(`http://127.0.0.1:${node.webPort}/_status?format=json`).then((r) => r.json()).then((d) => (d as { cluster?: { rooms: Array<string>; shards: number } }).cluster)

/** A member: counts the room's chat lines it receives; `until(n)` resolves at n. */
const member = (port: number, nick: string) =>
  new Promise<{ socket: Net.Socket; count: () => number; until: (n: number) => Promise<void>; sees: (text: string) => Promise<number> }>((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    let count = 0
    let text = ""
    const waiters: Array<() => void> = []
    socket.on("data", (d: Buffer) => {
      const s = d.toString()
      text = (text + s).slice(-4096)
      for (let i = s.indexOf("\n<"); i !== -1; i = s.indexOf("\n<", i + 1)) count++
      if (s.startsWith("<")) count++
      waiters.splice(0).forEach((w) => w())
    })
    socket.on("error", () => {})
    const wait = (ok: () => boolean) =>
      new Promise<void>((r) => {
        const check = () => (ok() ? r() : waiters.push(check))
        check()
      })
    socket.write(`/nick ${nick}\r\n/join lobby\r\n`)
    void wait(() => text.includes(`${nick} joined #lobby`)).then(() =>
      resolve({
        socket,
        count: () => count,
        until: (n) => wait(() => count >= n),
        sees: (needle) => wait(() => text.includes(needle)).then(() => performance.now())
      })
    )
  })

/** Fan-out on `nodes`: 30 members spread over them, 3 senders × `lines` lines. */
const fanOut = async (nodes: ReadonlyArray<Node>, lines: number) => {
  const members = []
  for (let i = 0; i < 30; i++) members.push(await member(nodes[i % nodes.length]!.chatPort, `m${i}`))
  const senders = members.slice(0, 3)
  const started = performance.now()
  for (const s of senders) s.socket.write(Array.from({ length: lines }, (_, i) => `line ${i}`).join("\r\n") + "\r\n")
  // each member gets every line but its own
  await Promise.all(members.map((m, i) => m.until(i < 3 ? 2 * lines : 3 * lines)))
  const seconds = (performance.now() - started) / 1000
  const delivered = members.reduce((n, m) => n + m.count(), 0)
  for (const m of members) m.socket.destroy()
  return delivered / seconds
}

/** Sends `count` lines at 1,000/s from a member on nodes[0]; members on the other nodes time each line's arrival. */
const latency = async (nodes: ReadonlyArray<Node>, count: number) => {
  const join = (port: number, nick: string) =>
    new Promise<{ socket: Net.Socket; onLine: (f: (line: string) => void) => void }>((resolve) => {
      const socket = Net.connect(port, "127.0.0.1")
      socket.setNoDelay(true) // each line on its own, as an interactive client sends it
      let text = ""
      let listener: (line: string) => void = () => {}
      let joined = false
      socket.on("data", (d: Buffer) => {
        text += d.toString()
        const parts = text.split("\r\n")
        text = parts.pop()!
        for (const line of parts) {
          if (!joined && line.includes(`${nick} joined #latency`)) (joined = true, resolve({ socket, onLine: (f) => (listener = f) }))
          listener(line)
        }
      })
      socket.write(`/nick ${nick}\r\n/join latency\r\n`)
    })
  const sender = await join(nodes[0]!.chatPort, "ls")
  const receivers = [await join(nodes[1]!.chatPort, "lr1"), await join(nodes[2]!.chatPort, "lr2")]
  const sentAt = new Map<number, number>()
  const delays: Array<number> = []
  for (const r of receivers) {
    r.onLine((line) => {
      const m = /^<ls> (\d+)$/.exec(line)
      if (m !== null) delays.push(performance.now() - sentAt.get(Number(m[1]))!)
    })
  }
  const started = performance.now()
  for (let i = 0; i < count; i++) {
    // paced to 1 line per ms (a timer per line would add its own jitter): catch up to the schedule, then wait
    while (performance.now() - started < i) await new Promise((r) => setImmediate(r))
    sentAt.set(i, performance.now())
    sender.socket.write(`${i}\r\n`)
  }
  const deadline = performance.now() + 10_000
  while (delays.length < count * receivers.length && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  for (const s of [sender, ...receivers]) s.socket.destroy()
  delays.sort((a, b) => a - b)
  const at = (q: number) => delays[Math.min(delays.length - 1, Math.floor(q * delays.length))]!
  return { p50: at(0.5), p99: at(0.99), max: delays[delays.length - 1]! }
}

export const run = async (lines = 1000) => {
  const pg = await startPostgres()
  try {
    const single = await startNode(undefined)
    const singleRate = await fanOut([single], lines)
    await stop(single)
    const runners = [await freePort(), await freePort(), await freePort()]
    const cluster = (port: number) => ({ runnerAddress: `127.0.0.1:${port}`, postgres: pg.url, shardLockExpiration: "5 seconds" })
    const nodes: Array<Node> = []
    for (const port of runners) nodes.push(await startNode(cluster(port)))
    // wait for the shards to settle on the three runners
    for (let ok = false; !ok;) {
      const docs = await Promise.all(nodes.map(hostsLobby))
      ok = docs.every((d) => d !== undefined && d.shards >= 75) && docs.reduce((n, d) => n + d!.shards, 0) === 300
    }
    const clusterRate = await fanOut(nodes, lines)
    console.log(`  fan-out, 30 members, 3 senders × ${lines} lines: single node ${Math.round(singleRate)} lines/s | 3-node cluster ${Math.round(clusterRate)} lines/s (${(clusterRate / singleRate).toFixed(2)}×)`)

    // latency across nodes: 1,000 lines/s from a member on one node to members on the two others
    const lat = await latency(nodes, 5000)
    console.log(`  latency across nodes at 1,000 lines/s (5,000 lines): p50 ${lat.p50.toFixed(2)} ms, p99 ${lat.p99.toFixed(2)} ms, max ${lat.max.toFixed(2)} ms`)

    // failover: members on every node; kill the room's host; a survivor sends a line every 20 ms
    const members = await Promise.all(nodes.map((n, i) => member(n.chatPort, `f${i}`)))
    const docs = await Promise.all(nodes.map(hostsLobby))
    const host = docs.findIndex((d) => d!.rooms.includes("lobby"))
    const others = [0, 1, 2].filter((i) => i !== host)
    const [sender, receiver] = [members[others[0]!]!, members[others[1]!]!]
    const killedAt = performance.now()
    nodes[host]!.child.kill("SIGKILL")
    let n = 0
    const ticker = setInterval(() => sender.socket.write(`after ${++n}\r\n`), 20)
    const firstAt = await receiver.sees("<f" + others[0] + "> after ")
    clearInterval(ticker)
    console.log(`  failover (shard locks 5 s): kill -9 of the room's host → first line delivered again ${((firstAt - killedAt) / 1000).toFixed(2)} s later`)
    for (const m of members) m.socket.destroy()
    for (const node of nodes) await stop(node)
  } finally {
    pg.stop()
  }
}

/**
 * End-to-end: chat across nodes loses nothing while rooms move. Members on
 * every node of a cluster (the fiberd program, one throwaway PostgreSQL) send
 * numbered lines continuously into one room while the cluster changes: a
 * fourth node joins (shards rebalance), the node hosting the room is stopped
 * with SIGTERM (its shards move; and a node with members, if the host had
 * none), a node reloads with SIGHUP, and — in its
 * own test — the room's host is killed with -9. Every member must get every
 * other member's lines exactly once and in order; for members whose node went
 * away, every member must have the same lines of theirs (what the room took).
 * The kill test prints the time until lines flow again and the lines lost.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import { postgresForNodes } from "../support/postgresForNodes.ts"
import { type ServerProcess, start } from "../support/serverProcess.ts"
import { freePort } from "../support/netClient.ts"

const fixture = postgresForNodes()
const nodes: Array<ServerProcess> = fixture.nodes as Array<ServerProcess>

const startNode = async () => {
  const node = await start({
    services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }, { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }],
    accessLog: { path: "access.log" },
    cluster: { runnerAddress: `127.0.0.1:${await freePort()}`, postgres: fixture.pg.url, shardLockExpiration: "3 seconds" }
  })
  nodes.push(node)
  return node
}

interface Cluster {
  readonly runner: string
  readonly shards: number
  readonly shardsPerGroup: number
  readonly rooms: ReadonlyArray<string>
}
const cluster = (node: ServerProcess): Promise<Cluster> =>
  fetch(`http://127.0.0.1:${node.port("web")}/_status?format=json`).then((r) => r.json()).then((d) => (d as { cluster: Cluster }).cluster)

/** Waits until the live nodes own every shard, each a fair share (no rebalancing left to do). */
const settled = async (live: ReadonlyArray<ServerProcess>) => {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const docs = await Promise.all(live.map(cluster))
    const total = docs.reduce((n, d) => n + d.shards, 0)
    if (total === docs[0]!.shardsPerGroup && docs.every((d) => d.shards >= docs[0]!.shardsPerGroup / (live.length + 1))) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error("the shards did not settle")
}
const hostOf = async (live: ReadonlyArray<ServerProcess>, room: string) => {
  for (;;) {
    const docs = await Promise.all(live.map(cluster))
    const at = docs.findIndex((d) => d.rooms.includes(room))
    if (at >= 0) return live[at]!
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A member sending `<nick> n` lines every `every` ms; records the numbers it gets from each other member. */
const member = async (node: ServerProcess, nick: string, room: string) => {
  const socket = Net.connect(node.port("chat"), "127.0.0.1")
  const got = new Map<string, Array<number>>()
  const notices: Array<string> = []
  let pending = ""
  let joined: () => void
  const joinedNow = new Promise<void>((r) => (joined = r))
  let closed = false
  socket.on("data", (d: Buffer) => {
    pending += d.toString()
    const lines = pending.split("\r\n")
    pending = lines.pop()!
    for (const line of lines) {
      const m = /^<(\S+)> (\d+)$/.exec(line)
      if (m !== null) {
        const list = got.get(m[1]!) ?? []
        list.push(Number(m[2]))
        got.set(m[1]!, list)
      } else notices.push(line)
      if (line === `*** ${nick} joined #${room}`) joined()
    }
  })
  socket.on("close", () => (closed = true))
  socket.on("error", () => {})
  socket.write(`/nick ${nick}\r\n/join ${room}\r\n`)
  await joinedNow
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  return {
    nick,
    node,
    got,
    notices,
    sent: () => sent,
    closed: () => closed,
    talk: (every: number) => (timer = setInterval(() => !closed && socket.write(`${++sent}\r\n`), every)),
    hush: () => clearInterval(timer),
    close: () => socket.destroy()
  }
}
type Member = Awaited<ReturnType<typeof member>>

/** Until `ok` or `ms` passed. */
const until = async (ok: () => boolean, ms: number) => {
  const deadline = Date.now() + ms
  while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
}

/** Each receiver's list of a sender's numbers: exactly 1..k, the same k for every receiver (k = all it sent, if it stayed). */
const checkDelivery = (members: ReadonlyArray<Member>, senders = members) => {
  const receivers = members.filter((m) => !m.closed())
  const report: Array<string> = []
  for (const sender of senders) {
    const lists = receivers.filter((r) => r !== sender).map((r) => ({ r: r.nick, list: r.got.get(sender.nick) ?? [] }))
    for (const { r, list } of lists) {
      const inOrder = list.every((n, i) => n === i + 1)
      if (!inOrder) report.push(`${r} got ${sender.nick}'s lines out of order or doubled: ${list.join(",").slice(0, 300)}`)
    }
    const counts = new Set(lists.map((l) => l.list.length))
    if (counts.size > 1) report.push(`${sender.nick}'s lines reached members unevenly: ${lists.map((l) => `${l.r}:${l.list.length}`).join(" ")}`)
    if (!sender.closed() && lists.some((l) => l.list.length !== sender.sent())) {
      report.push(`${sender.nick} sent ${sender.sent()}, members got ${lists.map((l) => `${l.r}:${l.list.length}`).join(" ")}`)
    }
  }
  return report
}

describe("cluster chat loses nothing", () => {
  it("a node joins, the room's host stops with SIGTERM, a node reloads with SIGHUP: every line exactly once, in order", async () => {
    const [a, b, c] = [await startNode(), await startNode(), await startNode()]
    await settled([a, b, c])
    const members: Array<Member> = []
    for (const [i, node] of [a, b, c].entries()) for (const j of [1, 2]) members.push(await member(node!, `m${i}${j}`, "flow"))
    for (const m of members) m.talk(15)
    const count = () => members.reduce((n, m) => n + m.sent(), 0)
    const passed = (lines: number) => until(() => count() >= lines, 30_000)
    await passed(300)

    // a fourth node joins: the shards rebalance, maybe moving the room
    const d = await startNode()
    await settled([a, b, c, d])
    await passed(count() + 300)

    // the room's host stops gracefully: its members are let go, the room moves to another node
    const host = await hostOf([a, b, c, d], "flow")
    await host.stop()
    let live = [a, b, c, d].filter((n) => n !== host)
    await settled(live)
    await passed(count() + 300)
    // (when the host had no members, the room moved by itself; a node with members stops gracefully too)
    if (!members.some((m) => m.node === host)) {
      const other = live.find((n) => members.some((m) => m.node === n))!
      await other.stop()
      live = live.filter((n) => n !== other)
      await settled(live)
      await passed(count() + 300)
    }

    // a node reloads its configuration
    live[0]!.child.kill("SIGHUP")
    await passed(count() + 300)

    for (const m of members) m.hush()
    const stayed = members.filter((m) => !m.closed())
    // everything sent arrives (or not: the check says what is missing)
    await until(() => stayed.every((r) => stayed.every((s) => s === r || (r.got.get(s.nick)?.length ?? 0) >= s.sent())), 20_000)
    const problems = checkDelivery(members)
    console.log(
      `  no-loss: ${count()} lines from ${members.length} members; ${members.length - stayed.length} members left with the stopped node; ` +
        `${stayed.reduce((n, r) => n + [...r.got.values()].reduce((k, l) => k + l.length, 0), 0)} deliveries`
    )
    assert.deepStrictEqual(problems, [])
    // the stopped node's members quit exactly once in everyone's eyes
    for (const gone of members.filter((m) => m.closed())) {
      for (const r of stayed) assert.strictEqual(r.notices.filter((l) => l === `*** ${gone.nick} quit`).length, 1, `${r.nick} sees ${gone.nick} quit once`)
    }
    // nobody was told a line was lost
    for (const m of stayed) assert.deepStrictEqual(m.notices.filter((l) => l.includes("not delivered")), [])
    for (const m of members) m.close()
  }, 240_000)

  it("kill -9 of the room's host: members elsewhere keep their place; recovery time and lines lost", async () => {
    const live = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null)
    // three nodes: the room's host to kill, and two survivors to see each other's lines
    while (live.length < 3) live.push(await startNode())
    await settled(live)
    const members: Array<Member> = []
    for (const [i, node] of live.entries()) members.push(await member(node, `k${i}`, "crash"))
    for (const m of members) m.talk(20)
    await until(() => members.every((m) => m.sent() >= 20), 30_000)
    const host = await hostOf(live, "crash")
    const killedAt = Date.now()
    host.child.kill("SIGKILL")
    const survivors = members.filter((m) => m.node !== host)
    // lines flow again: a survivor gets a line another survivor sent after the kill
    const [from, to] = [survivors[0]!, survivors[1]!]
    const sentAtKill = from.sent()
    await until(() => (to.got.get(from.nick) ?? []).some((n) => n > sentAtKill), 30_000)
    const recovery = Date.now() - killedAt
    await until(() => members.filter((m) => m.node === host).every((m) => m.closed()), 10_000)
    for (const m of members) m.hush()
    await until(() => survivors.every((r) => survivors.every((s) => s === r || (r.got.get(s.nick)?.length ?? 0) >= s.sent())), 20_000)
    // the killed node's members quit, once, after the room's presence grace (5 s)
    for (const k of members.filter((m) => m.node === host)) {
      await until(() => survivors.every((r) => r.notices.includes(`*** ${k.nick} quit`)), 20_000)
      for (const r of survivors) assert.strictEqual(r.notices.filter((l) => l === `*** ${k.nick} quit`).length, 1, `${r.nick} sees ${k.nick} quit once`)
    }
    const problems = checkDelivery(members, survivors)
    const killed = members.filter((m) => m.node === host)
    const lostOfKilled = killed.map((k) => `${k.nick}: sent ${k.sent()}, got by survivors ${survivors.map((s) => s.got.get(k.nick)?.length ?? 0).join("/")}`)
    const told = survivors.reduce((n, m) => n + m.notices.filter((l) => l.includes("not delivered")).length, 0)
    console.log(`  kill -9 of the room's host (shard locks 3 s): lines flow again after ${(recovery / 1000).toFixed(2)} s; ` +
      `survivors' lines lost: ${problems.length === 0 ? 0 : problems.join("; ")}; senders told of undelivered lines: ${told}; the killed node's members: ${lostOfKilled.join(", ")}`)
    assert.deepStrictEqual(problems, [])
    assert.isBelow(recovery, 30_000)
    for (const m of members) m.close()
  }, 120_000)
})

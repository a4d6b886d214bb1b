/**
 * End-to-end: three fiberd nodes on loopback in cluster mode, sharing one
 * throwaway PostgreSQL server. Members on all three join one room and see
 * each other's lines in order per sender; `kill -9` of the node hosting the
 * room: its member is disconnected and quits once in the others' eyes, the
 * room moves to a surviving node and a line sent right after the kill reaches everyone; the
 * killed node restarts and rejoins. A WebSocket member (Node's WebSocket)
 * meets the TCP members in the same cluster room. `/_status` shows each node's runner,
 * shards and hosted rooms.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Http from "node:http"
import * as Net from "node:net"
import { postgresForNodes } from "../support/postgresForNodes.ts"
import { type ServerProcess, start } from "../support/serverProcess.ts"
import { freePort } from "../support/netClient.ts"

const fixture = postgresForNodes()
const nodes: Array<ServerProcess> = fixture.nodes as Array<ServerProcess>

const table = (runnerPort: number) => ({
  services: [
    { name: "web", protocol: "http", listen: "127.0.0.1:0", chat: "chat" },
    { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }
  ],
  accessLog: { path: "access.log" },
  cluster: { runnerAddress: `127.0.0.1:${runnerPort}`, postgres: fixture.pg.url, shardLockExpiration: "3 seconds" }
})

interface ClusterDoc {
  readonly cluster: { readonly runner: string; readonly shards: number; readonly shardsPerGroup: number; readonly rooms: ReadonlyArray<string> }
}
const status = (node: ServerProcess) =>
  new Promise<ClusterDoc>((resolve, reject) => {
    Http.get({ host: "127.0.0.1", port: node.port("web"), path: "/_status?format=json" }, (res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve(JSON.parse(body)))
    }).on("error", reject)
  })

/** A chat member over TCP: `sees` resolves when a line matching arrives (from now or already). */
const member = async (node: ServerProcess, nick: string) => {
  const socket = Net.connect(node.port("chat"), "127.0.0.1")
  const lines: Array<string> = []
  let pending = ""
  const waiters: Array<() => void> = []
  let closed = false
  socket.on("data", (d: Buffer) => {
    pending += d.toString()
    const parts = pending.split("\r\n")
    pending = parts.pop()!
    lines.push(...parts)
    waiters.splice(0).forEach((w) => w())
  })
  socket.on("close", () => {
    closed = true
    waiters.splice(0).forEach((w) => w())
  })
  socket.on("error", () => {})
  const waitUntil = (ok: () => boolean, what: string, ms = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${nick}: timed out waiting for ${what}; saw:\n${lines.join("\n")}`)), ms)
      const check = () => {
        if (ok()) {
          clearTimeout(timer)
          resolve()
        } else waiters.push(check)
      }
      check()
    })
  const m = {
    nick,
    lines,
    send: (line: string) => socket.write(line + "\r\n"),
    /** Resolves when a line from index `from` on matches. */
    sees: (pattern: string | RegExp, ms?: number, from = 0) =>
      waitUntil(() => lines.slice(from).some((l) => (typeof pattern === "string" ? l.includes(pattern) : pattern.test(l))), String(pattern), ms),
    closed: () => waitUntil(() => closed, "the connection to close"),
    destroy: () => socket.destroy()
  }
  m.send(`/nick ${nick}`)
  await m.sees(`you are now ${nick}`)
  return m
}

describe("cluster mode", () => {
  it("three nodes share a room; kill -9 of its host moves it; the node restarts and rejoins", async () => {
    const runnerPorts = [await freePort(), await freePort(), await freePort()]
    for (const port of runnerPorts) nodes.push(await start(table(port)))
    // the shards settle on the three runners, each owned by exactly one (rooms created meanwhile would move)
    const settle = Date.now() + 60_000
    const settled = (docs: ReadonlyArray<ClusterDoc>) =>
      docs.reduce((n, d) => n + d.cluster.shards, 0) === docs[0]!.cluster.shardsPerGroup && docs.every((d) => d.cluster.shards >= docs[0]!.cluster.shardsPerGroup / 4)
    let first = await Promise.all(nodes.map(status))
    while (!settled(first) && Date.now() < settle) first = await Promise.all(nodes.map(status))
    assert.isTrue(settled(first), `shards: ${first.map((d) => d.cluster.shards).join(" ")}`)
    const members = [await member(nodes[0]!, "ann"), await member(nodes[1]!, "bob"), await member(nodes[2]!, "cid")]
    for (const m of members) {
      m.send("/join lobby")
      await m.sees(`${m.nick} joined #lobby`)
    }
    // each sees the joins from its own on
    for (const [i, m] of members.entries()) for (const later of members.slice(i)) await m.sees(`${later.nick} joined #lobby`)
    // nicks are unique in the room across nodes
    const dup = await member(nodes[1]!, "ann")
    dup.send("/join lobby")
    await dup.sees("*** error: the nick ann is taken in #lobby")
    dup.destroy()
    // every member sees every other's lines, in order per sender
    for (const m of members) for (let i = 1; i <= 3; i++) m.send(`${m.nick} says ${i}`)
    for (const m of members) {
      for (const other of members.filter((o) => o !== m)) {
        await m.sees(`<${other.nick}> ${other.nick} says 3`)
        const order = m.lines.filter((l) => l.startsWith(`<${other.nick}> `)).map((l) => l.slice(-1))
        assert.deepStrictEqual(order, ["1", "2", "3"], `${m.nick} sees ${other.nick}'s lines in order`)
      }
    }
    // a WebSocket member (Node's WebSocket, on another node's http service) is in the same cluster room
    const ws = new WebSocket(`ws://127.0.0.1:${nodes[1]!.port("web")}/chat`)
    const wsLines: Array<string> = []
    const wsWaiters: Array<() => void> = []
    ws.addEventListener("message", (e) => {
      wsLines.push(String(e.data))
      wsWaiters.splice(0).forEach((w) => w())
    })
    const wsSees = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => (wsLines.some((l) => l.includes(text)) ? resolve() : wsWaiters.push(check))
        check()
      })
    await new Promise((r) => ws.addEventListener("open", r))
    ws.send("/nick web")
    ws.send("/join lobby")
    await wsSees("web joined #lobby")
    for (const m of members) await m.sees("web joined #lobby")
    ws.send("hello from a browser")
    for (const m of members) await m.sees("<web> hello from a browser")
    members[2]!.send("hello web")
    await wsSees("<cid> hello web")
    ws.close()
    for (const m of members) await m.sees("web quit")
    members[0]!.send("/who")
    await members[0]!.sees(/^\*\*\* in #lobby: (?=.*ann)(?=.*bob)(?=.*cid)/)

    // the node hosting the room
    const docs = await Promise.all(nodes.map(status))
    const hostIndex = docs.findIndex((d) => d.cluster.rooms.includes("lobby"))
    assert.isAtLeast(hostIndex, 0, JSON.stringify(docs))
    for (const [i, d] of docs.entries()) assert.strictEqual(d.cluster.runner, `127.0.0.1:${runnerPorts[i]}`)

    const host = nodes[hostIndex]!
    host.child.kill("SIGKILL")
    await members[hostIndex]!.closed() // its member was on it
    const survivors = members.filter((_, i) => i !== hostIndex)
    // the survivors keep their place: a line sent right away waits for the room to come back on a surviving node
    survivors[0]!.send("after the move")
    await survivors[1]!.sees(`<${survivors[0]!.nick}> after the move`, 30_000)
    // its member quits with its node, once, after the room's presence grace (the room learnt it back from the survivors)
    const gone = members[hostIndex]!.nick
    for (const m of survivors) await m.sees(`*** ${gone} quit`, 30_000)
    for (const m of survivors) assert.strictEqual(m.lines.filter((l) => l === `*** ${gone} quit`).length, 1)
    const moved = await Promise.all(nodes.filter((_, i) => i !== hostIndex).map(status))
    assert.isTrue(moved.some((d) => d.cluster.rooms.includes("lobby")), "a surviving node hosts the room")

    // the killed node restarts on its runner address and rejoins: its members meet the others
    const restarted = await start(table(runnerPorts[hostIndex]!))
    nodes.push(restarted)
    // the cluster gives it its share of the shards (if that moves the room there, its members join it again)
    const deadline = Date.now() + 30_000
    let mine = await status(restarted)
    while (mine.cluster.shards === 0 && Date.now() < deadline) mine = await status(restarted)
    assert.isAbove(mine.cluster.shards, 0, "the restarted node owns shards again")
    const back = await member(restarted, "dee")
    // while the shards settle on the restarted node a join may find no node for the room yet: it is refused
    // with "try again" (never left hanging), and the member tries again
    for (let attempt = 0; attempt < 4 && !back.lines.some((l) => l.includes("dee joined #lobby")); attempt++) {
      const seen = back.lines.length
      back.send("/join lobby")
      await back.sees(/dee joined #lobby|is not reachable; try again/, 60_000, seen)
      if (back.lines.slice(seen).some((l) => l.includes("dee joined #lobby"))) break
    }
    await back.sees("dee joined #lobby")
    // /who until the room lists everyone: the survivors may still be joining the room where it lives now
    const everyone = ["dee", ...survivors.map((m) => m.nick)]
    let listed = ""
    while (!everyone.every((n) => listed.split(" ").includes(n)) && Date.now() < deadline) {
      const seen = back.lines.length
      back.send("/who")
      await new Promise<void>((resolve) => {
        const check = () => {
          const line = back.lines.slice(seen).find((l) => l.startsWith("*** in #lobby: "))
          if (line === undefined) return void setImmediate(check)
          listed = line.slice("*** in #lobby: ".length)
          resolve()
        }
        check()
      })
    }
    assert.sameMembers(listed.split(" "), everyone)
    back.send("I am back")
    for (const m of survivors) await m.sees("<dee> I am back")
    survivors[1]!.send("welcome back")
    await back.sees(`<${survivors[1]!.nick}> welcome back`)
  }, 120_000)
})

/**
 * A standing fuzz and chaos test of fiberd's newest front doors, WebSocket
 * and TLS (issue 27), against the real server on loopback: fast-check makes
 * hostile WebSocket frame sequences for the default `/chat` route (empty and
 * one-byte fragments, interleaved and flooding control frames, huge declared
 * lengths, partial frames dribbled byte by byte) and hostile TLS openings
 * (silent connections, partial ClientHellos, plaintext) for an HTTPS
 * service. While they run, a legitimate WebSocket chat member and an HTTPS
 * client keep making round trips. Checked: the server's heap grows by a
 * bounded amount per hostile connection and its descriptors stay within the
 * service's limits, the legitimate round trips stay near their quiet
 * latency, and afterwards `/_status` answers with nothing pending, no
 * handler failure, and descriptors back at their baseline.
 */
import { assert, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Https from "node:https"
import * as Net from "node:net"
import { encodeMasked, Opcode } from "../../src/protocols/websocket/Frame.ts"
import { certDir, makeCert } from "../support/certs.ts"
import { partialClientHello } from "../support/clientHello.ts"
import { start } from "../support/serverProcess.ts"
import { untilTrue } from "../support/until.ts"

const mask = Buffer.from([0x11, 0x22, 0x33, 0x44])
const KEY = "dGhlIHNhbXBsZSBub25jZQ=="
const handshake = `GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`

/** One hostile WebSocket frame (or a raw header that declares a huge payload). */
const frame: fc.Arbitrary<Buffer> = fc.oneof(
  fc.record({ opcode: fc.constantFrom(Opcode.Text, Opcode.Binary, Opcode.Continuation), fin: fc.boolean(), payload: fc.uint8Array({ maxLength: 3 }) })
    .map((f) => encodeMasked(f.opcode, f.payload, mask, f.fin)),
  fc.integer({ min: 1, max: 5000 }).map((n) => Buffer.concat(Array.from({ length: n }, () => encodeMasked(Opcode.Continuation, Buffer.alloc(0), mask, false)))),
  fc.integer({ min: 1, max: 2000 }).map((n) => Buffer.concat(Array.from({ length: n }, () => encodeMasked(Opcode.Ping, Buffer.from("p"), mask)))),
  fc.constantFrom(0x7fff_ffff, 2 ** 40, 900_000).map((length) => {
    const header = Buffer.alloc(14)
    header[0] = 0x82
    header[1] = 0x80 | 127
    header.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    header.writeUInt32BE(length >>> 0, 6)
    return header
  })
)

const wsAttack = fc.record({
  frames: fc.array(frame, { minLength: 1, maxLength: 12 }),
  dribble: fc.boolean(), // a byte per event-loop turn, for the first bytes
  cuts: fc.array(fc.nat(), { maxLength: 6 })
})

const tlsAttack = fc.constantFrom("silent", "partial-hello", "plaintext")

/** Sends one hostile WebSocket stream to /chat; resolves when the server closed it (or after `ms`, closing it ourselves). */
const sendWsAttack = (port: number, attack: { frames: ReadonlyArray<Buffer>; dribble: boolean; cuts: ReadonlyArray<number> }, ms = 3000) =>
  new Promise<void>((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    const timer = setTimeout(() => socket.destroy(), ms)
    socket.on("data", () => {})
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      resolve()
    })
    socket.on("connect", async () => {
      socket.write(handshake)
      const bytes = Buffer.concat(attack.frames)
      let from = 0
      if (attack.dribble) {
        for (; from < Math.min(bytes.byteLength, 200) && !socket.destroyed; from++) {
          socket.write(bytes.subarray(from, from + 1))
          await new Promise((r) => setImmediate(r))
        }
      }
      const at = [...new Set(attack.cuts.map((c) => from + (c % Math.max(1, bytes.byteLength - from))))].sort((a, b) => a - b)
      for (const cut of at) {
        if (socket.destroyed) return
        socket.write(bytes.subarray(from, cut))
        from = cut
        await new Promise((r) => setImmediate(r))
      }
      if (!socket.destroyed) socket.write(bytes.subarray(from))
    })
  })

/** Opens one hostile TLS connection and keeps it open (the caller closes it). */
const openTlsAttack = (port: number, kind: string, hello: Buffer, localAddress: string) =>
  new Promise<Net.Socket>((resolve) => {
    const socket = Net.connect({ port, host: "127.0.0.1", localAddress }, () => {
      if (kind === "partial-hello") socket.write(hello)
      if (kind === "plaintext") socket.write("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
      resolve(socket)
    })
    socket.on("error", () => {})
  })

/** A chat member over WebSocket: each `roundTrip` sends `/who` and waits for the answer. */
const chatMember = async (port: number) => {
  const client = new WebSocket(`ws://127.0.0.1:${port}/chat`)
  const waiting: Array<() => void> = []
  client.onmessage = () => waiting.shift()?.()
  await new Promise<void>((resolve) => waiting.push(resolve)) // the greeting
  return {
    roundTrip: async () => {
      const t0 = performance.now()
      const answered = new Promise<void>((resolve) => waiting.push(resolve))
      client.send("/who")
      await answered
      return performance.now() - t0
    },
    close: () => client.close()
  }
}

const get = (port: number, path: string) =>
  new Promise<string>((resolve, reject) =>
    Http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve(body))
    }).on("error", reject)
  )

const httpsRoundTrip = (port: number, ca: string) =>
  new Promise<number>((resolve, reject) => {
    const t0 = performance.now()
    Https.get({ host: "127.0.0.1", port, path: "/", ca, servername: "localhost", agent: false }, (res) => {
      res.resume()
      res.on("end", () => resolve(performance.now() - t0))
    }).on("error", reject)
  })

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const descriptors = (pid: number) => Fs.readdirSync(`/proc/${pid}/fd`).length

interface StatusDoc {
  readonly memory: { readonly heapUsedBytes: number; readonly rssBytes: number }
  readonly services: ReadonlyArray<{ name: string; activeConnections?: number; handlerFailures?: number; refused?: number; tlsHandshakesPending?: number; tlsHandshakesRefused?: number }>
}

it("hostile WebSocket and TLS clients: bounded heap and descriptors, legitimate clients keep their latency, nothing left afterwards", { timeout: 180_000 }, async () => {
  const dir = certDir()
  const cert = makeCert(dir, "hostile", ["localhost"])
  const root = Fs.mkdtempSync(`${dir}/site-`)
  Fs.writeFileSync(`${root}/index.html`, "<h1>hostile</h1>")
  const server = await start({
    services: [
      { name: "web", protocol: "http", listen: "127.0.0.1:0", root, chat: "chat" },
      { name: "https", protocol: "http", listen: "127.0.0.1:0", root, maxConnections: 2000, tls: { cert: cert.cert, key: cert.key, handshakeTimeout: "60 seconds" } },
      { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }
    ]
  })
  try {
    const pid = server.child.pid!
    const web = server.port("web")
    const https = server.port("https")
    const status = async (): Promise<StatusDoc> => JSON.parse(await get(web, "/_status?format=json"))
    const member = await chatMember(web)
    // quiet figures
    const quietChat: Array<number> = []
    const quietHttps: Array<number> = []
    for (let i = 0; i < 20; i++) {
      quietChat.push(await member.roundTrip())
      quietHttps.push(await httpsRoundTrip(https, cert.pem))
    }
    const baseline = await status()
    const baseFds = descriptors(pid)

    // TLS: 2,400 hostile openings from 8 addresses (300 each) on a service of 2,000 slots: each address may
    // hold 128 handshakes (the default, a quarter of the slots at most 128), the rest are refused
    const hello = await partialClientHello()
    const kinds = fc.sample(tlsAttack, { numRuns: 2400, seed: 27 })
    const open: Array<Net.Socket> = []
    for (let i = 0; i < kinds.length; i += 100) {
      open.push(...await Promise.all(kinds.slice(i, i + 100).map((k, j) => openTlsAttack(https, k, hello, `127.0.0.${10 + ((i + j) % 8)}`))))
    }
    await untilTrue(() => descriptors(pid) > baseFds + 500, "the server holds the hostile connections it admitted")
    const underTls = await status()
    const fdsUnderTls = descriptors(pid)
    assert.isAtMost(fdsUnderTls - baseFds, 8 * 128 + 50, "descriptors stay within the per-address caps")
    const row = underTls.services.find((s) => s.name === "https") as { tlsHandshakesPending: number; tlsHandshakesRefused: number }
    assert.isAtMost(row.tlsHandshakesPending, 8 * 128)
    assert.isAbove(row.tlsHandshakesRefused, 0, "beyond its cap, an address's connections are refused")
    const httpsUnder: Array<number> = []
    for (let i = 0; i < 20; i++) httpsUnder.push(await httpsRoundTrip(https, cert.pem))
    assert.isAtMost(underTls.memory.heapUsedBytes - baseline.memory.heapUsedBytes, 2400 * 20 * 1024, "at most 20 KiB of heap per hostile TLS connection")

    // WebSocket: 200 hostile streams to /chat, 40 at a time, while the legitimate member and HTTPS client keep going
    const attacks = fc.sample(wsAttack, { numRuns: 200, seed: 2027 })
    const chatUnder: Array<number> = []
    let attacking = true
    const legit = (async () => {
      while (attacking) chatUnder.push(await member.roundTrip())
    })()
    let peakHeap = 0
    for (let i = 0; i < attacks.length; i += 40) {
      await Promise.all(attacks.slice(i, i + 40).map((a) => sendWsAttack(web, a)))
      peakHeap = Math.max(peakHeap, (await status()).memory.heapUsedBytes)
    }
    attacking = false
    await legit
    assert.isAtMost(peakHeap - baseline.memory.heapUsedBytes, 2400 * 20 * 1024 + 40 * 1024 * 1024, "hostile WebSocket streams never hold more than their bounded buffers")

    // the legitimate clients: within 3× their quiet median (with a few milliseconds of floor for a busy machine)
    assert.isAtMost(median(chatUnder), Math.max(3 * median(quietChat), 25), `chat round trip under attack (quiet ${median(quietChat).toFixed(1)} ms)`)
    assert.isAtMost(median(httpsUnder), Math.max(3 * median(quietHttps), 25), `HTTPS round trip with 2,400 hostile TLS openings (quiet ${median(quietHttps).toFixed(1)} ms)`)

    // afterwards: everything comes back
    for (const s of open) s.destroy()
    await untilTrue(() => descriptors(pid) <= baseFds + 5, `descriptors back at their baseline (${baseFds})`, 30_000)
    const after = await status()
    const httpsRow = after.services.find((s) => s.name === "https")!
    assert.strictEqual(httpsRow.tlsHandshakesPending, 0)
    for (const s of after.services) assert.strictEqual(s.handlerFailures ?? 0, 0, `${s.name}: hostile input is never a handler failure`)
    assert.isBelow(await httpsRoundTrip(https, cert.pem), 5_000)
    assert.isAtMost(await member.roundTrip(), 5_000)
    member.close()
  } finally {
    assert.strictEqual(await server.stop(), 0, server.stderr())
  }
})

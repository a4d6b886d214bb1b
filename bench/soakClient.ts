/**
 * Soak load for echo and chat (the HTTP load is wrk): `node soakClient.ts
 * ECHO_PORT CHAT_PORT ECHO_CONNS CHAT_CONNS SECONDS`. Echo connections
 * ping-pong 64 bytes; chat members join one of 10 rooms and say a line every
 * 100 ms, reading everything. Prints one JSON line: echo round trips, chat
 * lines sent and received, errors.
 */
import * as Net from "node:net"

const [echoPort, chatPort, echoConns, chatConns, seconds] = process.argv.slice(2).map(Number) as [number, number, number, number, number]
const until = Date.now() + seconds * 1000
let roundTrips = 0
let sent = 0
let received = 0
let errors = 0
const payload = Buffer.alloc(64, 0x61)

const echo = () =>
  new Promise<void>((resolve) => {
    const s = Net.connect(echoPort, "127.0.0.1", () => s.write(payload))
    let got = 0
    s.on("data", (d) => {
      got += d.length
      while (got >= 64) {
        got -= 64
        roundTrips++
        if (Date.now() < until) s.write(payload)
        else s.end()
      }
    })
    s.on("error", () => errors++)
    s.on("close", () => resolve())
  })

const chat = (i: number) =>
  new Promise<void>((resolve) => {
    const s = Net.connect(chatPort, "127.0.0.1", () => s.write(`/nick m${i}\n/join room${i % 10}\n`))
    s.on("data", (d: Buffer) => {
      for (const b of d) if (b === 0x0a) received++
    })
    const timer = setInterval(() => {
      if (Date.now() >= until) {
        clearInterval(timer)
        s.end("/quit\n")
        return
      }
      sent++
      s.write(`hello from m${i} at ${Date.now()}\n`)
    }, 100)
    s.on("error", () => errors++)
    s.on("close", () => {
      clearInterval(timer)
      resolve()
    })
  })

await Promise.all([
  ...Array.from({ length: echoConns }, echo),
  ...Array.from({ length: chatConns }, (_, i) => chat(i))
])
console.log(JSON.stringify({ roundTrips, sent, received, errors }))

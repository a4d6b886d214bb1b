/**
 * Load generator for WebSocket echo: N connections (the `ws` package's
 * client) each doing 64-byte message ping-pong for D seconds. Prints
 * `{ messages, seconds }`. Usage: node bench/wsClient.ts PORT CONNECTIONS SECONDS
 */
import { createRequire } from "node:module"

type Client = { on: (e: string, f: (...a: Array<any>) => void) => void; send: (d: Buffer) => void; terminate: () => void }
const WebSocket = createRequire(import.meta.url)("ws") as new(url: string) => Client

const [port, connections, seconds] = process.argv.slice(2).map(Number) as [number, number, number]
const message = Buffer.alloc(64, 0x61)
let messages = 0
let running = true
const clients: Array<Client> = []
await Promise.all(Array.from({ length: connections }, () =>
  new Promise<void>((resolve, reject) => {
    const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
    client.on("open", () => resolve())
    client.on("error", reject)
    client.on("message", () => {
      messages++
      if (running) client.send(message)
    })
    clients.push(client)
  })))
const t0 = performance.now()
for (const c of clients) c.send(message)
await new Promise((r) => setTimeout(r, seconds * 1000))
running = false
const elapsed = (performance.now() - t0) / 1000
const counted = messages
for (const c of clients) c.terminate()
console.log(JSON.stringify({ messages: counted, seconds: elapsed }))

/**
 * Opens N connections, sends one byte on each and reads the echo (`http`:
 * one keep-alive GET /hello.txt and its answer), then keeps them idle until
 * stdin closes. Prints `ready` once all are open and idle.
 * Usage: node bench/idleClient.ts PORT N [echo|http]
 */
import * as Net from "node:net"

const [port, n] = process.argv.slice(2, 4).map(Number) as [number, number]
const hello = process.argv[4] === "http" ? "GET /hello.txt HTTP/1.1\r\nHost: bench\r\n\r\n" : "x"
const sockets: Array<Net.Socket> = []
let ready = 0
const batch = 500
for (let i = 0; i < n; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () =>
    new Promise<void>((resolve, reject) => {
      const socket = Net.connect({ port, host: "127.0.0.1" }, () => socket.write(hello))
      socket.once("data", () => {
        ready++
        resolve()
      })
      socket.on("error", reject)
      sockets.push(socket)
    })))
}
console.log(`ready ${ready}`)
process.stdin.resume()
process.stdin.on("end", () => process.exit(0))

/**
 * The ceiling server (issue 15): plain `node:net` with fiberd's own parser,
 * a canned 12-byte answer (cached Date) and every answer found in one read
 * coalesced into one write. What the fastest hand-written JavaScript on the
 * same parser does; fiberd's engine is measured against it.
 */
import * as Net from "node:net"
import { newScan, parseHead } from "../../src/protocols/http/Parser.ts"
import { announce } from "./control.ts"

let date = new Date().toUTCString()
setInterval(() => (date = new Date().toUTCString()), 1000).unref()
const body = "Hello world\n"
const answer = () => `HTTP/1.1 200 OK\r\nDate: ${date}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`
const notFound = () => `HTTP/1.1 404 Not Found\r\nDate: ${date}\r\nContent-Length: 0\r\n\r\n`

const server = Net.createServer({ noDelay: true }, (socket) => {
  let buffer: Buffer = Buffer.alloc(0)
  const scan = newScan()
  socket.on("data", (chunk: Buffer) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    let start = 0
    let out = ""
    while (start < buffer.length) {
      const r = parseHead(buffer, start, buffer.length, undefined, scan)
      if (r._tag === "Incomplete") break
      if (r._tag === "Error") {
        socket.end(`HTTP/1.1 ${r.status} Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
        return
      }
      scan.scanned = 0
      scan.lineEnd = -1
      start = r.end
      out += r.head.target === "/hello.txt" || r.head.target === "/" ? answer() : notFound()
    }
    buffer = start >= buffer.length ? Buffer.alloc(0) : buffer.subarray(start)
    if (out !== "") socket.write(out, "latin1")
  })
  socket.on("error", () => {})
})
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => announce((server.address() as Net.AddressInfo).port))

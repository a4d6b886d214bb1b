/**
 * Baseline: node:http answering from Buffers read once at start (what a tuned
 * Node server does), keep-alive, Content-Type and Content-Length set.
 */
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Path from "node:path"
import { announce } from "./control.ts"
import { makeSite } from "./files.ts"

const dir = makeSite()
const files = new Map<string, { body: Buffer; type: string }>([
  ["/hello.txt", { body: Fs.readFileSync(Path.join(dir, "hello.txt")), type: "text/plain; charset=utf-8" }],
  ["/16k.bin", { body: Fs.readFileSync(Path.join(dir, "16k.bin")), type: "application/octet-stream" }],
  ["/1m.bin", { body: Fs.readFileSync(Path.join(dir, "1m.bin")), type: "application/octet-stream" }]
])
const server = Http.createServer((req, res) => {
  const file = files.get(req.url ?? "")
  if (file === undefined) {
    res.writeHead(404, { "Content-Type": "text/plain", "Content-Length": 10 })
    return res.end("not found\n")
  }
  res.writeHead(200, { "Content-Type": file.type, "Content-Length": file.body.byteLength })
  res.end(file.body)
})
server.keepAliveTimeout = 60_000
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => announce((server.address() as Net.AddressInfo).port))

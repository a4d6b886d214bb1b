/**
 * Baselines for HTTP/2 (cleartext, prior knowledge): node:http2 answering from Buffers read once at
 * start, either the way its docs show first (`--compat`: the request/response compatibility API) or
 * with the core API (`--core`: `stream.respond` + `stream.end`).
 */
import * as Fs from "node:fs"
import * as Http2 from "node:http2"
import type * as Net from "node:net"
import * as Path from "node:path"
import { announce } from "./control.ts"
import { makeSite } from "./files.ts"

const dir = makeSite()
const files = new Map<string, { body: Buffer; type: string }>([
  ["/hello.txt", { body: Fs.readFileSync(Path.join(dir, "hello.txt")), type: "text/plain; charset=utf-8" }],
  ["/16k.bin", { body: Fs.readFileSync(Path.join(dir, "16k.bin")), type: "application/octet-stream" }]
])
const notFound = Buffer.from("not found\n")
const server = Http2.createServer({ settings: { maxConcurrentStreams: 100 } })
if (process.argv.includes("--core")) {
  server.on("stream", (stream: Http2.ServerHttp2Stream, headers) => {
    const file = files.get(String(headers[":path"]))
    stream.on("error", () => {})
    if (file === undefined) {
      stream.respond({ ":status": 404, "content-type": "text/plain", "content-length": notFound.byteLength })
      return stream.end(notFound)
    }
    stream.respond({ ":status": 200, "content-type": file.type, "content-length": file.body.byteLength })
    stream.end(file.body)
  })
} else {
  server.on("request", (req, res) => {
    const file = files.get(req.url)
    if (file === undefined) {
      res.writeHead(404, { "Content-Type": "text/plain", "Content-Length": notFound.byteLength })
      return res.end(notFound)
    }
    res.writeHead(200, { "Content-Type": file.type, "Content-Length": file.body.byteLength })
    res.end(file.body)
  })
}
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => announce((server.address() as Net.AddressInfo).port))

/**
 * Baseline for issue 12: node:https answering the 12-byte hello from a Buffer
 * (keep-alive, Content-Type and Content-Length set), same certificate as fiberd.
 */
import * as Fs from "node:fs"
import * as Https from "node:https"
import type * as Net from "node:net"
import { benchCertFiles } from "../tlsCert.ts"
import { announce } from "./control.ts"

const files = benchCertFiles()
const body = Buffer.from("Hello world\n")
const server = Https.createServer({ cert: Fs.readFileSync(files.cert), key: Fs.readFileSync(files.key) }, (req, res) => {
  if (req.url !== "/hello.txt") {
    res.writeHead(404, { "Content-Type": "text/plain", "Content-Length": 10 })
    return res.end("not found\n")
  }
  res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": body.byteLength })
  res.end(body)
})
server.keepAliveTimeout = 60_000
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => announce((server.address() as Net.AddressInfo).port))

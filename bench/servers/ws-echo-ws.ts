/** Baseline for issue 12: the `ws` package's server echoing every message on /echo. */
import * as Http from "node:http"
import type * as Net from "node:net"
import { createRequire } from "node:module"
import { announce } from "./control.ts"

type Socket = { on: (e: string, f: (data: Buffer, isBinary: boolean) => void) => void; send: (d: Buffer, o: { binary: boolean }) => void }
const { WebSocketServer } = createRequire(import.meta.url)("ws") as {
  WebSocketServer: new(o: { server: Http.Server; path: string }) => { on: (e: string, f: (s: Socket) => void) => void }
}
const server = Http.createServer()
new WebSocketServer({ server, path: "/echo" }).on("connection", (socket) => {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }))
})
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => announce((server.address() as Net.AddressInfo).port))

/** Baseline: plain node:net echo with socket.pipe(socket). */
import * as Net from "node:net"
import { announce } from "./control.ts"

const server = Net.createServer({ noDelay: true }, (socket) => {
  socket.on("error", () => {})
  socket.pipe(socket)
})
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => announce((server.address() as Net.AddressInfo).port))

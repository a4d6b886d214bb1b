import * as Net from "node:net"
import { announce } from "./control.ts"
const resp = Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello world\n")
const server = Net.createServer({ noDelay: true }, (s) => { s.on("error", () => {}); s.on("data", (d: Buffer) => { let n = 0, i = -1; while ((i = d.indexOf("\r\n\r\n", i + 1)) !== -1) n++; for (let k = 0; k < n; k++) s.write(resp) }) })
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => announce((server.address() as Net.AddressInfo).port))

/**
 * The first bytes of a real TLS ClientHello (captured from Node's TLS client
 * on a throwaway loopback server): a TLS opening that never finishes, for
 * the hostile-client tests and the slowloris bench.
 */
import * as Net from "node:net"
import * as NodeTls from "node:tls"

/** The first 60 bytes of a ClientHello. */
export const partialClientHello = (): Promise<Buffer> =>
  new Promise((resolve) => {
    const server = Net.createServer((s) =>
      s.once("data", (d: Buffer) => {
        resolve(d.subarray(0, 60))
        s.destroy()
        server.close()
      })
    )
    server.listen(0, "127.0.0.1", () => {
      const c = NodeTls.connect({ host: "127.0.0.1", port: (server.address() as Net.AddressInfo).port, rejectUnauthorized: false })
      c.on("error", () => {})
    })
  })

/**
 * TLS in the running server (fiberd as a process, real clients): HTTPS and
 * echo over TLS from the service table, certificates renewed on disk and
 * picked up by SIGHUP without dropping an open connection, a broken renewal
 * that keeps the old certificate, and a key that does not match its
 * certificate refused at startup (exit 1, service and file named).
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as NodeTls from "node:tls"
import { certDir, makeCert } from "../support/certs.ts"
import { runOnce, start } from "../support/serverProcess.ts"

const dir = certDir()
const first = makeCert(dir, "first", ["localhost"])
const renewed = makeCert(dir, "renewed", ["localhost", "renewed.test"])

const curl = (args: ReadonlyArray<string>) =>
  new Promise<string>((resolve) => execFile("curl", ["-sS", ...args], { timeout: 15_000 }, (_e, out, err) => resolve(out + err)))

const connect = (port: number, ca: string) =>
  new Promise<NodeTls.TLSSocket>((resolve, reject) => {
    const socket = NodeTls.connect({ host: "127.0.0.1", port, servername: "localhost", ca }, () => resolve(socket))
    socket.once("error", reject)
  })

const echo = (socket: NodeTls.TLSSocket, text: string) =>
  new Promise<string>((resolve) => {
    let got = ""
    const onData = (d: Buffer) => {
      got += d.toString()
      if (got.length >= text.length) {
        socket.off("data", onData)
        resolve(got)
      }
    }
    socket.on("data", onData)
    socket.write(text)
  })

describe("fiberd over TLS", () => {
  it("HTTPS and echo over TLS from the table; SIGHUP picks up renewed certificates, keeps open connections, keeps the old certificate on a bad renewal", async () => {
    const live = Path.join(dir, "live")
    Fs.mkdirSync(live, { recursive: true })
    const cert = Path.join(live, "site.crt")
    const key = Path.join(live, "site.key")
    Fs.copyFileSync(first.cert, cert)
    Fs.copyFileSync(first.key, key)
    const tls = { cert, key }
    const server = await start({
      services: [
        { name: "https", protocol: "http", listen: "127.0.0.1:0", tls },
        { name: "secure-echo", protocol: "echo", listen: "127.0.0.1:0", tls }
      ]
    })
    try {
      const https = server.port("https")
      const resolve = ["--resolve", `localhost:${https}:127.0.0.1`]
      const page = await curl(["--cacert", first.cert, ...resolve, "-o", "/dev/null", "-w", "%{http_code} %{http_version}", `https://localhost:${https}/`])
      assert.strictEqual(page, "200 2", "curl asks for h2 by ALPN, and gets it")
      const page11 = await curl(["--http1.1", "--cacert", first.cert, ...resolve, "-o", "/dev/null", "-w", "%{http_code} %{http_version}", `https://localhost:${https}/`])
      assert.strictEqual(page11, "200 1.1")
      const open = await connect(server.port("secure-echo"), first.pem)
      assert.strictEqual(await echo(open, "before"), "before")

      Fs.copyFileSync(renewed.cert, cert)
      Fs.copyFileSync(renewed.key, key)
      server.child.kill("SIGHUP")
      await server.waitFor("https: certificates reloaded")
      await server.waitFor("secure-echo: certificates reloaded")
      assert.strictEqual(await echo(open, "after the reload"), "after the reload", "an open connection keeps working")
      const fresh = await connect(server.port("secure-echo"), renewed.pem)
      assert.include(fresh.getPeerCertificate().subjectaltname, "renewed.test")
      fresh.destroy()

      Fs.writeFileSync(key, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
      server.child.kill("SIGHUP")
      await server.waitFor(/https: keeping the current certificate: TLS: .*site\.key/)
      const still = await curl(["--cacert", renewed.cert, ...resolve, "-o", "/dev/null", "-w", "%{http_code}", `https://localhost:${https}/`])
      assert.strictEqual(still, "200")
      open.destroy()
    } finally {
      await server.stop()
    }
  })

  it("a key that does not match its certificate: exit 1 at startup, naming the service and the key file", async () => {
    const table = Path.join(dir, "bad.json")
    Fs.writeFileSync(table, JSON.stringify({ services: [{ name: "https", protocol: "http", listen: "127.0.0.1:0", tls: { cert: first.cert, key: renewed.key } }] }))
    const run = await runOnce(["--config", table])
    assert.strictEqual(run.code, 1)
    assert.include(run.stderr, "https")
    assert.include(run.stderr, renewed.key)
    assert.include(run.stderr, "does not match")
  })
})

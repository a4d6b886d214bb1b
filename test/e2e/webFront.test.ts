/**
 * A production web front (issue 24) in the running server: HSTS on every
 * answer over TLS (HTTP/1.1 and HTTP/2, the engine's own errors too, never
 * over plain HTTP), a plain-HTTP service that redirects to HTTPS keeping
 * path and query while still answering ACME challenges from its root, and
 * OCSP stapling from a response file (made by `openssl ocsp` at test time),
 * re-read on SIGHUP.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as NodeTls from "node:tls"
import { certDir, makeCert, makeChain, writeOcspResponse } from "../support/certs.ts"
import { start } from "../support/serverProcess.ts"

const dir = certDir()
const cert = makeCert(dir, "front", ["localhost"])

const curl = (args: ReadonlyArray<string>) =>
  new Promise<string>((resolve) => execFile("curl", ["-sS", ...args], { timeout: 15_000 }, (_e, out, err) => resolve(out + err)))

/** Sends raw bytes over TLS and returns what comes back until the server closes. */
const rawTls = (port: number, bytes: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = NodeTls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: cert.pem, ALPNProtocols: ["http/1.1"] }, () => socket.end(bytes))
    let got = ""
    socket.on("data", (d: Buffer) => (got += d.toString("latin1")))
    socket.on("close", () => resolve(got))
    socket.on("error", reject)
  })

describe("a production web front", () => {
  it("HSTS on every answer over TLS (h1, h2, the engine's own 400); a plain service redirects to HTTPS but answers ACME challenges", { timeout: 60_000 }, async () => {
    const site = Fs.mkdtempSync(Path.join(dir, "site-"))
    Fs.writeFileSync(Path.join(site, "index.html"), "<p>front</p>\n")
    Fs.mkdirSync(Path.join(site, ".well-known", "acme-challenge"), { recursive: true })
    Fs.writeFileSync(Path.join(site, ".well-known", "acme-challenge", "tok-123"), "tok-123.thumbprint")
    const server = await start({
      services: [
        {
          name: "https", protocol: "http", listen: "127.0.0.1:0", root: site, tls: { cert: cert.cert, key: cert.key },
          hsts: { maxAge: "365 days", includeSubDomains: true, preload: false }
        },
        { name: "plain", protocol: "http", listen: "127.0.0.1:0", root: site, redirect: "https://example.org" }
      ]
    })
    try {
      const https = server.port("https")
      const tls = ["--cacert", cert.cert, "--resolve", `localhost:${https}:127.0.0.1`]
      const sts = /strict-transport-security: max-age=31536000; includeSubDomains\r\n/i
      assert.match(await curl([...tls, "--http1.1", "-I", `https://localhost:${https}/`]), sts)
      assert.match(await curl([...tls, "--http2", "-I", `https://localhost:${https}/`]), sts)
      assert.match(await curl([...tls, "--http2", "-I", `https://localhost:${https}/missing`]), sts)
      const bad = await rawTls(https, "NOT HTTP AT ALL\r\n\r\n")
      assert.match(bad, /^HTTP\/1\.1 400 /)
      assert.match(bad, /Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n/)
      // plain HTTP: redirected, path and query kept; a POST keeps its method (308); ACME answered here
      const plain = `http://127.0.0.1:${server.port("plain")}`
      const head = await curl(["-I", `${plain}/a/b%20c?x=1&y=2`])
      assert.match(head, /^HTTP\/1\.1 301 /)
      assert.match(head, /Location: https:\/\/example\.org\/a\/b%20c\?x=1&y=2\r\n/)
      assert.notMatch(head, /strict-transport-security/i)
      assert.match(await curl(["-i", "-X", "POST", "--data", "x", `${plain}/form`]), /^HTTP\/1\.1 308 [\s\S]*Location: https:\/\/example\.org\/form\r\n/)
      assert.strictEqual(await curl([`${plain}/.well-known/acme-challenge/tok-123`]), "tok-123.thumbprint")
    } finally {
      await server.stop()
    }
  })

  it("OCSP stapling: the response file goes to clients that ask (openssl s_client -status); SIGHUP reads a new one", { timeout: 60_000 }, async () => {
    const chain = makeChain(dir, "stapled", ["localhost"])
    const ocsp = Path.join(dir, "site.ocsp")
    writeOcspResponse(dir, chain, "good", ocsp)
    const server = await start({
      services: [{ name: "https", protocol: "http", listen: "127.0.0.1:0", tls: { cert: chain.leaf.cert, key: chain.leaf.key, ocsp } }]
    })
    try {
      const status = () =>
        new Promise<string>((resolve) => {
          const child = execFile("openssl", ["s_client", "-connect", `127.0.0.1:${server.port("https")}`, "-servername", "localhost", "-status", "-CAfile", chain.ca.cert], { timeout: 15_000 }, (_e, out, err) => resolve(out + err))
          child.stdin?.end("Q\n")
        })
      const first = await status()
      assert.match(first, /OCSP Response Status: successful/)
      assert.match(first, /Cert Status: good/)
      assert.match(first, /Verify return code: 0 \(ok\)/)
      // the certificate is revoked: a new response file, then SIGHUP
      writeOcspResponse(dir, chain, "revoked", ocsp)
      server.child.kill("SIGHUP")
      await server.waitFor(/SIGHUP|reload/i)
      let after = ""
      for (let i = 0; i < 50 && !/Cert Status: revoked/.test(after); i++) after = await status()
      assert.match(after, /Cert Status: revoked/)
    } finally {
      await server.stop()
    }
  })
})

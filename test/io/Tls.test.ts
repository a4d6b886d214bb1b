/**
 * TLS listeners with real clients (Node's tls, openssl s_client, curl):
 * echo over TLS, what the handler learns (protocol, ALPN, SNI name), SNI
 * certificates, a plaintext client and a silent one (counted, never a
 * handler failure), a key that does not match its certificate, and
 * certificates reloaded in place with session tickets surviving.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as NodeTls from "node:tls"
import type { Connection } from "../../src/io/Connection.ts"
import * as Listener from "../../src/io/Listener.ts"
import type { TlsInfo } from "../../src/io/Tls.ts"
import * as Echo from "../../src/protocols/echo.ts"
import * as Res from "../../src/protocols/http/Response.ts"
import * as Router from "../../src/protocols/http/Router.ts"
import * as StaticFiles from "../../src/protocols/http/StaticFiles.ts"
import * as HttpServer from "../../src/protocols/http/Server.ts"
import { certDir, makeCert } from "../support/certs.ts"
import { until } from "../support/until.ts"

const dir = certDir()
const main = makeCert(dir, "main", ["localhost"])
const other = makeCert(dir, "other", ["other.test"])

const portOf = (listener: Listener.Listener) => (listener.address as { port: number }).port

/** Connects with Node's TLS client; resolves once the handshake is done. */
const tlsConnect = (port: number, options: NodeTls.ConnectionOptions = {}) =>
  Effect.callback<NodeTls.TLSSocket, Error>((resume) => {
    const socket = NodeTls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: main.pem, ...options }, () => resume(Effect.succeed(socket)))
    socket.once("error", (e) => resume(Effect.fail(e)))
  })

/** Writes `text` and reads until as many bytes came back. */
const roundTrip = (socket: NodeTls.TLSSocket, text: string) =>
  Effect.callback<string>((resume) => {
    let got = ""
    const onData = (d: Buffer) => {
      got += d.toString()
      if (got.length >= text.length) {
        socket.off("data", onData)
        resume(Effect.succeed(got))
      }
    }
    socket.on("data", onData)
    socket.write(text)
  })

const run = (cmd: string, args: ReadonlyArray<string>, input = "") =>
  Effect.callback<string>((resume) => {
    const child = execFile(cmd, args, { timeout: 20_000 }, (_error, stdout, stderr) => resume(Effect.succeed(stdout + stderr)))
    child.stdin?.end(input)
  })

describe("TLS listener", () => {
  it.live("echo over TLS; the handler sees the protocol, the ALPN protocol and the SNI name", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<TlsInfo | undefined>()
      const handler = (conn: Connection) => Effect.andThen(Deferred.succeed(seen, conn.tls), Echo.handler(conn))
      const listener = yield* Listener.make({ name: "tls-echo", tls: { ...main, alpn: ["echo", "http/1.1"] } }, handler)
      const socket = yield* tlsConnect(portOf(listener), { ALPNProtocols: ["echo"] })
      assert.strictEqual(yield* roundTrip(socket, "hello over TLS"), "hello over TLS")
      const info = yield* Deferred.await(seen)
      assert.isDefined(info)
      assert.match(info!.protocol ?? "", /^TLSv1\.[23]$/)
      assert.strictEqual(info!.alpnProtocol, "echo")
      assert.strictEqual(info!.servername, "localhost")
      assert.isUndefined(info!.peerCertificate)
      socket.destroy()
    }).pipe(Effect.scoped))

  it.live("client certificates: with a CA, the handler sees the certificate a client presents; requireClientCert refuses one without", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<TlsInfo | undefined>()
      const handler = (conn: Connection) => Effect.andThen(Deferred.succeed(seen, conn.tls), Echo.handler(conn))
      const listener = yield* Listener.make({ name: "mtls", tls: { ...main, ca: other.cert } }, handler)
      const socket = yield* tlsConnect(portOf(listener), { cert: Fs.readFileSync(other.cert), key: Fs.readFileSync(other.key) })
      assert.strictEqual(yield* roundTrip(socket, "with a certificate"), "with a certificate")
      const info = yield* Deferred.await(seen)
      assert.strictEqual(info?.peerCertificate?.subject.CN, "other.test")
      socket.destroy()
      let ran = 0
      const counted = (conn: Connection) => Effect.andThen(Effect.sync(() => ran++), Echo.handler(conn))
      const strict = yield* Listener.make({ name: "mtls-strict", tls: { ...main, ca: other.cert, requireClientCert: true } }, counted)
      yield* Effect.callback<void>((resume) => {
        const s = NodeTls.connect({ host: "127.0.0.1", port: portOf(strict), servername: "localhost", ca: main.pem }, () => s.write("x"))
        s.on("error", () => {})
        s.on("close", () => resume(Effect.void))
      })
      assert.strictEqual(strict.stats.tlsHandshakeFailures, 1, "the handshake without a client certificate failed")
      assert.strictEqual(ran, 0, "no handler ran without a client certificate")
      assert.strictEqual(strict.stats.accepted, 1, "the TCP connection was accepted (and held a slot during its handshake)")
    }).pipe(Effect.scoped))

  it.live("SNI picks the certificate by host name (openssl s_client); ALPN offers http/1.1 on an HTTP service", () =>
    Effect.gen(function*() {
      const app = Router.make([Router.get("/", () => Effect.succeed(Res.text("hi\n")))])
      const server = yield* HttpServer.listen(app, { listen: { name: "https", tls: { ...main, sni: { "other.test": other } } } })
      const port = String(portOf(server.listener))
      const named = yield* run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "other.test", "-alpn", "http/1.1"], "Q\n")
      assert.match(named, /subject=.*CN\s*=\s*other\.test/)
      assert.match(named, /ALPN protocol: http\/1\.1/)
      const plain = yield* run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"], "Q\n")
      assert.match(plain, /subject=.*CN\s*=\s*localhost/)
    }).pipe(Effect.scoped))

  it.live("HTTPS with curl: keep-alive, Range and HEAD over one TLS connection", () =>
    Effect.gen(function*() {
      const body = "0123456789abcdef"
      const app = Router.make([Router.get("/data", () => Effect.succeed(Res.text(body)))])
      const server = yield* HttpServer.listen(app, { listen: { name: "https", tls: main } })
      const url = `https://localhost:${portOf(server.listener)}/data`
      const caFile = main.cert
      const out = yield* run("curl", ["-sS", "--cacert", caFile, "--resolve", `localhost:${portOf(server.listener)}:127.0.0.1`, "-w", "|%{http_code}|%{num_connects}\\n", url, url])
      assert.strictEqual(out, `${body}|200|1\n${body}|200|0\n`, "two requests, one connection")
      const head = yield* run("curl", ["-sS", "-I", "--cacert", caFile, "--resolve", `localhost:${portOf(server.listener)}:127.0.0.1`, url])
      assert.match(head, /content-length: 16/i)
    }).pipe(Effect.scoped))

  it.live("HTTPS static files with curl: a Range request gets 206 and the bytes asked for", () =>
    Effect.gen(function*() {
      const root = Fs.mkdtempSync(Path.join(dir, "site-"))
      Fs.writeFileSync(Path.join(root, "data.txt"), "0123456789abcdef")
      const site = yield* StaticFiles.make({ root })
      const server = yield* HttpServer.listen(site, { listen: { name: "https", tls: main } })
      const port = portOf(server.listener)
      const out = yield* run("curl", ["-sS", "--cacert", main.cert, "--resolve", `localhost:${port}:127.0.0.1`, "-r", "2-5", "-w", "|%{http_code}", `https://localhost:${port}/data.txt`])
      assert.strictEqual(out, "2345|206")
    }).pipe(Effect.scoped))

  it.live("slow-client protection over TLS: a head not finished within headerTimeout gets 408, as over plain TCP", () =>
    Effect.gen(function*() {
      const app = Router.make([Router.get("/", () => Effect.succeed(Res.text("hi\n")))])
      const server = yield* HttpServer.listen(app, { listen: { name: "https", tls: main }, http: { headerTimeout: "300 millis" } })
      const socket = yield* tlsConnect(portOf(server.listener))
      const answer = yield* Effect.callback<string>((resume) => {
        let got = ""
        socket.on("data", (d) => (got += d.toString()))
        socket.on("close", () => resume(Effect.succeed(got)))
        socket.on("end", () => socket.end())
        socket.write("GET / HTTP/1.1\r\nHost: x\r\n") // never finished
      })
      assert.match(answer, /^HTTP\/1\.1 408 /)
    }).pipe(Effect.scoped))

  it.live("a plaintext client on a TLS port and a client that never finishes the handshake are dropped and counted, not handler failures", () =>
    Effect.gen(function*() {
      let ran = 0
      const counted = (conn: Connection) => Effect.andThen(Effect.sync(() => ran++), Echo.handler(conn))
      const listener = yield* Listener.make({ name: "tls-echo", tls: { ...main, handshakeTimeout: 300 } }, counted)
      const closed = (send: string) =>
        Effect.callback<string>((resume) => {
          const socket = Net.connect({ host: "127.0.0.1", port: portOf(listener) }, () => {
            if (send !== "") socket.write(send)
          })
          let got = ""
          socket.on("data", (d) => (got += d.toString("latin1")))
          socket.on("error", () => {})
          socket.on("close", () => resume(Effect.succeed(got)))
        })
      const answer = yield* closed("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.notInclude(answer, "HTTP/1.1 200")
      yield* closed("") // silent: the handshake timeout closes it
      assert.strictEqual(listener.stats.tlsHandshakeFailures, 2)
      assert.strictEqual(listener.stats.handlerFailures, 0)
      assert.strictEqual(ran, 0, "no handler ran")
      yield* until(() => listener.stats.tlsHandshakesPending === 0, "no handshake pending")
    }).pipe(Effect.scoped))

  it.live("a key that does not match its certificate: the listener does not start, the error names the service and the key file", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Listener.make({ name: "web", tls: { cert: main.cert, key: other.key } }, Echo.handler))
      assert.strictEqual(error._tag, "ListenError")
      assert.include(error.message, "web")
      assert.include(error.message, other.key)
      const missing = yield* Effect.flip(Listener.make({ name: "web", tls: { cert: Path.join(dir, "nope.crt"), key: main.key } }, Echo.handler))
      assert.include(missing.message, "nope.crt")
      assert.include(missing.message, "ENOENT")
    }).pipe(Effect.scoped))

  it.live("reloadTls: new connections get the new certificate, an open one keeps working, a session ticket from before still resumes", () =>
    Effect.gen(function*() {
      const live = Path.join(dir, "live")
      Fs.mkdirSync(live, { recursive: true })
      const files = { cert: Path.join(live, "server.crt"), key: Path.join(live, "server.key") }
      Fs.copyFileSync(main.cert, files.cert)
      Fs.copyFileSync(main.key, files.key)
      const listener = yield* Listener.make({ name: "tls-echo", tls: files, drainTimeout: "1 second" }, Echo.handler)
      const port = portOf(listener)
      const before = yield* tlsConnect(port, { maxVersion: "TLSv1.2" })
      const session = yield* Effect.callback<Buffer>((resume) => {
        const s = before.getSession()
        if (s !== undefined) return resume(Effect.succeed(s))
        before.once("session", (b: Buffer) => resume(Effect.succeed(b)))
      })
      // swap in another certificate (valid for localhost too) and reload
      const next = makeCert(live, "next", ["localhost", "next.test"])
      Fs.copyFileSync(next.cert, files.cert)
      Fs.copyFileSync(next.key, files.key)
      yield* listener.reloadTls
      assert.strictEqual(yield* roundTrip(before, "still here"), "still here")
      const after = yield* tlsConnect(port, { ca: next.pem })
      assert.include(after.getPeerCertificate().subjectaltname, "next.test")
      const resumed = yield* tlsConnect(port, { ca: [main.pem, next.pem], session, maxVersion: "TLSv1.2" })
      assert.isTrue(resumed.isSessionReused(), "a ticket issued before the reload resumes")
      // a broken reload keeps the current certificate
      Fs.writeFileSync(files.key, "not a key")
      const failed = yield* Effect.flip(listener.reloadTls)
      assert.include(failed.message, files.key)
      const still = yield* tlsConnect(port, { ca: next.pem })
      assert.include(still.getPeerCertificate().subjectaltname, "next.test")
      for (const s of [before, after, resumed, still]) s.destroy()
    }).pipe(Effect.scoped))
})

describe("TLS profile", () => {
  const handshake = (port: number, cipher: string) =>
    run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-tls1_2", "-cipher", cipher, "-servername", "localhost"], "Q\n")

  it.effect("by default Mozilla's intermediate profile: TLS 1.2 ECDHE+AEAD suites only (a CBC-only client is refused; TLS 1.3 works); `ciphers` overrides", () =>
    Effect.scoped(Effect.gen(function*() {
      const strict = yield* Listener.make({ name: "strict", tls: { cert: main.cert, key: main.key } }, Echo.handler)
      const cbc = yield* handshake(portOf(strict), "ECDHE-ECDSA-AES128-SHA")
      assert.match(cbc, /handshake failure|no shared cipher|alert/i, cbc)
      assert.notMatch(cbc, /Cipher is ECDHE-ECDSA-AES128-SHA\b/)
      const gcm = yield* handshake(portOf(strict), "ECDHE-ECDSA-AES128-GCM-SHA256")
      assert.match(gcm, /Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/)
      const tls13 = yield* run("openssl", ["s_client", "-connect", `127.0.0.1:${portOf(strict)}`, "-tls1_3", "-servername", "localhost"], "Q\n")
      assert.match(tls13, /TLSv1\.3/)
      // a service that must serve an old client may widen the list
      const wide = yield* Listener.make({ name: "wide", tls: { cert: main.cert, key: main.key, ciphers: "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256" } }, Echo.handler)
      assert.match(yield* handshake(portOf(wide), "ECDHE-ECDSA-AES128-SHA"), /Cipher is ECDHE-ECDSA-AES128-SHA\b/)
      // a list OpenSSL cannot use is refused at start, naming the key
      const bad = yield* Effect.flip(Listener.make({ name: "bad", tls: { cert: main.cert, key: main.key, ciphers: "NO-SUCH-CIPHER" } }, Echo.handler))
      assert.include(bad.message, "ciphers")
    })))
})

/**
 * TLS connections and the listener's limits, with real sockets: a
 * connection in its handshake holds a `maxConnections` slot from accept, so
 * silent or half-finished TLS openings cannot push the listener past its
 * limit (they wait, unread, or are refused, exactly as plain TCP ones);
 * handshakes in progress are visible (`tlsHandshakesPending`); one address
 * may hold at most `maxHandshakesPerAddress` of them while another address
 * is still served; and every slot comes back when the clients go.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import * as Listener from "../../src/io/Listener.ts"
import * as Echo from "../../src/protocols/echo.ts"
import { certDir, makeCert } from "../support/certs.ts"
import { partialClientHello } from "../support/clientHello.ts"
import { until } from "../support/until.ts"

const dir = certDir()
const main = makeCert(dir, "main", ["localhost"])
const portOf = (listener: Listener.Listener) => (listener.address as { port: number }).port

/** Opens `n` TCP connections from `localAddress` and writes `opening` (nothing, or part of a ClientHello) on each. */
const openSilent = (port: number, n: number, opening: Buffer = Buffer.alloc(0), localAddress = "127.0.0.1") =>
  Effect.promise(() =>
    Promise.all(Array.from({ length: n }, () =>
      new Promise<Net.Socket>((resolve) => {
        const socket = Net.connect({ host: "127.0.0.1", port, localAddress }, () => {
          if (opening.byteLength > 0) socket.write(opening)
          resolve(socket)
        })
        socket.on("error", () => {})
      })
    ))
  )

/** A TLS echo round trip from `localAddress`; resolves with what came back. */
const echoOverTls = (port: number, text: string, localAddress = "127.0.0.1") =>
  Effect.callback<string>((resume) => {
    const tcp = Net.connect({ host: "127.0.0.1", port, localAddress })
    const socket = NodeTls.connect({ socket: tcp, servername: "localhost", ca: main.pem }, () => socket.write(text))
    let got = ""
    socket.on("data", (d) => {
      got += d.toString()
      if (got.length >= text.length) {
        socket.destroy()
        resume(Effect.succeed(got))
      }
    })
    socket.on("error", (e) => resume(Effect.succeed(`error: ${e.message}`)))
  })

describe("TLS admission", () => {
  it.live("handshakes hold slots: 30 silent or partial openings on a listener of 5 slots and 4 waiting places — 5 handshake, 4 wait, 21 refused; a real client is served once they go", () =>
    Effect.gen(function*() {
      const listener = yield* Listener.make({ name: "tls-limit", maxConnections: 5, maxPending: 4, tls: { ...main, handshakeTimeout: 60_000, maxHandshakesPerAddress: 100 } }, Echo.handler)
      const port = portOf(listener)
      const hello = yield* Effect.promise(partialClientHello)
      const silent = yield* openSilent(port, 15)
      const partial = yield* openSilent(port, 15, hello)
      yield* until(() => listener.stats.accepted === 30 && listener.stats.refused === 21, "30 accepted, 21 refused")
      assert.strictEqual(listener.stats.tlsHandshakesPending, 5)
      assert.strictEqual(listener.stats.pending, 4)
      assert.strictEqual(listener.stats.active, 0, "no connection got past its handshake")
      for (const s of [...silent, ...partial]) s.destroy()
      // the slots come back (the server sees each FIN at once, not at the handshake timeout), and a real client is served
      yield* until(() => listener.stats.tlsHandshakesPending === 0 && listener.stats.pending === 0, "every slot free again")
      assert.strictEqual(yield* echoOverTls(port, "after the flood"), "after the flood")
      yield* until(() => listener.stats.active === 0, "the real client's slot free again")
    }).pipe(Effect.scoped))

  it.live("one address may hold maxHandshakesPerAddress handshakes; more from it are refused and counted, another address is served", () =>
    Effect.gen(function*() {
      const listener = yield* Listener.make({ name: "tls-per-address", maxConnections: 100, tls: { ...main, handshakeTimeout: 60_000, maxHandshakesPerAddress: 3 } }, Echo.handler)
      const port = portOf(listener)
      const silent = yield* openSilent(port, 10, Buffer.alloc(0), "127.0.0.3")
      yield* until(() => listener.stats.tlsHandshakesRefused === 7, "7 refused for their address")
      assert.strictEqual(listener.stats.tlsHandshakesPending, 3)
      assert.strictEqual(yield* echoOverTls(port, "from elsewhere", "127.0.0.1"), "from elsewhere")
      for (const s of silent) s.destroy()
      yield* until(() => listener.stats.tlsHandshakesPending === 0 && listener.stats.active === 0, "no handshake left")
      // the address may handshake again once its earlier ones are gone
      assert.strictEqual(yield* echoOverTls(port, "again", "127.0.0.3"), "again")
    }).pipe(Effect.scoped))

  it.live("shutdown closes handshakes in progress at once (they do not hold the drain until their timeout)", () =>
    Effect.gen(function*() {
      let sockets: Array<Net.Socket> = []
      const started = Date.now()
      yield* Effect.scoped(Effect.gen(function*() {
        const listener = yield* Listener.make({ name: "tls-drain", tls: { ...main, handshakeTimeout: 60_000 } }, Echo.handler)
        sockets = yield* openSilent(portOf(listener), 5)
        yield* until(() => listener.stats.tlsHandshakesPending === 5, "5 handshakes pending")
      }))
      yield* until(() => sockets.every((s) => s.destroyed || s.readableEnded), "the server closed every half-open connection")
      assert.isBelow(Date.now() - started, 30_000)
    }))
})

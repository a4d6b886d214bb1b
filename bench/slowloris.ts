/**
 * Legitimate latency under slow attackers (issues 16 and 27), quiet vs under
 * attack, same server process:
 * - heads: 1,000 connections each hold a 15 KB partial head and add one byte
 *   every 14 ms; one client makes sequential keep-alive GETs (fiberd static
 *   files, access log on);
 * - WebSocket dribble: 400 connections each hold a 900 KB partial frame and
 *   add one byte every 14 ms; one WebSocket client makes sequential echo
 *   round trips (fiberd's WebSocket echo);
 * - TLS half-open: 1,000 connections stay silent or send half a ClientHello;
 *   one client makes sequential HTTPS requests, each on a new connection
 *   (fiberd hello over TLS).
 * Target: median under attack within 2× of the quiet figure.
 */
import { readFileSync } from "node:fs"
import * as Http from "node:http"
import * as Https from "node:https"
import { holdClient, startServer } from "./harness.ts"
import { makeBenchCert } from "./tlsCert.ts"

export interface Latency {
  readonly median: number
  readonly p99: number
  readonly max: number
}

const summarize = (times: Array<number>): Latency => {
  times.sort((a, b) => a - b)
  return { median: times[Math.floor(times.length / 2)]!, p99: times[Math.floor(times.length * 0.99)]!, max: times.at(-1)! }
}

const timed = async (requests: number, once: () => Promise<void>) => {
  const times: Array<number> = []
  for (let i = 0; i < requests; i++) {
    const t0 = performance.now()
    await once()
    times.push(performance.now() - t0)
  }
  return summarize(times)
}

const httpGets = (port: number) => {
  const agent = new Http.Agent({ keepAlive: true, maxSockets: 1 })
  return {
    once: () =>
      new Promise<void>((resolve, reject) =>
        Http.get({ host: "127.0.0.1", port, path: "/hello.txt", agent }, (res) => {
          res.resume()
          res.on("end", () => resolve())
        }).on("error", reject)
      ),
    close: () => agent.destroy()
  }
}

const httpsGets = (port: number, ca: string) => ({
  once: () =>
    new Promise<void>((resolve, reject) =>
      Https.get({ host: "127.0.0.1", port, path: "/hello.txt", agent: false, ca, servername: "localhost" }, (res) => {
        res.resume()
        res.on("end", () => resolve())
      }).on("error", reject)
    ),
  close: () => {}
})

const wsEchoes = async (port: number) => {
  const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
  await new Promise<void>((resolve, reject) => {
    client.onopen = () => resolve()
    client.onerror = () => reject(new Error("WebSocket did not open"))
  })
  let answered: () => void = () => {}
  client.onmessage = () => answered()
  return {
    once: () =>
      new Promise<void>((resolve) => {
        answered = resolve
        client.send("a legitimate message of some 40 bytes...")
      }),
    close: () => client.close()
  }
}

/** Quiet, then under the attack; the same server process. */
const scenario = async (
  server: string,
  serverArgs: ReadonlyArray<string>,
  client: (port: number) => Promise<{ once: () => Promise<void>; close: () => void }> | { once: () => Promise<void>; close: () => void },
  attack: ReadonlyArray<string | number>,
  requests: number
) => {
  const s = await startServer(server, serverArgs)
  try {
    const legit = await client(s.port)
    await timed(Math.ceil(requests / 4), legit.once) // warm-up
    const quiet = await timed(requests, legit.once)
    const quietMem = await s.mem()
    const attacker = await holdClient("slowlorisClient.ts", [attack[0]!, s.port, ...attack.slice(1)])
    const underAttack = await timed(requests, legit.once)
    const attackMem = await s.mem()
    attacker.stop()
    legit.close()
    return { quiet, underAttack, quietMem, attackMem }
  } finally {
    await s.stop()
  }
}

export const run = () => scenario("http-fiberd", [], httpGets, ["http", 1000, 15_000, 14], 2000)

export const websocketDribble = () => scenario("ws-echo-fiberd", [], wsEchoes, ["ws", 400, 900_000, 14], 2000)

export const tlsHalfOpen = () => {
  const cert = makeBenchCert()
  process.env.FIBERD_BENCH_CERT = cert.cert
  process.env.FIBERD_BENCH_KEY = cert.key
  const ca = readFileSync(cert.cert, "utf8")
  return scenario("http-hello", ["--tls"], (port) => httpsGets(port, ca), ["tls", 1000, 0, 0], 300)
}

/**
 * Normal-request latency under the byte-at-a-time header attack (issue 16):
 * 1,000 connections each hold a 15 KB partial head and add one byte every
 * 14 ms, while one client makes sequential keep-alive GETs and records their
 * latency. Quiet vs under attack, same server process (fiberd static files,
 * access log on). Target: median under attack within 2× of the quiet figure.
 */
import * as Http from "node:http"
import { holdClient, startServer } from "./harness.ts"

const measure = async (port: number, requests: number) => {
  const agent = new Http.Agent({ keepAlive: true, maxSockets: 1 })
  const times: Array<number> = []
  for (let i = 0; i < requests; i++) {
    const t0 = performance.now()
    await new Promise<void>((resolve, reject) =>
      Http.get({ host: "127.0.0.1", port, path: "/hello.txt", agent }, (res) => {
        res.resume()
        res.on("end", () => resolve())
      }).on("error", reject)
    )
    times.push(performance.now() - t0)
  }
  agent.destroy()
  times.sort((a, b) => a - b)
  return { median: times[Math.floor(times.length / 2)]!, p99: times[Math.floor(times.length * 0.99)]!, max: times.at(-1)! }
}

export const run = async () => {
  const server = await startServer("http-fiberd")
  try {
    await measure(server.port, 500) // warm-up
    const quiet = await measure(server.port, 2000)
    const attack = await holdClient("slowlorisClient.ts", [server.port, 1000, 15_000, 14])
    const underAttack = await measure(server.port, 2000)
    attack.stop()
    return { quiet, underAttack }
  } finally {
    await server.stop()
  }
}

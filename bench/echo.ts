/**
 * Echo benchmarks (issue 2): throughput of 64-byte ping-pong over 100
 * connections, fiberd vs plain node:net `socket.pipe(socket)`, alternating
 * rounds; and memory per idle connection with 10,000 connections each.
 */
import { holdClient, median, runClient, startServer } from "./harness.ts"

/** Plain node:net `pipe` vs fiberd's echo protocol. */
export const variants: ReadonlyArray<{ label: string; server: string; args?: Array<string> }> = [
  { label: "node:net pipe", server: "echo-net" },
  { label: "fiberd echo", server: "echo-fiberd" }
]

/** The timeout manager's cost: fiberd with and without an idle timeout. */
export const timeoutVariants = [
  { label: "fiberd, idle timeout on", server: "echo-fiberd" },
  { label: "fiberd, no idle timeout", server: "echo-fiberd", args: ["--no-idle-timeout"] }
]

/** WebSocket echo (issue 12): the `ws` package's server vs fiberd's WebSocket route, 64-byte messages. */
export const wsVariants = [
  { label: "ws server", server: "ws-echo-ws" },
  { label: "fiberd WebSocket", server: "ws-echo-fiberd" }
]

export const throughput = async (rounds: number, seconds: number, connections = 100, which = variants, client = "echoClient.ts") => {
  const rates: Record<string, Array<number>> = {}
  for (let round = 0; round < rounds; round++) {
    for (const v of which) {
      const server = await startServer(v.server, v.args)
      await runClient(client, [server.port, connections, 1]) // warm-up
      const r = await runClient(client, [server.port, connections, seconds])
      await server.stop()
      ;(rates[v.label] ??= []).push(r.messages / r.seconds)
      console.log(`  round ${round + 1} ${v.label}: ${Math.round(r.messages / r.seconds)} msg/s`)
    }
  }
  const base = median(rates[which[0]!.label]!)
  const ours = median(rates[which[1]!.label]!)
  return { base, ours, ratio: ours / base }
}

/** Idle HTTP keep-alive connections (one request answered on each): node:http vs fiberd hello. */
export const httpIdleVariants = [
  { label: "node:http", server: "http-node", args: [] },
  { label: "fiberd hello", server: "http-hello", args: [] }
]

export const idle = async (connections: number, which = variants, mode: "echo" | "http" = "echo") => {
  const perConn: Record<string, number> = {}
  const heapPerConn: Record<string, number> = {}
  for (const v of which) {
    const server = await startServer(v.server, v.args)
    const before = await server.mem()
    const client = await holdClient("idleClient.ts", [server.port, connections, mode])
    await new Promise((r) => setTimeout(r, 500))
    const after = await server.mem()
    client.stop()
    await server.stop()
    perConn[v.label] = (after.rss - before.rss) / connections
    heapPerConn[v.label] = (after.heapUsed - before.heapUsed) / connections
    console.log(
      `  ${v.label}: rss +${((after.rss - before.rss) / 1e6).toFixed(1)} MB, heap +${
        ((after.heapUsed - before.heapUsed) / 1e6).toFixed(1)
      } MB for ${connections} idle connections = ${(perConn[v.label]! / 1024).toFixed(2)} KiB rss/conn, ${
        ((after.heapUsed - before.heapUsed) / connections / 1024).toFixed(2)
      } KiB heap/conn`
    )
  }
  const [base, ours] = [which[0]!.label, which[1]!.label]
  return { base: perConn[base]!, ours: perConn[ours]!, ratio: perConn[ours]! / perConn[base]!, heapRatio: heapPerConn[ours]! / heapPerConn[base]! }
}

/** Runs the second (fiberd) variant under the same load with the CPU profiler on and prints where its time goes. */
export const profileOurs = async (which: typeof variants, client: string, why: string, connections = 100) => {
  const v = which[1]!
  const server = await startServer(v.server, v.args ?? [])
  await runClient(client, [server.port, connections, 1]) // warm-up
  const summary = await server.profile!(() => runClient(client, [server.port, connections, 3]))
  await server.stop()
  console.log(`    ${v.label} missed (${why}); where its CPU time goes under this load (self time):`)
  for (const line of summary) console.log(`      ${line}`)
}

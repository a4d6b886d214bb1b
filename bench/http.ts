/**
 * HTTP benchmarks (issue 5): fiberd's static files (access log on) vs node:http
 * answering from Buffers, same run, alternating; wrk on CPU 1 (autocannon
 * is not bundled: wrk is required, from Debian's package).
 */
import { execFile } from "node:child_process"
import * as Path from "node:path"
import { median, startServer } from "./harness.ts"

export interface Row {
  readonly name: string
  readonly path: string
  readonly connections: number
  readonly pipeline?: boolean
}

export const rows: ReadonlyArray<Row> = [
  { name: "12 B, c=100", path: "/hello.txt", connections: 100 },
  { name: "12 B, c=1000", path: "/hello.txt", connections: 1000 },
  { name: "16 KiB, c=100", path: "/16k.bin", connections: 100 },
  { name: "16 KiB, c=1000", path: "/16k.bin", connections: 1000 },
  { name: "1 MiB, c=100", path: "/1m.bin", connections: 100 },
  { name: "1 MiB, c=1000", path: "/1m.bin", connections: 1000 },
  { name: "12 B, 16-deep pipeline, c=100", path: "/hello.txt", connections: 100, pipeline: true },
  { name: "404, 16-deep pipeline, c=100", path: "/missing.txt", connections: 100, pipeline: true }
]

const wrk = (port: number, row: Row, seconds: number): Promise<{ rps: number; p99: string }> =>
  new Promise((resolve, reject) => {
    const args = ["-c", "1", "wrk", "-t1", `-c${row.connections}`, `-d${seconds}s`, "--latency", "--timeout", "5s"]
    if (row.pipeline) args.push("-s", Path.join(import.meta.dirname, "pipeline.lua"))
    args.push(`http://127.0.0.1:${port}${row.path}`)
    execFile("taskset", args, { maxBuffer: 1 << 20 }, (error, stdout) => {
      if (error) return reject(error)
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN)
      const p99 = /99%\s+(\S+)/.exec(stdout)?.[1] ?? "?"
      resolve({ rps, p99 })
    })
  })

export const run = async (rounds: number, seconds: number, only?: (row: Row) => boolean) => {
  const results: Array<{ row: Row; node: number; fiberd: number; nodeP99: string; fiberdP99: string }> = []
  for (const row of rows.filter(only ?? (() => true))) {
    const node: Array<number> = []
    const fiberd: Array<number> = []
    let nodeP99 = ""
    let fiberdP99 = ""
    for (let r = 0; r < rounds; r++) {
      for (const name of ["http-node", "http-fiberd"] as const) {
        const server = await startServer(name)
        await wrk(server.port, { ...row, connections: Math.min(row.connections, 100) }, 1) // warm-up
        const m = await wrk(server.port, row, seconds)
        await server.stop()
        if (name === "http-node") (node.push(m.rps), (nodeP99 = m.p99))
        else (fiberd.push(m.rps), (fiberdP99 = m.p99))
      }
    }
    const n = median(node)
    const f = median(fiberd)
    results.push({ row, node: n, fiberd: f, nodeP99, fiberdP99 })
    console.log(
      `  ${row.name.padEnd(32)} node:http ${Math.round(n).toString().padStart(8)} req/s (p99 ${nodeP99.padStart(8)}) | fiberd ${
        Math.round(f).toString().padStart(8)
      } req/s (p99 ${fiberdP99.padStart(8)}) | ${(f / n).toFixed(2)}×`
    )
  }
  return results
}

/**
 * HTTP benchmarks (issues 5 and 15): one table per run, every row measured on
 * every server that can answer it, in alternating rounds (wrk -t1 on CPU 1,
 * servers on CPU 0), medians: node:http answering from Buffers (the
 * baseline), the ceiling server (node:net + fiberd's parser + a canned
 * answer + coalesced writes), fiberd hello (Router + Effect.succeed, access
 * log on), fiberd async (the same after `Effect.sleep(0)`: the effectful
 * path) and fiberd static files (access log on). Each cell: req/s, the
 * ratio to node:http, p99, and the server's CPU time per request (from
 * /proc), which wrk's own limit does not compress.
 */
import { execFile } from "node:child_process"
import * as Path from "node:path"
import { median, startNginx, startServer } from "./harness.ts"

export interface Row {
  readonly name: string
  readonly path: string
  readonly connections: number
  readonly pipeline?: boolean
  /** Over TLS (wrk speaks https). */
  readonly https?: boolean
}

export const rows: ReadonlyArray<Row> = [
  { name: "12 B, c=100", path: "/hello.txt", connections: 100 },
  { name: "12 B, c=1000", path: "/hello.txt", connections: 1000 },
  { name: "12 B, 16-deep pipeline, c=100", path: "/hello.txt", connections: 100, pipeline: true },
  { name: "16 KiB, c=100", path: "/16k.bin", connections: 100 },
  { name: "1 MiB, c=100", path: "/1m.bin", connections: 100 },
  { name: "404, 16-deep pipeline, c=100", path: "/missing.txt", connections: 100, pipeline: true }
]

/** A benchmark server script (`bench/servers/<script>.ts`) and the rows it can answer. */
export interface BenchServerSpec {
  readonly name: string
  readonly script: string
  readonly args?: ReadonlyArray<string>
  readonly serves: (row: Row) => boolean
}

/** The servers, and which rows each can answer (hello and the ceiling serve only /hello.txt). */
const servers: ReadonlyArray<BenchServerSpec> = [
  { name: "node:http", script: "http-node", serves: () => true },
  { name: "ceiling", script: "http-ceiling", serves: (row: Row) => row.path === "/hello.txt" },
  { name: "fiberd hello", script: "http-hello", serves: (row: Row) => row.path === "/hello.txt" },
  { name: "fiberd async", script: "http-hello-async", serves: (row: Row) => row.path === "/hello.txt" && row.connections === 100 && row.pipeline !== true },
  { name: "fiberd static", script: "http-fiberd", serves: () => true },
  // nginx (one worker, access log buffered) where it is the reference: files
  { name: "nginx", script: "@nginx", serves: (row: Row) => row.path === "/16k.bin" || row.path === "/1m.bin" }
]

/** wrk's latency text ("812.00us", "3.47ms", "1.20s") in milliseconds. */
const toMillis = (text: string): number => {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text)
  if (m === null) return NaN
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as "us" | "ms" | "s" | "m"]
  return Number(m[1]) * unit
}
const showMillis = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)}s` : `${ms.toFixed(2)}ms`)

const wrk = (port: number, row: Row, seconds: number): Promise<{ rps: number; p99: string; requests: number }> =>
  new Promise((resolve, reject) => {
    const args = ["-c", "1", "wrk", "-t1", `-c${row.connections}`, `-d${seconds}s`, "--latency", "--timeout", "5s"]
    if (row.pipeline) args.push("-s", Path.join(import.meta.dirname, "pipeline.lua"))
    args.push(`${row.https === true ? "https" : "http"}://127.0.0.1:${port}${row.path}`)
    execFile("taskset", args, { maxBuffer: 1 << 20 }, (error, stdout) => {
      if (error) return reject(error)
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN)
      const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN)
      const p99 = /99%\s+(\S+)/.exec(stdout)?.[1] ?? "?"
      resolve({ rps, p99, requests })
    })
  })

export interface Cell {
  readonly rps: number
  /** The median of the rounds' p99, in ms. */
  readonly p99: number
  readonly cpuPerRequest: number
}

/**
 * Issue 22's targets for fiberd's cells, against node:http (and, for the
 * asynchronous app, fiberd hello) in the same run: what a cell misses, if
 * anything.
 */
const missed = (row: Row, name: string, cells: ReadonlyMap<string, Cell>): string | undefined => {
  const cell = cells.get(name)!
  const base = cells.get("node:http")
  if (!name.startsWith("fiberd") || base === undefined) return undefined
  const speed = cell.rps / base.rps
  if (row.pipeline) return speed < 8 ? `${speed.toFixed(2)}× node:http, target ≥ 8×` : undefined
  if (name === "fiberd async") {
    const hello = cells.get("fiberd hello")
    return hello !== undefined && cell.p99 > 2 * hello.p99 ? `p99 ${(cell.p99 / hello.p99).toFixed(2)}× the synchronous app's, target ≤ 2×` : undefined
  }
  if (row.connections === 100 && row.path === "/hello.txt" && speed < 1.35) return `${speed.toFixed(2)}× node:http, target ≥ 1.35×`
  if (cell.p99 > 1.5 * base.p99) return `p99 ${(cell.p99 / base.p99).toFixed(2)}× node:http's, target ≤ 1.5×`
  return undefined
}

/** Runs `spec` under `row`'s load with the CPU profiler on and prints where its time goes. */
const profile = async (spec: BenchServerSpec, row: Row, why: string) => {
  const server = await startServer(spec.script, spec.args)
  await wrk(server.port, { ...row, connections: Math.min(row.connections, 100) }, 1) // warm-up
  const summary = await server.profile!(() => wrk(server.port, row, 3))
  await server.stop()
  console.log(`    ${spec.name} missed (${why}); where its CPU time goes under this load (self time):`)
  for (const line of summary) console.log(`      ${line}`)
}

export const run = async (
  rounds: number,
  seconds: number,
  only?: (row: Row) => boolean,
  suite: { readonly rows: ReadonlyArray<Row>; readonly servers: ReadonlyArray<BenchServerSpec> } = { rows, servers },
  profileMisses = suite.rows === rows
) => {
  const table: Array<{ row: Row; cells: Map<string, Cell> }> = []
  for (const row of suite.rows.filter(only ?? (() => true))) {
    const samples = new Map<string, Array<{ rps: number; p99: number; cpu: number }>>()
    for (let r = 0; r < rounds; r++) {
      for (const s of suite.servers.filter((x) => x.serves(row))) {
        const server = s.script === "@nginx" ? await startNginx() : await startServer(s.script, s.args)
        if (server === undefined) continue // nginx not installed
        await wrk(server.port, { ...row, connections: Math.min(row.connections, 100) }, 1) // warm-up
        const cpu0 = server.cpuMicros()
        const m = await wrk(server.port, row, seconds)
        const cpu = (server.cpuMicros() - cpu0) / m.requests
        await server.stop()
        const list = samples.get(s.name) ?? []
        list.push({ rps: m.rps, p99: toMillis(m.p99), cpu })
        samples.set(s.name, list)
      }
    }
    const cells = new Map<string, Cell>()
    for (const [name, list] of samples) {
      cells.set(name, { rps: median(list.map((x) => x.rps)), p99: median(list.map((x) => x.p99)), cpuPerRequest: median(list.map((x) => x.cpu)) })
    }
    table.push({ row, cells })
    const baseName = suite.servers[0]!.name // the baseline comes first
    const base = cells.get(baseName)!
    const parts = [...cells].map(([name, c]) =>
      `${name} ${Math.round(c.rps)} req/s${name === baseName ? "" : ` (${(c.rps / base.rps).toFixed(2)}×)`} p99 ${showMillis(c.p99)}${
        name === baseName ? "" : ` (${(c.p99 / base.p99).toFixed(2)}×)`
      } CPU ${c.cpuPerRequest.toFixed(1)} µs/req`
    )
    console.log(`  ${row.name.padEnd(32)} ${parts.join(" | ")}`)
    if (!profileMisses) continue
    for (const spec of suite.servers) {
      const why = cells.has(spec.name) ? missed(row, spec.name, cells) : undefined
      if (why !== undefined) await profile(spec, row, why)
    }
  }
  return table
}

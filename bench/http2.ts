/**
 * HTTP/2 benchmarks (issue 23), cleartext with prior knowledge: h2load on CPU 1 against node:http2 the
 * way its docs show (the compatibility API: the baseline), node:http2's core API, fiberd (hello: Router +
 * Effect.succeed; static: files through their descriptor; access log on, as in the HTTP/1.1 bench, and
 * hello without it) and
 * nginx (`listen ... http2`, one worker, buffered access log); servers on CPU 0, alternating rounds,
 * medians. Each cell: req/s, its ratio to the baseline, p99 (from h2load's per-request log) and the
 * server's CPU time per request.
 */
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { type BenchServer, median, startNginx, startServer } from "./harness.ts"

interface Row {
  readonly name: string
  readonly path: string
  readonly streams: number
}

const rows: ReadonlyArray<Row> = [
  { name: "12 B, c=100 m=10", path: "/hello.txt", streams: 10 },
  { name: "12 B, c=100 m=100", path: "/hello.txt", streams: 100 },
  { name: "16 KiB, c=100 m=10", path: "/16k.bin", streams: 10 },
  { name: "16 KiB, c=100 m=100", path: "/16k.bin", streams: 100 }
]

interface Spec {
  readonly name: string
  readonly start: () => Promise<BenchServer | undefined>
  readonly serves: (row: Row) => boolean
}

const specs: ReadonlyArray<Spec> = [
  { name: "node:http2 compat", start: () => startServer("http2-node", ["--compat"]), serves: () => true },
  { name: "node:http2 core", start: () => startServer("http2-node", ["--core"]), serves: () => true },
  { name: "fiberd hello", start: () => startServer("http-hello", ["--h2c"]), serves: (row) => row.path === "/hello.txt" },
  // without the access log, as the node:http2 servers (which keep none)
  { name: "fiberd hello (no log)", start: () => startServer("http-hello", ["--h2c", "--no-log"]), serves: (row) => row.path === "/hello.txt" },
  { name: "fiberd static", start: () => startServer("http-fiberd", ["--h2c"]), serves: () => true },
  { name: "nginx", start: () => startNginx({ http2: true }), serves: () => true }
]

/** h2load on CPU 1: 100 clients, `streams` concurrent streams each, for `seconds` after a 1 s warm-up. */
const h2load = (port: number, row: Row, seconds: number): Promise<{ rps: number; p99: number; requests: number }> =>
  new Promise((resolve, reject) => {
    const log = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-h2load-")), "requests.log")
    const args = ["-c", "1", "h2load", "-c100", `-m${row.streams}`, `-D${seconds}`, "--warm-up-time=1", `--log-file=${log}`, `http://127.0.0.1:${port}${row.path}`]
    execFile("taskset", args, { maxBuffer: 1 << 22 }, (error, stdout) => {
      if (error) return reject(error)
      const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(stdout)?.[1] ?? NaN)
      const requests = Number(/requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(stdout)?.[1] ?? NaN)
      // the log's third column: microseconds until the end of each response
      const times = Fs.readFileSync(log, "utf8").split("\n").filter((l) => l !== "").map((l) => Number(l.split("\t")[2]))
      Fs.rmSync(Path.dirname(log), { recursive: true, force: true })
      times.sort((a, b) => a - b)
      resolve({ rps, p99: (times[Math.floor(times.length * 0.99)] ?? NaN) / 1000, requests })
    })
  })

/** Runs every row on every server that answers it, `rounds` alternating rounds; prints one line a row. */
export const run = async (rounds: number, seconds: number, only: (name: string) => boolean = () => true) => {
  for (const row of rows.filter((r) => only(r.name))) {
    const samples = new Map<string, Array<{ rps: number; p99: number; cpu: number }>>()
    for (let r = 0; r < rounds; r++) {
      for (const spec of specs.filter((s) => s.serves(row))) {
        const server = await spec.start()
        if (server === undefined) continue // nginx not installed
        const cpu0 = server.cpuMicros()
        const m = await h2load(server.port, row, seconds)
        const cpu = (server.cpuMicros() - cpu0) / m.requests // the warm-up's requests are not counted: a slight overestimate for all alike
        await server.stop()
        samples.set(spec.name, [...(samples.get(spec.name) ?? []), { rps: m.rps, p99: m.p99, cpu }])
      }
    }
    const cells = [...samples].map(([name, list]) => ({
      name,
      rps: median(list.map((x) => x.rps)),
      p99: median(list.map((x) => x.p99)),
      cpu: median(list.map((x) => x.cpu))
    }))
    const base = cells[0]!
    const core = cells.find((c) => c.name === "node:http2 core")
    console.log(`  ${row.name.padEnd(22)} ${cells.map((c) =>
      `${c.name} ${Math.round(c.rps)} req/s${c === base ? "" : ` (${(c.rps / base.rps).toFixed(2)}×${c.name.startsWith("fiberd") && core !== undefined ? `, ${(c.rps / core.rps).toFixed(2)}× core` : ""})`} p99 ${c.p99.toFixed(2)}ms CPU ${c.cpu.toFixed(1)} µs/req`
    ).join(" | ")}`)
  }
}

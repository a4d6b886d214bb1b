/**
 * Prefork and offload benchmarks (issue 13), on the real fiberd program
 * (`src/runtime/main.ts` with a table in a temp dir, access log on):
 * - hello (12 B static file) at c=100: 1 process vs `workers: 2` round-robin
 *   vs `workers: 2` reuse-port — req/s, p99, and CPU µs per request summed
 *   over every process of the server (primary, workers, their threads);
 * - head-of-line blocking: light requests at c=50 alone, then while 4
 *   clients loop on `/api/pbkdf2?rounds=200000` computed inline vs on the
 *   offload pool — light p50/p99/throughput and heavy requests done;
 * - `kill -9` of a worker under wrk -c100: failed requests and the time
 *   from the kill to the replacement listening.
 * The load (wrk, the heavy clients) runs on CPU 1. The servers are not
 * pinned: on this 2-core machine a second worker or an offload thread has
 * only CPU 0 and what wrk leaves of CPU 1, so throughput cannot double; the
 * CPU per request says what a second core costs.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { median } from "./harness.ts"

const root = Path.resolve(import.meta.dirname, "..")
const main = Path.join(root, "src/runtime/main.ts")
/** The fiberd command (the bundled program, after `npm run build`). */
const command = Path.join(root, "bin/fiberd.js")

interface Fiberd {
  readonly port: number
  readonly child: ChildProcess
  readonly stderr: () => string
  readonly waitFor: (pattern: RegExp) => Promise<RegExpExecArray>
  readonly pids: () => Array<number>
  readonly stop: () => Promise<void>
}

const childPids = (pid: number): Array<number> => {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" }).split("\n").map((p) => Number(p.trim())).filter((p) => p > 0)
  } catch {
    return []
  }
}

/** Starts fiberd with a table serving `site` (and the table's extra keys); resolves once web is listening. */
const startFiberd = (extra: Record<string, unknown>, script = main): Promise<Fiberd> =>
  new Promise((resolve, reject) => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-bench-prefork-"))
    Fs.writeFileSync(Path.join(dir, "hello.txt"), "Hello, world")
    Fs.writeFileSync(Path.join(dir, "fiberd.json"), JSON.stringify({
      services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", root: dir, maxConnections: 20_000, keepAliveTimeout: "60 seconds" }],
      accessLog: { path: Path.join(dir, "access.log") },
      ...extra
    }))
    const child = spawn(process.execPath, [script, "--config", Path.join(dir, "fiberd.json")], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    const waiters: Array<() => void> = []
    child.stdout!.on("data", (d) => {
      out += d
      const m = /^web\t\S+\t127\.0\.0\.1:(\d+)$/m.exec(out)
      if (m !== null) {
        resolve({
          port: Number(m[1]),
          child,
          stderr: () => err,
          waitFor: (pattern) =>
            new Promise((res) => {
              const check = () => {
                const found = pattern.exec(err)
                if (found !== null) res(found)
                else waiters.push(check)
              }
              check()
            }),
          pids: () => [child.pid!, ...childPids(child.pid!)],
          stop: () =>
            new Promise((res) => {
              child.once("exit", () => res())
              child.kill("SIGTERM")
            })
        })
      }
    })
    child.stderr!.on("data", (d) => {
      err += d
      waiters.splice(0).forEach((w) => w())
    })
    child.once("exit", (code) => reject(new Error(`fiberd exited with ${code}: ${err}`)))
  })

const ticks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
/** User + system CPU of a process and its threads, in µs. */
const cpuOf = (pid: number) => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(f[11]) + Number(f[12])) / ticks) * 1e6
  } catch {
    return 0
  }
}
const cpuAll = (pids: ReadonlyArray<number>) => pids.reduce((sum, pid) => sum + cpuOf(pid), 0)

interface WrkResult {
  readonly rps: number
  readonly requests: number
  readonly p50: string
  readonly p99: string
  readonly errors: number
  readonly non2xx: number
}

const wrk = (port: number, connections: number, seconds: number, path = "/hello.txt"): Promise<WrkResult> =>
  new Promise((resolve, reject) => {
    execFile("taskset", ["-c", "1", "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "--timeout", "5s", `http://127.0.0.1:${port}${path}`], (error, stdout) => {
      if (error) return reject(error)
      const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
      if (process.env.FIBERD_BENCH_DEBUG) console.log(stdout)
      resolve({
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? NaN),
        requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN),
        p50: /50%\s+(\S+)/.exec(stdout)?.[1] ?? "?",
        p99: /99%\s+(\S+)/.exec(stdout)?.[1] ?? "?",
        errors: errors === null ? 0 : errors.slice(1).reduce((n, x) => n + Number(x), 0),
        non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0)
      })
    })
  })

/** `count` clients on CPU 1, each looping on `path` until `stop`; resolves with the requests done. */
const heavyClients = (port: number, path: string, count: number) => {
  const script = `
    const http = require("node:http")
    let done = 0, running = true
    process.stdin.on("data", () => { running = false })
    const loop = () => { if (!running) return finish(); http.get({ host: "127.0.0.1", port: ${port}, path: ${JSON.stringify(path)}, agent: false }, (res) => { res.resume(); res.on("end", () => { done++; loop() }) }).on("error", () => loop()) }
    let left = ${count}
    const finish = () => { if (--left === 0) { console.log(done); process.exit(0) } }
    for (let i = 0; i < ${count}; i++) loop()
  `
  const child = spawn("taskset", ["-c", "1", process.execPath, "-e", script], { stdio: ["pipe", "pipe", "inherit"] })
  let out = ""
  child.stdout.on("data", (d) => (out += d))
  return {
    stop: () =>
      new Promise<number>((resolve) => {
        child.once("exit", () => resolve(Number(out.trim())))
        child.stdin.write("stop\n")
      })
  }
}

/** Hello at c=100: 1 process, 2 workers round-robin, 2 workers reuse-port, alternating rounds. */
export const hello = async (rounds: number, seconds: number) => {
  const variants = [
    { name: "1 process", extra: {} },
    { name: "2 workers round-robin", extra: { workers: 2, portSharing: "round-robin" } },
    { name: "2 workers reuse-port", extra: { workers: 2, portSharing: "reuse-port" } }
  ]
  const samples = new Map<string, Array<WrkResult & { cpu: number }>>()
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const server = await startFiberd(v.extra)
      await wrk(server.port, 100, 1) // warm-up
      const pids = server.pids()
      const cpu0 = cpuAll(pids)
      const m = await wrk(server.port, 100, seconds)
      const cpu = (cpuAll(pids) - cpu0) / m.requests
      await server.stop()
      samples.set(v.name, [...(samples.get(v.name) ?? []), { ...m, cpu }])
    }
  }
  const base = median(samples.get("1 process")!.map((s) => s.rps))
  for (const [name, list] of samples) {
    const rps = median(list.map((s) => s.rps))
    const closest = [...list].sort((a, b) => Math.abs(a.rps - rps) - Math.abs(b.rps - rps))[0]!
    console.log(`  ${name.padEnd(24)} ${Math.round(rps)} req/s (${(rps / base).toFixed(2)}×) p99 ${closest.p99} CPU ${median(list.map((s) => s.cpu)).toFixed(1)} µs/req (all processes)`)
  }
}

/** Light requests at c=50 alone, then beside 4 clients looping on the heavy route inline and offloaded. */
export const headOfLine = async (rounds: number, seconds: number) => {
  const heavy = "/api/pbkdf2?rounds=200000"
  const variants = [
    { name: "light only", path: undefined },
    { name: "+ 4 heavy, inline", path: `${heavy}&inline=1` },
    { name: "+ 4 heavy, offloaded", path: heavy }
  ]
  const samples = new Map<string, Array<WrkResult & { heavyDone: number }>>()
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const server = await startFiberd({ offload: { threads: 1 } })
      await wrk(server.port, 50, 1)
      const clients = v.path === undefined ? undefined : heavyClients(server.port, v.path, 4)
      const m = await wrk(server.port, 50, seconds)
      const heavyDone = clients === undefined ? 0 : await clients.stop()
      await server.stop()
      samples.set(v.name, [...(samples.get(v.name) ?? []), { ...m, heavyDone }])
    }
  }
  for (const [name, list] of samples) {
    const rps = median(list.map((s) => s.rps))
    const closest = [...list].sort((a, b) => Math.abs(a.rps - rps) - Math.abs(b.rps - rps))[0]!
    const heavyPerSecond = median(list.map((s) => s.heavyDone)) / seconds
    console.log(`  ${name.padEnd(24)} light ${Math.round(rps)} req/s p50 ${closest.p50} p99 ${closest.p99}${name === "light only" ? "" : ` | heavy ${heavyPerSecond.toFixed(1)} req/s`}`)
  }
}

/** kill -9 of worker 1 under wrk -c100: failed requests, and kill → replacement listening. */
export const killUnderLoad = async (seconds: number) => {
  const server = await startFiberd({ workers: 2 })
  const load = wrk(server.port, 100, seconds)
  await new Promise((r) => setTimeout(r, (seconds * 1000) / 3)) // a third into the load
  const victim = /worker 1 \(pid (\d+)\) listening/.exec(server.stderr())![1]!
  const killedAt = performance.now()
  process.kill(Number(victim), "SIGKILL")
  await server.waitFor(new RegExp(`worker 1 \\(pid (?!${victim}\\))\\d+\\) listening`))
  const replacedMs = performance.now() - killedAt
  const m = await load
  await server.stop()
  console.log(`  ${Math.round(m.rps)} req/s over ${seconds} s; failed: ${m.errors} socket errors, ${m.non2xx} non-2xx of ${m.requests}; replacement listening ${replacedMs.toFixed(0)} ms after the kill`)
}

/** SIGHUP roll of 2 workers under wrk -c100, in both sharing modes: failed requests and the roll's duration. */
export const rollUnderLoad = async (seconds: number) => {
  for (const portSharing of ["round-robin", "reuse-port"]) {
    const server = await startFiberd({ workers: 2, portSharing })
    const load = wrk(server.port, 100, seconds)
    await new Promise((r) => setTimeout(r, (seconds * 1000) / 4))
    const hupAt = performance.now()
    server.child.kill("SIGHUP")
    await server.waitFor(/SIGHUP: 2 workers rolled/)
    const rollMs = performance.now() - hupAt
    const m = await load
    await server.stop()
    console.log(`  ${portSharing.padEnd(12)} ${Math.round(m.rps)} req/s over ${seconds} s; failed: ${m.errors} socket errors, ${m.non2xx} non-2xx of ${m.requests}; roll took ${rollMs.toFixed(0)} ms`)
  }
}

/**
 * Start-up (issue 22): from spawning fiberd to its web service listening,
 * from the TypeScript sources (`npm start`) and as the `fiberd` command (the
 * bundle), and to both workers listening (`workers: 2`, the command);
 * beside it, bare Node (node:http listening) started the same way.
 */
export const startup = async (rounds: number) => {
  const bare = "require('node:http').createServer().listen(0, '127.0.0.1', function () { console.log('web\\tbare\\t127.0.0.1:' + this.address().port) })"
  const time = async (start: () => Promise<{ readonly stop: () => Promise<void> }>) => {
    const t0 = performance.now()
    const server = await start()
    const ms = performance.now() - t0
    await server.stop()
    return ms
  }
  const node: Array<number> = []
  const sources: Array<number> = []
  const one: Array<number> = []
  const two: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    node.push(await time(() =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ["-e", bare], { stdio: ["ignore", "pipe", "inherit"] })
        child.stdout.once("data", () => resolve({ stop: () => new Promise<void>((res) => (child.once("exit", () => res()), child.kill())) }))
        child.once("error", reject)
      })
    ))
    sources.push(await time(() => startFiberd({})))
    one.push(await time(() => startFiberd({}, command)))
    two.push(await time(async () => {
      const server = await startFiberd({ workers: 2 }, command)
      await server.waitFor(/worker 1 \(pid \d+\) listening/)
      await server.waitFor(/worker 2 \(pid \d+\) listening/)
      return server
    }))
  }
  const f = (xs: ReadonlyArray<number>) => `${median(xs).toFixed(0)} ms`
  console.log(`  bare node:http ${f(node)} | npm start (sources) ${f(sources)} | fiberd command ${f(one)} | fiberd command, 2 workers ${f(two)} (targets ≤ 300 ms)`)
}

/**
 * The live status feed's cost (issue 28): hello at c=100 on the program (one process), with nobody on
 * `/_status/stream` and with a viewer (curl -N) reading it the whole run; alternating rounds, medians.
 */
export const liveStatus = async (rounds: number, seconds: number) => {
  const samples = new Map<string, Array<WrkResult & { cpu: number }>>()
  for (let r = 0; r < rounds; r++) {
    for (const watched of [false, true]) {
      const server = await startFiberd({})
      const viewer = watched ? spawn("taskset", ["-c", "1", "curl", "-sN", `http://127.0.0.1:${server.port}/_status/stream`], { stdio: "ignore" }) : undefined
      await wrk(server.port, 100, 1) // warm-up
      const pids = server.pids()
      const cpu0 = cpuAll(pids)
      const m = await wrk(server.port, 100, seconds)
      const cpu = (cpuAll(pids) - cpu0) / m.requests
      viewer?.kill("SIGKILL")
      await server.stop()
      const name = watched ? "a viewer on /_status/stream" : "nobody watching"
      samples.set(name, [...(samples.get(name) ?? []), { ...m, cpu }])
    }
  }
  const base = median(samples.get("nobody watching")!.map((s) => s.rps))
  for (const [name, list] of samples) {
    const rps = median(list.map((s) => s.rps))
    console.log(`  ${name.padEnd(28)} ${Math.round(rps)} req/s (${(rps / base).toFixed(2)}×) CPU ${median(list.map((s) => s.cpu)).toFixed(1)} µs/req; rounds ${list.map((s) => Math.round(s.rps)).join(", ")}`)
  }
}

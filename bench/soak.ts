/**
 * Soak benchmark (issue 16; not part of `npm test`): `npm run bench -- soak
 * [--minutes M]` (default 10). The fiberd runtime (web, echo, chat) on CPU 0
 * under mixed load on CPU 1 for M minutes: wrk c=300 on the site, 100 echo
 * ping-pong connections, 100 chat members in 10 rooms (c=500 in all). RSS
 * and the event loop's delay are sampled every second; the report gives RSS
 * growth after a one-minute warm-up (target < 10 %) and the p99 of the
 * per-second loop-delay p99s.
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process"
import * as Path from "node:path"
import * as Readline from "node:readline"

const root = Path.resolve(import.meta.dirname, "..")

interface Sample {
  readonly rss: number
  readonly heapUsed: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN
}

export const run = async (minutes: number) => {
  const seconds = Math.round(minutes * 60)
  const server = spawn("taskset", ["-c", "0", process.execPath, Path.join(root, "bench/servers/soak-fiberd.ts")], { cwd: root }) as ChildProcessWithoutNullStreams
  server.stderr.on("data", () => {})
  const samples: Array<Sample> = []
  const ports = await new Promise<[number, number, number]>((resolve, reject) => {
    server.once("exit", (code) => reject(new Error(`soak server exited with ${code}`)))
    Readline.createInterface({ input: server.stdout }).on("line", (line) => {
      const listening = /^listening (\d+) (\d+) (\d+)/.exec(line)
      if (listening !== null) resolve([Number(listening[1]), Number(listening[2]), Number(listening[3])])
      const sample = /^sample (.*)$/.exec(line)
      if (sample !== null) samples.push(JSON.parse(sample[1]!))
    })
  })
  const [web, echo, chat] = ports
  const wrk = new Promise<string>((resolve, reject) =>
    execFile("taskset", ["-c", "1", "wrk", "-t1", "-c300", `-d${seconds}s`, "--latency", "--timeout", "5s", `http://127.0.0.1:${web}/`], { maxBuffer: 1 << 20 }, (e, out) => (e ? reject(e) : resolve(out)))
  )
  const clients = new Promise<{ roundTrips: number; sent: number; received: number; errors: number }>((resolve, reject) =>
    execFile("taskset", ["-c", "1", process.execPath, Path.join(root, "bench/soakClient.ts"), String(echo), String(chat), "100", "100", String(seconds)], { maxBuffer: 1 << 20 }, (e, out) => (e ? reject(e) : resolve(JSON.parse(out.trim().split("\n").at(-1)!))))
  )
  const [wrkOut, load] = await Promise.all([wrk, clients])
  server.kill("SIGKILL")
  const warm = Math.min(60, Math.floor(samples.length / 2))
  const after = samples.slice(warm)
  const rssAtWarm = after[0]?.rss ?? NaN
  const rssEnd = percentile(after.slice(-10).map((s) => s.rss), 50)
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrkOut)?.[1] ?? NaN)
  const wrkErrors = /Socket errors: (.*)/.exec(wrkOut)?.[1] ?? "none"
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(wrkOut)?.[1] ?? "0"
  return {
    seconds,
    samples: samples.length,
    rssAtWarmMiB: rssAtWarm / 2 ** 20,
    rssEndMiB: rssEnd / 2 ** 20,
    rssMaxMiB: Math.max(...after.map((s) => s.rss)) / 2 ** 20,
    growthPercent: ((rssEnd - rssAtWarm) / rssAtWarm) * 100,
    loopDelayP99OfP99Ms: percentile(after.map((s) => s.p99), 99),
    loopDelayMedianP99Ms: percentile(after.map((s) => s.p99), 50),
    loopDelayMaxMs: Math.max(...after.map((s) => s.max)),
    httpRps: rps,
    httpP99: /99%\s+(\S+)/.exec(wrkOut)?.[1] ?? "?",
    wrkErrors,
    non2xx,
    echoRoundTrips: load.roundTrips,
    chatSent: load.sent,
    chatReceived: load.received,
    clientErrors: load.errors
  }
}

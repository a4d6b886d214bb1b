/**
 * Benchmark harness: starts a server script in a fresh Node process (pinned to
 * CPU 0 when `taskset` exists), runs load generators on CPU 1, reads memory.
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"

const root = Path.resolve(import.meta.dirname, "..")
const hasTaskset = (() => {
  try {
    execFileSync("taskset", ["-c", "0", "true"])
    return true
  } catch {
    return false
  }
})()

const pinned = (cpu: number, argv: ReadonlyArray<string>): [string, Array<string>] =>
  hasTaskset ? ["taskset", ["-c", String(cpu), ...argv]] : [argv[0]!, argv.slice(1)]

export interface BenchServer {
  readonly port: number
  /** CPU time (user + system) the server process has used so far, in microseconds (from /proc). */
  readonly cpuMicros: () => number
  readonly mem: () => Promise<{ rss: number; heapUsed: number }>
  readonly stop: () => Promise<void>
  /** Runs `load` with the server's CPU profiler on (bench servers only) and returns where its time went (see `profileSummary`). */
  readonly profile?: (load: () => Promise<unknown>) => Promise<Array<string>>
}

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** User + system CPU time of a process, in microseconds (fields 14 and 15 of /proc/PID/stat). */
const cpuMicrosOf = (pid: number): number => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1e6
}

/** Starts `bench/servers/<name>.ts` with the given extra args; resolves once it listens. */
export const startServer = (name: string, args: ReadonlyArray<string> = []): Promise<BenchServer> =>
  new Promise((resolve, reject) => {
    const [cmd, argv] = pinned(0, [process.execPath, "--expose-gc", Path.join(root, "bench/servers", `${name}.ts`), ...args])
    const child = spawn(cmd, argv, { cwd: root }) as ChildProcessWithoutNullStreams
    const lines = Readline.createInterface({ input: child.stdout })
    const waiting: Array<(line: string) => void> = []
    child.stderr.on("data", (d) => process.stderr.write(d))
    child.once("exit", (code) => reject(new Error(`${name} exited with ${code}`)))
    lines.on("line", (line) => {
      const m = /^listening (\d+)/.exec(line)
      if (m !== null) {
        const ask = (command: string) =>
          new Promise<string>((res) => {
            waiting.push(res)
            child.stdin.write(`${command}\n`)
          })
        resolve({
          port: Number(m[1]),
          cpuMicros: () => cpuMicrosOf(child.pid!), // taskset execs node: the same pid
          mem: () =>
            new Promise((res) => {
              waiting.push((l) => res(JSON.parse(l)))
              child.stdin.write("mem\n")
            }),
          stop: () =>
            new Promise((res) => {
              child.removeAllListeners("exit")
              child.once("exit", () => res())
              child.kill("SIGKILL")
            }),
          profile: async (load) => {
            const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-bench-profile-"))
            await ask("profile-start")
            await load()
            await ask(`profile-stop ${Path.join(dir, "load.cpuprofile")}`)
            const summary = profileSummary(dir, Number(process.env.PROFILE_TOP ?? 6))
            Fs.rmSync(dir, { recursive: true, force: true })
            return summary
          }
        })
        return
      }
      waiting.shift()?.(line)
    })
  })

/** Runs a client script on CPU 1 and returns its last stdout line parsed as JSON. */
export const runClient = (script: string, args: ReadonlyArray<string | number>): Promise<any> =>
  new Promise((resolve, reject) => {
    const [cmd, argv] = pinned(1, [process.execPath, Path.join(root, "bench", script), ...args.map(String)])
    const child = spawn(cmd, argv, { cwd: root, stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}`))
      resolve(JSON.parse(out.trim().split("\n").at(-1)!))
    })
  })

/** Starts a long-lived client that prints `ready N` and holds until stopped. */
export const holdClient = (script: string, args: ReadonlyArray<string | number>) =>
  new Promise<{ stop: () => void }>((resolve, reject) => {
    const [cmd, argv] = pinned(1, [process.execPath, Path.join(root, "bench", script), ...args.map(String)])
    const child = spawn(cmd, argv, { cwd: root, stdio: ["pipe", "pipe", "inherit"] })
    child.stdout.on("data", (d: Buffer) => {
      if (d.toString().startsWith("ready")) resolve({ stop: () => child.stdin.end() })
    })
    child.once("exit", (code) => reject(new Error(`${script} exited early with ${code}`)))
  })

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export const pinnedNote = hasTaskset ? "server on CPU 0, load on CPU 1 (taskset)" : "no taskset: processes not pinned"

/**
 * nginx (one worker, no master: the process serving is the one measured) on
 * the bench site with an access log (buffered, like fiberd's), pinned to
 * CPU 0; `undefined` when nginx is not installed (`apt-get install -y nginx-light`). `http2`: the
 * port speaks HTTP/2 by prior knowledge (nginx 1.22's `listen ... http2`).
 */
export const startNginx = async (options: { readonly http2?: boolean } = {}): Promise<BenchServer | undefined> => {
  const binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"].find((p) => Fs.existsSync(p))
  if (binary === undefined) return undefined
  const { makeSite } = await import("./servers/files.ts")
  const site = makeSite()
  const port = await new Promise<number>((resolve) => {
    const probe = Net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as Net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
  const conf = Path.join(site, "nginx.conf")
  Fs.writeFileSync(conf, `daemon off; master_process off; worker_processes 1; pid ${site}/nginx.pid; error_log ${site}/error.log;
events { worker_connections 20000; }
http {
  access_log ${site}/access.log combined buffer=64k flush=100ms;
  default_type application/octet-stream; types { text/plain txt; }
  sendfile on; tcp_nopush on; keepalive_timeout 60s; keepalive_requests 1000000;
  client_body_temp_path ${site}/tmp; proxy_temp_path ${site}/tmp; fastcgi_temp_path ${site}/tmp; uwsgi_temp_path ${site}/tmp; scgi_temp_path ${site}/tmp;
  server { listen 127.0.0.1:${port} backlog=4096${options.http2 === true ? " http2" : ""}; root ${site};${options.http2 === true ? " http2_max_concurrent_streams 100;" : ""} }
}
`)
  const [cmd, argv] = pinned(0, [binary, "-c", conf, "-p", site])
  const child = spawn(cmd, argv, { stdio: "ignore" })
  // ready when it answers
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = Net.connect(port, "127.0.0.1", () => (socket.destroy(), resolve(true)))
      socket.on("error", () => resolve(false))
    })
    if (up) break
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    port,
    cpuMicros: () => cpuMicrosOf(child.pid!),
    mem: async () => ({ rss: 0, heapUsed: 0 }),
    stop: () => new Promise((res) => (child.once("exit", () => res()), child.kill("SIGKILL")))
  }
}

/**
 * Where a server's CPU time goes: the functions with the most self time in
 * the `--cpu-prof` profile(s) written to `dir` (idle time left out), as
 * "12.3% parseHeadText (Parser.ts:223)" lines.
 */
export const profileSummary = (dir: string, top = 8): Array<string> => {
  const self = new Map<string, number>()
  let busy = 0
  for (const file of Fs.readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
    const profile = JSON.parse(Fs.readFileSync(Path.join(dir, file), "utf8")) as {
      nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>
      samples: Array<number>
      timeDeltas: Array<number>
    }
    const time = new Map<number, number>()
    profile.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
    for (const node of profile.nodes) {
      const { functionName, url, lineNumber } = node.callFrame
      if (functionName === "(idle)") continue
      const t = time.get(node.id) ?? 0
      const key = `${functionName || "(anonymous)"}${url === "" ? "" : ` (${Path.basename(url)}:${lineNumber + 1})`}`
      self.set(key, (self.get(key) ?? 0) + t)
      busy += t
    }
  }
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, t]) => `${((100 * t) / busy).toFixed(1)}% ${k}`)
}

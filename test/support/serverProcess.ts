/**
 * Starts the real fiberd program (`node src/runtime/main.ts`) as a child
 * process for end-to-end tests, with a service table on port 0, and reads
 * the addresses it prints.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "../..")
export const mainScript = Path.join(root, "src/runtime/main.ts")

export interface ServerProcess {
  readonly child: ChildProcess
  readonly dir: string
  readonly configPath: string
  /** name → "host:port" (or socket path), as printed at start and after reloads. */
  readonly addresses: Map<string, string>
  readonly stdout: () => string
  readonly stderr: () => string
  readonly port: (name: string) => number
  /** Resolves when `text` has appeared on stdout or stderr (or rejects after `ms`). */
  readonly waitFor: (text: string | RegExp, ms?: number) => Promise<void>
  readonly exited: Promise<number | null>
  readonly stop: () => Promise<number | null>
}

/** Writes `table` to a temp dir and starts fiberd with it; resolves once every service printed its line. */
export const start = async (table: unknown, extraArgs: ReadonlyArray<string> = [], script = mainScript): Promise<ServerProcess> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-e2e-"))
  const configPath = Path.join(dir, "fiberd.json")
  Fs.writeFileSync(configPath, JSON.stringify(table, null, 2))
  const child = spawn(process.execPath, [script, "--config", configPath, ...extraArgs], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  const addresses = new Map<string, string>()
  const waiters: Array<() => void> = []
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString()
    for (const line of out.split("\n")) {
      const m = /^(\S+)\t\S+\t(\S+)$/.exec(line)
      if (m) addresses.set(m[1]!, m[2]!)
    }
    waiters.splice(0).forEach((w) => w())
  })
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString()
    waiters.splice(0).forEach((w) => w())
  })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const waitFor = (text: string | RegExp, ms = 15_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${text}; stdout:\n${out}\nstderr:\n${err}`)), ms)
      const check = () => {
        const both = out + err
        if (typeof text === "string" ? both.includes(text) : text.test(both)) {
          clearTimeout(timer)
          resolve()
        } else waiters.push(check)
      }
      check()
    })
  const names = ((table as { services?: Array<{ name: string }> }).services ?? []).map((s) => s.name)
  await Promise.race([
    Promise.all(names.map((n) => waitFor(new RegExp(`^${n}\\t`, "m")))),
    exited.then((code) => {
      throw new Error(`fiberd exited with ${code}\n${err}`)
    })
  ])
  return {
    child,
    dir,
    configPath,
    addresses,
    stdout: () => out,
    stderr: () => err,
    port: (name) => Number(addresses.get(name)!.split(":").at(-1)),
    waitFor,
    exited,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM")
      return exited
    }
  }
}

/** Runs fiberd to completion with the given args; returns its exit code and output. */
export const runOnce = (args: ReadonlyArray<string>, cwd = root): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [mainScript, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/**
 * A throwaway PostgreSQL server for tests and benches: `initdb` into a temp
 * dir, `pg_ctl start` on a free loopback port, stopped and removed after.
 * Uses the server binaries on the machine (PATH, then /usr/lib/postgresql/N/bin);
 * the server refuses to run as root, so as root it runs as the `postgres` user.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { freePort } from "./netClient.ts"

export interface Postgres {
  /** `postgres://fiberd@127.0.0.1:PORT/postgres` (the initial database; trust authentication on loopback). */
  readonly url: string
  readonly port: number
  readonly stop: () => void
}

const binDir = (): string => {
  try {
    return Path.dirname(execFileSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" }).trim())
  } catch {
    const versions = Fs.existsSync("/usr/lib/postgresql") ? Fs.readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a)) : []
    for (const v of versions) if (Fs.existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) return `/usr/lib/postgresql/${v}/bin`
    throw new Error("PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian: apt-get install -y postgresql)")
  }
}

/** Starts a fresh server (superuser `fiberd`); `stop()` shuts it down and deletes its files. */
export const startPostgres = async (): Promise<Postgres> => {
  const bin = binDir()
  const root = process.getuid?.() === 0
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-pg-"))
  const data = Path.join(dir, "data")
  if (root) execFileSync("chown", ["postgres:postgres", dir])
  const run = (tool: string, args: ReadonlyArray<string>) =>
    root
      ? execFileSync("runuser", ["-u", "postgres", "--", Path.join(bin, tool), ...args], { stdio: ["ignore", "pipe", "pipe"], cwd: dir })
      : execFileSync(Path.join(bin, tool), args, { stdio: ["ignore", "pipe", "pipe"], cwd: dir })
  run("initdb", ["-D", data, "-U", "fiberd", "--auth=trust", "-E", "UTF8", "--no-sync"])
  const port = await freePort()
  run("pg_ctl", ["-D", data, "-l", Path.join(dir, "server.log"), "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, "start"])
  let stopped = false
  return {
    url: `postgres://fiberd@127.0.0.1:${port}/postgres`,
    port,
    stop: () => {
      if (stopped) return
      stopped = true
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
      } finally {
        Fs.rmSync(dir, { recursive: true, force: true })
      }
    }
  }
}

/**
 * The fiberd command line, on `effect/cli` (help, version, `--flag=value`
 * and `--flag value`, error messages and their shape all come from it):
 *
 *   fiberd [--config PATH] [--port N] [--root DIR] [--access-log PATH|-] [--workers N|auto] [--port-sharing round-robin|reuse-port] [--pid-file PATH]
 *   fiberd check [--config PATH]
 *   fiberd top [--url URL]
 *   fiberd unit [--config PATH] [--out DIR]
 *   fiberd --help | --version
 *
 * This module holds the flags, the description shown by `--help` (including
 * exactly what the signals do) and how the flags change a table; `main.ts`
 * wires them to the runtime.
 */
import { Option } from "effect"
import { Flag } from "effect/cli"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as ServiceTable from "./ServiceTable.ts"

/** What the command line asked for, with `--config` defaulted to ./fiberd.json when that exists. */
export interface Args {
  /** Explicit --config, or ./fiberd.json when it exists, else undefined (built-in defaults). */
  readonly config: string | undefined
  readonly port: number | undefined
  readonly root: string | undefined
  readonly accessLog: string | undefined
  readonly workers?: number | "auto" | undefined
  readonly portSharing?: "round-robin" | "reuse-port" | undefined
  readonly pidFile?: string | undefined
}

/** `--config PATH`: the service table. */
export const config = Flag.String("config").pipe(
  Flag.withMetavar("PATH"),
  Flag.withDescription("the service table (JSON); default ./fiberd.json when it exists, else the built-in defaults"),
  Flag.optional
)

/** `fiberd unit --out DIR`: where to write the unit files (default: print them). */
export const unitOut = Flag.String("out").pipe(
  Flag.withMetavar("DIR"),
  Flag.withDescription("write the unit files into DIR instead of printing them"),
  Flag.optional
)

/** `fiberd top --url URL`: the live feed to follow. */
export const topUrl = Flag.String("url").pipe(
  Flag.withMetavar("URL"),
  Flag.withDescription("the live status stream of the server (loopback by default)"),
  Flag.withDefault("http://127.0.0.1:8080/_status/stream")
)

/** The flags of the run command. */
export const runFlags = {
  config,
  port: Flag.Int("port").pipe(
    Flag.withMetavar("N"),
    Flag.filter((port) => port >= 0 && port <= 65535, (port) => `expected a port number from 0 to 65535, got ${port}`),
    Flag.withDescription("port of the first http service"),
    Flag.optional
  ),
  root: Flag.String("root").pipe(Flag.withMetavar("DIR"), Flag.withDescription("root directory of every http service"), Flag.optional),
  accessLog: Flag.String("access-log").pipe(Flag.withMetavar("PATH"), Flag.withDescription("access log file, or - for stdout"), Flag.optional),
  workers: Flag.String("workers").pipe(
    Flag.withMetavar("N|auto"),
    Flag.filter((w) => w === "auto" || /^[1-9][0-9]{0,3}$/.test(w), (w) => `expected a number of worker processes (1 or more) or "auto", got ${w}`),
    Flag.withDescription("worker processes (prefork; auto = one per CPU); 1 serves from this process alone"),
    Flag.optional
  ),
  portSharing: Flag.Literals("port-sharing", ["round-robin", "reuse-port"]).pipe(
    Flag.withDescription("how workers share a TCP port: the primary hands out connections (round-robin, default) or each worker binds SO_REUSEPORT"),
    Flag.optional
  ),
  pidFile: Flag.String("pid-file").pipe(
    Flag.withMetavar("PATH"),
    Flag.withDescription("write the process id here once every service listens, and remove it at exit (for supervisors other than systemd)"),
    Flag.optional
  )
}

/** What `fiberd --help` says about the program, its defaults and its signals. */
export const description = `Serves the services of a service table (fiberd.json in the working directory, or --config PATH); \
without one, the built-in defaults on loopback: web (http) 127.0.0.1:8080, echo tcp+udp 127.0.0.1:7007, \
daytime tcp+udp 127.0.0.1:7013, chat 127.0.0.1:7070.

With --workers N (or "workers" in the table) a primary process forks N workers that share the ports
and restarts a worker that dies; chat runs in the primary, everything else in every worker.

Signals:
  SIGTERM, SIGINT  stop accepting, let connections finish (drainTimeout), flush the logs, exit 0;
                   a second signal kills exec children and exits 130 at once. With workers: every
                   worker drains at once; the primary exits 0 after all of them exited.
  SIGHUP           reopen the access and error logs (log rotation); with a table file, re-read it:
                   new services start, removed ones drain and stop, unchanged ones keep their
                   connections, changed ones (also when drainTimeout or maxConnections changed) are
                   handed over: the new configuration takes the listening socket, the old one drains
                   (no connection is refused or dropped); a changed accessLog path or format switches
                   the access log; a changed errorLog is reported in the error log as needing a
                   restart. An invalid table is reported and the running one stays.
                   With workers: re-read the table and roll the workers one at a time (a new
                   worker starts and listens, then the old one drains); logs are reopened.

Exit codes: 0 after a signal, 1 when a service cannot start (port in use, unreadable root),
2 for a bad table or bad arguments.`

/** Resolves the parsed flags (Options) into Args; `cwd` is where ./fiberd.json is looked for. */
export const toArgs = (parsed: {
  readonly config: Option.Option<string>
  readonly port?: Option.Option<number>
  readonly root?: Option.Option<string>
  readonly accessLog?: Option.Option<string>
  readonly workers?: Option.Option<string>
  readonly portSharing?: Option.Option<"round-robin" | "reuse-port">
  readonly pidFile?: Option.Option<string>
}, cwd = process.cwd()): Args => {
  const explicit = Option.getOrUndefined(parsed.config)
  const local = Path.join(cwd, "fiberd.json")
  return {
    config: explicit ?? (Fs.existsSync(local) ? local : undefined),
    port: parsed.port === undefined ? undefined : Option.getOrUndefined(parsed.port),
    root: parsed.root === undefined ? undefined : Option.getOrUndefined(parsed.root),
    accessLog: parsed.accessLog === undefined ? undefined : Option.getOrUndefined(parsed.accessLog),
    workers: parsed.workers === undefined ? undefined : Option.match(parsed.workers, { onNone: () => undefined, onSome: (w) => (w === "auto" ? "auto" : Number(w)) }),
    portSharing: parsed.portSharing === undefined ? undefined : Option.getOrUndefined(parsed.portSharing),
    pidFile: parsed.pidFile === undefined ? undefined : Option.getOrUndefined(parsed.pidFile)
  }
}

/** Applies --port, --root and --access-log to a table. */
export const override = (table: ServiceTable.Table, args: Args): ServiceTable.Table => {
  let portDone = false
  const services = table.services.map((s) => {
    if (s.protocol !== "http") return s
    let next = s
    if (args.root !== undefined) next = { ...next, root: Path.resolve(args.root) }
    if (args.port !== undefined && !portDone && (s.transport ?? "tcp") === "tcp") {
      portDone = true
      const host = s.listen.slice(0, s.listen.lastIndexOf(":"))
      next = { ...next, listen: `${host}:${args.port}` }
    }
    return next
  })
  return {
    ...table,
    services,
    ...(args.accessLog !== undefined ? { accessLog: { ...table.accessLog, path: args.accessLog } } : {}),
    ...(args.workers !== undefined ? { workers: args.workers } : {}),
    ...(args.portSharing !== undefined ? { portSharing: args.portSharing } : {})
  }
}

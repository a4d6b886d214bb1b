/**
 * Command-line arguments of the fiberd program.
 *
 *   fiberd [--config PATH] [--port N] [--root DIR] [--access-log PATH|-]
 *   fiberd check [--config PATH]
 *   fiberd --help | --version
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as ServiceTable from "./ServiceTable.ts"

export interface Args {
  readonly command: "run" | "check" | "help" | "version"
  /** Explicit --config, or ./fiberd.json when it exists, else undefined (built-in defaults). */
  readonly config: string | undefined
  readonly port: number | undefined
  readonly root: string | undefined
  readonly accessLog: string | undefined
}

export const usage = `Usage: fiberd [check] [options]

Serves the services of a service table (fiberd.json in the working directory,
or --config PATH); without one, the built-in defaults on loopback:
web (http) 127.0.0.1:8080, echo tcp+udp 127.0.0.1:7007, daytime tcp+udp 127.0.0.1:7013,
chat 127.0.0.1:7070.

Commands:
  check               validate the table and exit (0 valid, 2 invalid)

Options:
  --config PATH       the service table (JSON)
  --port N            port of the first http service
  --root DIR          root directory of every http service
  --access-log PATH   access log file, or - for stdout
  --help              this text
  --version           the version

Signals: SIGTERM/SIGINT drain and exit 0 (a second one exits at once);
SIGHUP re-reads the table, applies the difference and reopens the logs.
`

/** Parses argv (without node and script); throws an Error with a message on bad usage. */
export const parse = (argv: ReadonlyArray<string>, cwd = process.cwd()): Args => {
  let command: Args["command"] = "run"
  let config: string | undefined
  let port: number | undefined
  let root: string | undefined
  let accessLog: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    switch (arg) {
      case "check":
        command = "check"
        break
      case "--help":
      case "-h":
        command = "help"
        break
      case "--version":
      case "-v":
        command = "version"
        break
      case "--config":
        config = value()
        break
      case "--port": {
        const v = value()
        port = Number(v)
        if (!/^\d+$/.test(v) || port > 65535) throw new Error(`--port: expected a port number, got ${v}`)
        break
      }
      case "--root":
        root = value()
        break
      case "--access-log":
        accessLog = value()
        break
      default:
        throw new Error(`unknown argument ${arg}`)
    }
  }
  if (config === undefined && Fs.existsSync(Path.join(cwd, "fiberd.json"))) config = Path.join(cwd, "fiberd.json")
  return { command, config, port, root, accessLog }
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
    ...(args.accessLog !== undefined ? { accessLog: { ...table.accessLog, path: args.accessLog } } : {})
  }
}

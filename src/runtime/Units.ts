/**
 * `fiberd unit`: systemd units for a service table — a `Type=notify`
 * service (reload by SIGHUP, a watchdog, hardening options fiberd works
 * under, the log directories writable) and one socket unit per service
 * (`ListenStream=`, or `ListenDatagram=` for UDP, and `FileDescriptorName=`
 * the service's name, since a socket unit names all its descriptors alike),
 * so systemd holds the sockets and fiberd restarts without refusing a
 * connection or losing a queued datagram.
 */
import * as Path from "node:path"
import * as AccessLog from "../actors/AccessLog.ts"
import * as ErrorLog from "../actors/ErrorLog.ts"
import * as Options from "../core/Options.ts"
import { parseListen } from "./kinds/Kind.ts"
import type * as ServiceTable from "./ServiceTable.ts"

/** One unit file: its name and text. */
export interface Unit {
  readonly name: string
  readonly text: string
}

/** What the units run: the program and the table (absolute paths). */
export interface UnitOptions {
  /** The command, as argv (absolute: `node` and fiberd's `bin/fiberd.js`). */
  readonly command: ReadonlyArray<string>
  /** The table file, absolute (its directory is the working directory); undefined for the built-in defaults. */
  readonly config: string | undefined
  /** The working directory when there is no table file. */
  readonly cwd: string
  /** The unit names' prefix. Default `fiberd`. */
  readonly name?: string
}

const quote = (arg: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, "\\$1")}"`)

/** The service unit and one socket unit per service. */
export const units = (table: ServiceTable.Table, options: UnitOptions): ReadonlyArray<Unit> => {
  const name = options.name ?? "fiberd"
  const workdir = options.config === undefined ? options.cwd : Path.dirname(options.config)
  const sockets = table.services.map((s) => {
    const address = parseListen(s.listen, s.transport ?? "tcp")
    const listen = typeof address === "string" ? s.listen : address._tag === "unix" ? address.path : address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
    return {
      name: `${name}-${s.name}.socket`,
      text: `[Unit]
Description=fiberd: the listening socket of ${s.name}
PartOf=${name}.service

[Socket]
${s.transport === "udp" ? "ListenDatagram" : "ListenStream"}=${listen}
FileDescriptorName=${s.name}
Service=${name}.service
${s.transport === "udp" ? "" : "Backlog=511\n"}
[Install]
WantedBy=sockets.target
`
    }
  })
  // the directories fiberd writes: its working directory (logs/) and the logs' own
  const logFiles = [AccessLog.options.resolve(table.accessLog).path, ErrorLog.options.resolve(table.errorLog).path]
    .filter((p) => p !== "-" && p !== "stderr")
    .map((p) => Path.dirname(Path.resolve(workdir, p)))
  const writable = [...new Set([workdir, ...logFiles])]
  const drainSeconds = Math.ceil(Options.millis(table.drainTimeout ?? "10 seconds") / 1000)
  const service = {
    name: `${name}.service`,
    text: `[Unit]
Description=fiberd (${table.services.map((s) => s.name).join(", ")})
After=network.target
${sockets.length > 0 ? `Requires=${sockets.map((s) => s.name).join(" ")}\nAfter=${sockets.map((s) => s.name).join(" ")}\n` : ""}
[Service]
Type=notify
# the notifications are sent by systemd-notify, a child process
NotifyAccess=all
WorkingDirectory=${workdir}
ExecStart=${[...options.command, ...(options.config === undefined ? [] : ["--config", options.config])].map(quote).join(" ")}
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=30s
Restart=on-failure
# SIGTERM drains (drainTimeout ${drainSeconds} s), then fiberd exits
TimeoutStopSec=${drainSeconds + 10}s
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${writable.join(" ")}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`
  }
  return [service, ...sockets]
}

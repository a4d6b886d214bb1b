/**
 * A kind of service the table can name (http, echo, daytime, chat, exec):
 * its table entry — a schema made of the component schemas it runs with —
 * and how it starts. Also what every kind shares: the common keys, the
 * `listen` syntax, what the runtime hands each service (`Deps`), and the
 * listener options a table entry makes (its decoded keys passed through).
 */
import { Effect, Schema, type Scope } from "effect"
import type * as AccessLog from "../../actors/AccessLog.ts"
import type * as LogWriter from "../../actors/LogWriter.ts"
import * as Options from "../../core/Options.ts"
import type { Connection } from "../../io/Connection.ts"
import * as Listener from "../../io/Listener.ts"
import type * as Chat from "../../protocols/chat/Chat.ts"
import type * as Rooms from "../../protocols/chat/Rooms.ts"
import type { Pbkdf2Pool } from "../Pbkdf2Jobs.ts"
import type * as Status from "../Status.ts"
import type { ServerView } from "../WorkerProtocol.ts"

/** The keys every service has: a name, where it listens, and the listener's limits, timeouts and TLS (Listener.limits). */
export const common = {
  name: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]+$/, { message: "a name of letters, digits, _ . -" })),
  transport: Schema.optionalKey(Schema.Literals(["tcp", "udp", "unix"])),
  /** `host:port`, `[v6]:port`, or a socket path for `unix`. */
  listen: Schema.String,
  ...Listener.limits.schema.fields
}

/** Where a service listens. */
export type Address =
  | { readonly _tag: "inet"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }

/** Parses `host:port`, `[v6]:port` or, for unix, a path; a string says what was expected. */
export const parseListen = (listen: string, transport: "tcp" | "udp" | "unix"): Address | string => {
  if (transport === "unix") return listen.length > 0 ? { _tag: "unix", path: listen } : "a socket path"
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(listen)
  if (m === null) return "\"host:port\" or \"[v6-address]:port\""
  const port = Number(m[3])
  if (port > 65535) return "a port between 0 and 65535"
  return { _tag: "inet", host: m[1] ?? m[2]!, port }
}

/** The keys of a service entry that every kind reads. */
export interface CommonService {
  readonly name: string
  readonly protocol: string
  readonly transport?: "tcp" | "udp" | "unix"
  readonly listen: string
  readonly tls?: unknown
}

/** How a process runs its table. */
export interface StartOptions {
  /** Feeds the status page's error-log counters. */
  readonly errorLogStats?: () => LogWriter.LogWriterStats
  /** Entries waiting in the error log's queue (the live status). */
  readonly errorLogQueued?: () => number
  /** Listening sockets handed to this process (systemd socket activation), by service name. */
  readonly inherited?: ReadonlyMap<string, number>
  /** TCP services bind their own SO_REUSEPORT socket (a prefork worker with `portSharing: "reuse-port"`). */
  readonly reusePort?: boolean
  /** In a prefork worker: the whole server's status, from the primary. */
  readonly server?: () => Effect.Effect<ServerView>
  /**
   * In a prefork worker: chat services that run in the primary, by name, with the address their TCP
   * members connect to; an http service's WebSocket `/chat` bridges its members there.
   */
  readonly remoteChats?: Readonly<Record<string, string>>
}

/** What the runtime shares with each service. */
export interface Deps {
  /** The table-wide keys a service falls back on. */
  readonly table: { readonly maxConnections?: number; readonly drainTimeout?: Options.Duration }
  readonly accessLog: LogWriter.LogWriter<AccessLog.AccessEntry>
  readonly status: Status.StatusSource
  /** The listening socket of a service's address, shared by its generations across reloads. */
  readonly socketFor: (service: CommonService) => Listener.ListenSocket
  /** Running chat services by name (an HTTP service's WebSocket chat joins their rooms). */
  readonly chats: Map<string, Chat.ChatServer>
  /** The process's offload pool (`/api/pbkdf2`); undefined with `offload.threads: 0`. */
  readonly offload: Pbkdf2Pool | undefined
  readonly options: StartOptions
  /** In cluster mode: the cluster's rooms, which every chat service of this node joins. */
  readonly clusterRooms: Rooms.RoomDirectory | undefined
}

/** A kind: its table entry's schema and how a service of it starts (in the current scope). */
export interface ServiceKind<S extends Schema.Top> {
  readonly schema: S
  readonly start: (service: S["Type"], deps: Deps) => Effect.Effect<Status.ServiceEntry, { readonly message: string }, Scope.Scope>
}

/** Declares a kind (checks its types). */
export const kind = <S extends Schema.Top>(k: ServiceKind<S>): ServiceKind<S> => k

/**
 * The listener options of a service: the table-wide fallbacks, then the entry's own keys as they
 * were decoded (no mapping), then where it listens and the socket it shares across reloads.
 */
export const listenOptions = (service: CommonService, deps: Deps): Listener.ListenOptions => {
  const transport = service.transport ?? "tcp"
  const address = parseListen(service.listen, transport) as Address
  return {
    ...(deps.table.maxConnections !== undefined ? { maxConnections: deps.table.maxConnections } : {}),
    ...(deps.table.drainTimeout !== undefined ? { drainTimeout: deps.table.drainTimeout } : {}),
    ...service,
    ...(address._tag === "unix" ? { path: address.path } : { host: address.host, port: address.port }),
    socket: deps.socketFor(service),
    reusePort: transport === "tcp" && deps.options.reusePort === true,
    ...(deps.options.inherited?.has(service.name) === true ? { inheritedFd: deps.options.inherited.get(service.name)! } : {})
  } as Listener.ListenOptions
}

/** What the status page shows of a service that has not started listening yet (its identity). */
export const entryBase = (service: CommonService, deps?: Deps) => ({
  name: service.name,
  protocol: service.protocol,
  transport: service.transport ?? "tcp",
  ...(service.tls !== undefined ? { tls: true } : {}),
  ...(deps?.options.inherited?.has(service.name) === true ? { inherited: true } : {})
})

/** Starts a listener for a stream service and describes it for the status page. */
export const listen = <E>(service: CommonService, deps: Deps, handler: (conn: Connection) => Effect.Effect<void, E>) =>
  Effect.map(Listener.make(listenOptions(service, deps), handler), (l): Status.ServiceEntry => ({
    ...entryBase(service, deps),
    address: Listener.formatAddress(l.address),
    stats: l.stats,
    oldest: l.oldest,
    reloadTls: l.reloadTls
  }))

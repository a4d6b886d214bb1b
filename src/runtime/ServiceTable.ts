/**
 * The service table: fiberd's configuration, in the spirit of inetd.conf.
 *
 * A JSON file (`fiberd.json`, or `--config PATH`) is validated with Effect
 * Schema; every problem is reported with the file, the JSON path of the bad
 * key and what was expected. No file: the built-in defaults (web, echo,
 * daytime, chat on loopback).
 */
import { Data, Duration as EffectDuration, Effect, Option, Result, Schema, SchemaIssue } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"

/** Text that Effect's own Duration parser reads as a finite, non-negative duration ("500 millis", "1 second", "2 hours"...). */
const DurationText = Schema.String.check(
  Schema.makeFilter((text: string) => {
    const parsed = EffectDuration.fromInput(text as EffectDuration.Input)
    return Option.isSome(parsed) && EffectDuration.isFinite(parsed.value) && EffectDuration.toMillis(parsed.value) >= 0
  }, {
    message: "a duration such as \"500 millis\", \"1 second\", \"10 seconds\", \"5 minutes\" or \"2 hours\" (units: nanos, micros, millis, seconds, minutes, hours, days, weeks)"
  })
)
/** A duration: milliseconds as a number, or text such as "10 seconds". */
const Duration = Schema.Union([Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)), DurationText])

/** A table duration as an Effect Duration input (numbers are milliseconds). */
export const toDuration = (d: number | string | undefined): EffectDuration.Duration | undefined =>
  d === undefined ? undefined : typeof d === "number" ? EffectDuration.millis(d) : EffectDuration.fromInputUnsafe(d as EffectDuration.Input)
const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

const CertFiles = Schema.Struct({ cert: Schema.String, key: Schema.String })

/** TLS on a TCP service: certificate and key files (PEM), optional client CA, SNI certificates per host name. */
const Tls = Schema.Struct({
  cert: Schema.String,
  key: Schema.String,
  ca: Schema.optional(Schema.String),
  requireClientCert: Schema.optional(Schema.Boolean),
  minVersion: Schema.optional(Schema.Literals(["TLSv1.2", "TLSv1.3"])),
  sni: Schema.optional(Schema.Record(Schema.String, CertFiles)),
  handshakeTimeout: Schema.optional(Duration),
  maxHandshakesPerAddress: Schema.optional(PositiveInt)
})

/** One service. Protocol options sit beside the common ones. */
export const Service = Schema.Struct({
  name: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]+$/, { message: "a name of letters, digits, _ . -" })),
  protocol: Schema.Literals(["http", "echo", "daytime", "chat", "exec"]),
  transport: Schema.optional(Schema.Literals(["tcp", "udp", "unix"])),
  /** `host:port`, `[v6]:port`, or a socket path for `unix`. */
  listen: Schema.String,
  maxConnections: Schema.optional(PositiveInt),
  idleTimeout: Schema.optional(Duration),
  sendTimeout: Schema.optional(Duration),
  tls: Schema.optional(Tls),
  // http
  root: Schema.optional(Schema.String),
  headerTimeout: Schema.optional(Duration),
  requestTimeout: Schema.optional(Duration),
  keepAliveTimeout: Schema.optional(Duration),
  maxBody: Schema.optional(PositiveInt),
  maxRequestsPerConnection: Schema.optional(PositiveInt),
  status: Schema.optional(Schema.Literals(["loopback", "any", "off"])),
  /** The chat service whose rooms `GET /chat` (WebSocket) joins. */
  chat: Schema.optional(Schema.String),
  // exec
  command: Schema.optional(Schema.Array(Schema.String).check(Schema.isMinLength(1))),
  maxInstances: Schema.optional(PositiveInt),
  // chat
  maxLineLength: Schema.optional(PositiveInt),
  outboxSize: Schema.optional(PositiveInt),
  maxRooms: Schema.optional(PositiveInt)
})
export type Service = typeof Service.Type

/** The limits both logs take: a stalled append, the queue bound, non-regular files. */
const logLimits = {
  writeStallTimeout: Schema.optional(Duration),
  maxQueued: Schema.optional(PositiveInt),
  allowNonRegular: Schema.optional(Schema.Boolean)
}

export const Table = Schema.Struct({
  services: Schema.Array(Service),
  accessLog: Schema.optional(Schema.Struct({
    path: Schema.String,
    format: Schema.optional(Schema.Literals(["common", "combined"])),
    flushInterval: Schema.optional(Duration),
    ...logLimits
  })),
  errorLog: Schema.optional(Schema.Struct({
    path: Schema.String,
    format: Schema.optional(Schema.Literals(["text", "json"])),
    ...logLimits,
    syslog: Schema.optional(Schema.Struct({ host: Schema.String, port: Schema.optional(PositiveInt) }))
  })),
  drainTimeout: Schema.optional(Duration),
  maxConnections: Schema.optional(PositiveInt),
  /** Worker processes serving the table (prefork); "auto" is one per CPU. Default 1: one process, no primary. */
  workers: Schema.optional(Schema.Union([PositiveInt, Schema.Literal("auto")])),
  /** How workers share a TCP port: the primary accepts and hands connections round-robin, or each binds its own SO_REUSEPORT socket. */
  portSharing: Schema.optional(Schema.Literals(["round-robin", "reuse-port"])),
  /** The primary's restart intensity for workers (OTP): more than maxRestarts crashes within period stops fiberd. Default 5 in 10 seconds. */
  workerRestarts: Schema.optional(Schema.Struct({ maxRestarts: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), period: Duration })),
  /**
   * Cluster mode: this node joins a cluster of fiberd nodes whose chat rooms are effect/cluster entities,
   * listening for the other runners on `runnerAddress`, with runners, shard locks and messages in PostgreSQL.
   */
  cluster: Schema.optional(Schema.Struct({
    runnerAddress: Schema.String,
    postgres: Schema.String,
    shardLockExpiration: Schema.optional(Duration)
  })),
  /** The CPU offload pool of each process (worker threads); threads 0 turns it off. Default 1 thread. */
  offload: Schema.optional(Schema.Struct({ threads: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), maxQueued: Schema.optional(PositiveInt) }))
})
export type Table = typeof Table.Type

/** A problem in a configuration file. */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly file: string
  readonly problems: ReadonlyArray<{ readonly path: string; readonly message: string }>
}> {
  override get message() {
    return this.problems.map((p) => `${this.file}: ${p.path}: ${p.message}`).join("\n")
  }
}

/** `$.services[2].listen` from a path array. */
export const jsonPath = (path: ReadonlyArray<PropertyKey>): string =>
  "$" + path.map((k) => (typeof k === "number" ? `[${k}]` : `.${String(k)}`)).join("")

/** Where a service listens. */
export type Address =
  | { readonly _tag: "inet"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }

/** Parses `host:port`, `[v6]:port` or, for unix, a path. */
export const parseListen = (listen: string, transport: "tcp" | "udp" | "unix"): Address | string => {
  if (transport === "unix") return listen.length > 0 ? { _tag: "unix", path: listen } : "a socket path"
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(listen)
  if (m === null) return "\"host:port\" or \"[v6-address]:port\""
  const port = Number(m[3])
  if (port > 65535) return "a port between 0 and 65535"
  return { _tag: "inet", host: m[1] ?? m[2]!, port }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const str = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)

/**
 * Checks what the schema cannot: unique names, protocol/transport pairs, exec's command, listen
 * syntax. It reads the raw JSON defensively, so it runs even when the schema found problems:
 * `fiberd check` reports every problem of a table at once.
 */
const crossCheck = (json: unknown): Array<{ path: string; message: string }> => {
  const problems: Array<{ path: string; message: string }> = []
  const table = isRecord(json) ? json : {}
  const seen = new Set<string>()
  const cluster = table["cluster"]
  if (isRecord(cluster)) {
    const address = str(cluster["runnerAddress"])
    const runner = address === undefined ? undefined : parseListen(address, "tcp")
    if (address !== undefined && (typeof runner === "string" || runner?._tag !== "inet" || runner.port === 0)) {
      problems.push({ path: jsonPath(["cluster", "runnerAddress"]), message: "Expected the host:port other nodes reach this one at (not port 0)" })
    }
    const postgres = str(cluster["postgres"])
    if (postgres !== undefined && !/^postgres(ql)?:\/\//.test(postgres)) {
      problems.push({ path: jsonPath(["cluster", "postgres"]), message: "Expected a PostgreSQL URL such as postgres://user@127.0.0.1:5432/fiberd" })
    }
  }
  const services = Array.isArray(table["services"]) ? table["services"] : []
  services.forEach((raw, i) => {
    if (!isRecord(raw)) return
    const at = (key: string) => jsonPath(["services", i, key])
    const name = str(raw["name"])
    const protocol = str(raw["protocol"])
    if (name !== undefined) {
      if (seen.has(name)) problems.push({ path: at("name"), message: `Expected a unique name, "${name}" is used twice` })
      seen.add(name)
    }
    const transport = str(raw["transport"]) ?? "tcp"
    if (transport !== "tcp" && transport !== "udp" && transport !== "unix") return // the schema reports it
    if (transport === "udp" && protocol !== undefined && protocol !== "echo" && protocol !== "daytime") {
      problems.push({ path: at("transport"), message: `Expected "tcp" or "unix": ${protocol} does not run over UDP` })
    }
    const listen = str(raw["listen"])
    const address = listen === undefined ? undefined : parseListen(listen, transport)
    if (typeof address === "string") problems.push({ path: at("listen"), message: `Expected ${address}` })
    if (raw["tls"] !== undefined && transport === "udp") {
      problems.push({ path: at("tls"), message: "Expected no tls on a UDP service (TLS runs over TCP and Unix sockets)" })
    }
    const chat = raw["chat"]
    if (chat !== undefined && (protocol !== "http" || !services.some((c) => isRecord(c) && c["name"] === chat && c["protocol"] === "chat"))) {
      problems.push({ path: at("chat"), message: `Expected the name of a chat service in this table (an http service's WebSocket chat joins its rooms)` })
    }
    if (protocol === "exec" && raw["command"] === undefined) {
      problems.push({ path: at("command"), message: "Expected an argv array such as [\"wc\", \"-c\"] (exec needs a command)" })
    }
  })
  return problems
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** Validates a parsed JSON value as a table; `file` names it in errors. */
export const decode = (file: string, json: unknown): Effect.Effect<Table, ConfigError> => {
  const result = Schema.decodeUnknownResult(Table, { onExcessProperty: "error", errors: "all" })(json)
  const schemaProblems = Result.isFailure(result)
    ? formatter(result.failure.issue).issues.map((i) => ({
      path: jsonPath((i.path ?? []).map((p) => (typeof p === "object" ? p.key : p))),
      message: i.message === "Missing key" ? "Expected a value: this key is required" : i.message
    }))
    : []
  // every problem at once: the cross-checks too, where the schema did not already speak of that key
  const crossProblems = crossCheck(json).filter((c) => !schemaProblems.some((p) => p.path === c.path))
  const problems = [...schemaProblems, ...crossProblems].sort((a, b) => a.path.localeCompare(b.path, "en", { numeric: true }))
  if (problems.length > 0 || Result.isFailure(result)) return Effect.fail(new ConfigError({ file, problems }))
  return Effect.succeed(result.success)
}

/** Reads (asynchronously: SIGHUP reloads run on the serving loop) and validates a table file. */
export const load = (file: string): Effect.Effect<Table, ConfigError> =>
  Effect.tryPromise({
    try: () => Fs.promises.readFile(file, "utf8"),
    catch: (error) => new ConfigError({ file, problems: [{ path: "$", message: `cannot read the file (${(error as NodeJS.ErrnoException).code})` }] })
  }).pipe(Effect.flatMap((text) => parse(file, text)))

const parse = (file: string, text: string): Effect.Effect<Table, ConfigError> =>
  Effect.suspend(() => {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      return Effect.fail(new ConfigError({ file, problems: [{ path: "$", message: `Expected valid JSON: ${(error as Error).message}` }] }))
    }
    return decode(file, json)
  })

/** The bundled site served by the default web service. */
export const bundledPublic = Path.resolve(import.meta.dirname, "../../public")

/** The built-in table: web, echo (tcp+udp), daytime (tcp+udp), chat; loopback only. */
export const defaults: Table = {
  services: [
    { name: "web", protocol: "http", listen: "127.0.0.1:8080", root: bundledPublic, chat: "chat" },
    { name: "echo", protocol: "echo", listen: "127.0.0.1:7007" },
    { name: "echo-udp", protocol: "echo", transport: "udp", listen: "127.0.0.1:7007" },
    { name: "daytime", protocol: "daytime", listen: "127.0.0.1:7013" },
    { name: "daytime-udp", protocol: "daytime", transport: "udp", listen: "127.0.0.1:7013" },
    { name: "chat", protocol: "chat", listen: "127.0.0.1:7070" }
  ],
  accessLog: { path: "logs/access.log", format: "combined" },
  errorLog: { path: "stderr", format: "text" }
}

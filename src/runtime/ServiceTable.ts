/**
 * The service table: fiberd's configuration, in the spirit of inetd.conf.
 *
 * A JSON file (`fiberd.json`, or `--config PATH`) is validated with Effect
 * Schema; every problem is reported with the file, the JSON path of the bad
 * key and what was expected. No file: the built-in defaults (web, echo,
 * daytime, chat on loopback).
 */
import { Data, type Duration as EffectDuration, Effect, Result, Schema, SchemaIssue } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as AccessLog from "../actors/AccessLog.ts"
import * as ErrorLog from "../actors/ErrorLog.ts"
import * as OffloadOptions from "../actors/OffloadOptions.ts"
import * as Options from "../core/Options.ts"
import * as ClusterOptions from "./ClusterOptions.ts"
import { protocols, Service } from "./kinds/index.ts"
import * as Kind from "./kinds/Kind.ts"
import * as BundledSite from "./BundledSite.ts"



export { protocols, Service } from "./kinds/index.ts"
export { type Address, parseListen } from "./kinds/Kind.ts"

/** The server's own keys (the process, not a service), declared once. */
export const server = Options.declare({
  drainTimeout: Options.option(Options.Duration, "the drain time of every service that does not set its own (default: the listener's, 10 seconds)"),
  maxConnections: Options.option(Options.PositiveInt, "the connection limit of every service that does not set its own (default: the listener's, 10,000)"),
  workers: Options.option(
    Schema.Union([Options.PositiveInt, Schema.Literal("auto")]),
    "worker processes serving the table (prefork); \"auto\" is one per CPU; 1: this process serves alone",
    1
  ),
  portSharing: Options.option(
    Schema.Literals(["round-robin", "reuse-port"]),
    "how workers share a TCP port: the primary accepts and hands connections round-robin, or each worker binds its own SO_REUSEPORT socket",
    "round-robin"
  ),
  workerRestarts: Options.option(
    Schema.Struct({ maxRestarts: Options.NonNegativeInt, period: Options.Duration }),
    "the primary's restart intensity for workers (OTP): more than maxRestarts crashes within period stops fiberd",
    { maxRestarts: 5, period: "10 seconds" }
  )
})

export const Table = Schema.Struct({
  services: Schema.Array(Service),
  accessLog: Schema.optionalKey(AccessLog.options.schema),
  errorLog: Schema.optionalKey(ErrorLog.options.schema),
  ...server.schema.fields,
  cluster: Schema.optionalKey(ClusterOptions.options.schema),
  offload: Schema.optionalKey(OffloadOptions.options.schema)
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
    const runner = address === undefined ? undefined : Kind.parseListen(address, "tcp")
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
    const address = listen === undefined ? undefined : Kind.parseListen(listen, transport)
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

/** The keys every service has, checked on services whose protocol is unknown (no kind's schema applies to them). */
const Common = Schema.Struct(Kind.common)

const commonProblems = (json: unknown): Array<{ path: string; message: string }> => {
  const services = isRecord(json) && Array.isArray(json["services"]) ? json["services"] : []
  return services.flatMap((raw, i) => {
    if (!isRecord(raw) || (protocols as ReadonlyArray<unknown>).includes(raw["protocol"])) return []
    const result = Schema.decodeUnknownResult(Common, { errors: "all" })(raw)
    return Result.isFailure(result)
      ? formatter(result.failure.issue).issues.map((issue) => ({
        path: jsonPath(["services", i, ...(issue.path ?? []).map((p) => (typeof p === "object" ? p.key : p))]),
        message: issue.message === "Missing key" ? "Expected a value: this key is required" : issue.message
      }))
      : []
  })
}

/** Validates a parsed JSON value as a table; `file` names it in errors. */
export const decode = (file: string, json: unknown): Effect.Effect<Table, ConfigError> => {
  const result = Schema.decodeUnknownResult(Table, { onExcessProperty: "error", errors: "all" })(json)
  const schemaProblems = Result.isFailure(result)
    ? formatter(result.failure.issue).issues.map((i) => {
      const path = (i.path ?? []).map((p) => (typeof p === "object" ? p.key : p))
      // a service that matches no kind: say so of its protocol, not of the whole union
      if (path.length === 2 && path[0] === "services" && i.message.startsWith("Expected {")) {
        return { path: jsonPath([...path, "protocol"]), message: `Expected ${protocols.map((p) => `"${p}"`).join(" | ")}` }
      }
      return { path: jsonPath(path), message: i.message === "Missing key" ? "Expected a value: this key is required" : i.message }
    })
    : []
  // every problem at once: the cross-checks too (where both speak of one key, theirs says more)
  const crossProblems = crossCheck(json)
  const problems = [...schemaProblems.filter((p) => !crossProblems.some((c) => c.path === p.path)), ...crossProblems, ...commonProblems(json)].sort((a, b) => a.path.localeCompare(b.path, "en", { numeric: true }))
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


/** The built-in table: web, echo (tcp+udp), daytime (tcp+udp), chat; loopback only. */
export const defaults: Table = {
  services: [
    { name: "web", protocol: "http", listen: "127.0.0.1:8080", root: BundledSite.publicDir, chat: "chat" },
    { name: "echo", protocol: "echo", listen: "127.0.0.1:7007" },
    { name: "echo-udp", protocol: "echo", transport: "udp", listen: "127.0.0.1:7007" },
    { name: "daytime", protocol: "daytime", listen: "127.0.0.1:7013" },
    { name: "daytime-udp", protocol: "daytime", transport: "udp", listen: "127.0.0.1:7013" },
    { name: "chat", protocol: "chat", listen: "127.0.0.1:7070" }
  ],
  accessLog: { path: "logs/access.log", format: "combined" },
  errorLog: { path: "stderr", format: "text" }
}

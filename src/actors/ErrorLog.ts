/**
 * The error log: an Effect `Logger` that routes `Effect.log*` output to a
 * log-writer actor, as plain text or JSON lines with syslog severities, and
 * optionally to a syslog server over UDP (RFC 5424) as a second sink. When
 * its stderr is the systemd journal (`JOURNAL_STREAM` names it), every line
 * carries sd-daemon(3)'s `<N>` priority prefix (and no timestamp: the
 * journal keeps its own), so `journalctl -p warning` works.
 */
import { Cause, Context, Effect, Layer, Logger, References, Schema } from "effect"
import type { LogLevel, Scope } from "effect"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Options from "../core/Options.ts"
import * as LogWriter from "./LogWriter.ts"

/** Syslog severities (RFC 5424 §6.2.1). */
export const severities = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"] as const
export type Severity = typeof severities[number]

/** Effect log level → syslog severity. */
export const severityOf = (level: LogLevel.LogLevel): Severity => {
  switch (level) {
    case "Fatal":
      return "crit"
    case "Error":
      return "err"
    case "Warn":
      return "warning"
    case "Info":
      return "info"
    default:
      return "debug"
  }
}

/** One error-log entry. */
export interface ErrorEntry {
  readonly time: number
  readonly level: LogLevel.LogLevel
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
  /** Pretty-printed cause, empty when none. */
  readonly cause: string
  readonly fiber: number
}

const show = (value: unknown): string =>
  typeof value === "string" ? value : value instanceof Error ? value.message : JSON.stringify(value) ?? String(value)

/** `2026-11-23T01:02:03.456Z err [service=echo connection=3] message` plus indented cause lines. */
export const formatText = (e: ErrorEntry): string => {
  const notes = Object.entries(e.annotations).map(([k, v]) => `${k}=${show(v)}`).join(" ")
  const cause = e.cause === "" ? "" : "\n" + e.cause.split("\n").map((l) => `    ${l}`).join("\n")
  return `${new Date(e.time).toISOString()} ${severityOf(e.level)}${notes === "" ? "" : ` [${notes}]`} ${e.message}${cause}\n`
}

/** The syslog priority number of a severity (0 emerg … 7 debug). */
export const priorityOf = (level: LogLevel.LogLevel): number => severities.indexOf(severityOf(level))

/**
 * For the journal (sd-daemon(3)): every line of the text entry, cause lines too, prefixed with `<N>`,
 * without the timestamp; a JSON entry is one prefixed line.
 */
export const formatJournal = (format: "text" | "json") => (e: ErrorEntry): string => {
  const prefix = `<${priorityOf(e.level)}>`
  if (format === "json") return prefix + formatJson(e)
  const text = formatText(e)
  const withoutTime = text.slice(text.indexOf(" ") + 1)
  return withoutTime.slice(0, -1).split("\n").map((line) => prefix + line).join("\n") + "\n"
}

/**
 * True when this process's stderr is the systemd journal: `JOURNAL_STREAM` (set by systemd for a unit
 * whose output goes to the journal) names stderr's device and inode (systemd.exec(5)).
 */
export const stderrIsJournal = (env: NodeJS.ProcessEnv = process.env): boolean => {
  const named = env["JOURNAL_STREAM"]
  if (named === undefined) return false
  try {
    const stat = Fs.fstatSync(2)
    return named === `${stat.dev}:${stat.ino}`
  } catch {
    return false
  }
}

/** One JSON object per line. */
export const formatJson = (e: ErrorEntry): string =>
  JSON.stringify({
    time: new Date(e.time).toISOString(),
    severity: severityOf(e.level),
    level: e.level,
    message: e.message,
    fiber: e.fiber,
    ...e.annotations,
    ...(e.cause === "" ? {} : { cause: e.cause })
  }) + "\n"

/** Where RFC 5424 messages go: `host`, `port` (default 514), `facility` (default 3, daemon), `appName` (default "fiberd"). */
export const Syslog = Schema.Struct({
  host: Schema.String,
  port: Schema.optionalKey(Options.PositiveInt),
  facility: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 23 }))),
  appName: Schema.optionalKey(Schema.String)
})
export type SyslogOptions = typeof Syslog.Type

/** An RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`. */
export const formatSyslog = (e: ErrorEntry, options: SyslogOptions, hostname = Os.hostname()): string => {
  const pri = (options.facility ?? 3) * 8 + severities.indexOf(severityOf(e.level))
  return `<${pri}>1 ${new Date(e.time).toISOString()} ${hostname || "-"} ${options.appName ?? "fiberd"} ${process.pid} - - ${
    e.message
  }${e.cause === "" ? "" : ` ${e.cause.split("\n")[0]}`}`
}

/** Error-log options. */
/** Error-log options, declared once (the service table's `errorLog` key is the same schema). */
export const options = Options.declare({
  path: Options.option(Schema.String, "a file (appended, created with its directory), `-` for stdout, or `stderr`", "stderr"),
  format: Options.option(Schema.Literals(["text", "json"]), "one line of text, or one JSON object, per entry", "text"),
  syslog: Options.option(Syslog, "also send every entry to a syslog server over UDP (RFC 5424): host, port (514), facility (3), appName (fiberd)"),
  ...LogWriter.limits.schema.fields
})

/** Error-log options (see `options`). */
export type ErrorLogOptions = typeof options.schema.Type

/** The error-log service (the writer behind the Logger). */
export class ErrorLog extends Context.Service<ErrorLog, LogWriter.LogWriter<ErrorEntry>>()("fiberd/ErrorLog") {}

/** Starts the error-log actor in the current scope. */
export const make = (given: ErrorLogOptions = {}): Effect.Effect<LogWriter.LogWriter<ErrorEntry>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const o = options.resolve(given)
    let alsoSend: ((entries: ReadonlyArray<ErrorEntry>) => void) | undefined
    const syslog = o.syslog
    if (syslog !== undefined) {
      let inFlight = 0
      let settled: (() => void) | undefined
      const sent = () => {
        if (--inFlight === 0) settled?.()
      }
      const socket = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const s = Dgram.createSocket(syslog.host.includes(":") ? "udp6" : "udp4")
          s.on("error", () => {})
          s.unref()
          return s
        }),
        // let datagrams already handed over leave before the socket closes (at most a second)
        (s) =>
          Effect.callback<void>((resume) => {
            if (inFlight === 0) return resume(Effect.void)
            settled = () => resume(Effect.void)
          }).pipe(Effect.timeoutOption("1 second"), Effect.andThen(Effect.sync(() => s.close())))
      )
      alsoSend = (entries) => {
        for (const e of entries) {
          inFlight++
          socket.send(formatSyslog(e, syslog), syslog.port ?? 514, syslog.host, sent)
        }
      }
    }
    return yield* LogWriter.make<ErrorEntry>({
      name: "error-log",
      destination: o.path,
      // stderr that is the journal: priorities it understands; anywhere else the plain lines
      format: o.path === "stderr" && stderrIsJournal() ? formatJournal(o.format) : o.format === "json" ? formatJson : formatText,
      ...LogWriter.limitsOf(o),
      ...(alsoSend !== undefined ? { alsoSend } : {})
    })
  })

/** A Logger that tells every log record to `writer`. */
export const logger = (writer: LogWriter.LogWriter<ErrorEntry>): Logger.Logger<unknown, void> =>
  Logger.make((o) => {
    const parts = Array.isArray(o.message) ? o.message : [o.message]
    writer.tellUnsafe({
      time: o.date.getTime(),
      level: o.logLevel,
      message: parts.map(show).join(" "),
      annotations: o.fiber.getRef(References.CurrentLogAnnotations),
      cause: o.cause.reasons.length === 0 ? "" : Cause.pretty(o.cause),
      fiber: o.fiber.id
    })
  })

/**
 * The error log as a Layer: starts the actor, replaces the default logger with
 * one that feeds it, and flushes it when released.
 */
export const layer = (options: ErrorLogOptions = {}): Layer.Layer<ErrorLog> =>
  Layer.unwrap(Effect.gen(function*() {
    const writer = yield* make(options)
    return Layer.merge(Layer.succeed(ErrorLog, writer), Logger.layer([logger(writer)]))
  }))

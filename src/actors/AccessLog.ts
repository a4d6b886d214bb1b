/**
 * The access log: one line per response in Common or Combined Log Format,
 * told by connection fibers (synchronously, no allocation beyond the entry)
 * and written in batches by a LogWriter actor.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { Scope } from "effect"
import * as Options from "../core/Options.ts"
import * as LogWriter from "./LogWriter.ts"

/** What a response leaves in the access log. */
export interface AccessEntry {
  /** Peer address (CLF's "host"). */
  readonly peer: string
  /** RFC 1413 identity; `-` when unknown (always, in practice). */
  readonly identity?: string | undefined
  /** Authenticated user; `-` when none. */
  readonly user?: string | undefined
  /** When the request arrived, ms since the epoch. */
  readonly time: number
  /** `METHOD target HTTP/x.y` as received. */
  readonly requestLine: string
  readonly status: number
  /** Body bytes sent. */
  readonly bytes: number
  readonly referer?: string | undefined
  readonly userAgent?: string | undefined
  /** Time to answer, in ms; measured only when the server records metrics (no clock read per request otherwise). */
  readonly durationMs?: number | undefined
}

/** `common` (CLF) or `combined` (CLF plus referer and user agent). */
export type Format = "common" | "combined"

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const pad = (n: number) => (n < 10 ? `0${n}` : `${n}`)

/** `10/Oct/2000:13:55:36 +0000` (always UTC). */
export const formatTime = (millis: number): string => {
  const d = new Date(millis)
  return `${pad(d.getUTCDate())}/${months[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${
    pad(d.getUTCMinutes())
  }:${pad(d.getUTCSeconds())} +0000`
}

const hex = (byte: number) => `\\x${byte.toString(16).padStart(2, "0")}`

/**
 * Escapes a field the way Apache and nginx do: `"` and `\` escaped, control
 * and non-ASCII bytes as \xNN (a character above U+00FF as the \xNN of its
 * UTF-8 bytes), so every line is printable ASCII whatever a client sends.
 */
export const escape = (value: string): string => {
  let plain = true
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x7f) {
      plain = false
      break
    }
  }
  if (plain) return value
  let out = ""
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 0x22) out += "\\\""
    else if (c === 0x5c) out += "\\\\"
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0xff)) out += hex(c)
    else if (c > 0xff) {
      const cp = value.codePointAt(i)!
      for (const byte of Buffer.from(String.fromCodePoint(cp), "utf8")) out += hex(byte)
      if (cp > 0xffff) i++
    } else out += value[i]
  }
  return out
}

const field = (value: string | undefined) => (value === undefined || value === "" ? "-" : value)

/** One line (with newline) in the given format. */
export const formatEntry = (format: Format) => {
  let cachedSecond = -1
  let cachedTime = ""
  return (e: AccessEntry): string => {
    const second = Math.floor(e.time / 1000)
    if (second !== cachedSecond) {
      cachedSecond = second
      cachedTime = formatTime(e.time)
    }
    const common = `${e.peer} ${escape(field(e.identity))} ${escape(field(e.user))} [${cachedTime}] "${escape(e.requestLine)}" ${e.status} ${
      e.bytes === 0 ? "-" : e.bytes
    }`
    return format === "common"
      ? `${common}\n`
      : `${common} "${escape(field(e.referer))}" "${escape(field(e.userAgent))}"\n`
  }
}

/** Access-log options, declared once (the service table's `accessLog` key is the same schema). */
export const options = Options.declare({
  path: Options.option(Schema.String, "a file (appended, created with its directory) or `-` for stdout", "logs/access.log"),
  format: Options.option(Schema.Literals(["common", "combined"]), "Common or Combined Log Format", "combined"),
  flushInterval: Options.option(
    Options.Duration,
    "how long a small batch waits for more before it is written (nginx's flush=): one append per interval under load",
    "100 millis"
  ),
  batchSize: Options.option(Options.PositiveInt, "most entries per append", 8192),
  ...LogWriter.limits.schema.fields
})

/** Access-log options (see `options`). */
export type AccessLogOptions = typeof options.schema.Type

/** The access-log service. */
export class AccessLog extends Context.Service<AccessLog, LogWriter.LogWriter<AccessEntry>>()("fiberd/AccessLog") {}

/** Starts an access-log actor in the current scope. */
export const make = (given: AccessLogOptions = {}): Effect.Effect<LogWriter.LogWriter<AccessEntry>, never, Scope.Scope> => {
  const o = options.resolve(given)
  return LogWriter.make<AccessEntry>({
    name: "access-log",
    destination: o.path,
    format: formatEntry(o.format),
    ascii: true,
    ...LogWriter.limitsOf(o),
    batchSize: o.batchSize,
    flushInterval: Options.toDuration(o.flushInterval)
  })
}

/** The access log as a Layer: flushed and closed when the layer is released. */
export const layer = (options: AccessLogOptions = {}): Layer.Layer<AccessLog> => Layer.effect(AccessLog, make(options))

/** An in-memory access log: what was told, as entries and as formatted lines. */
export interface TestAccessLog extends LogWriter.LogWriter<AccessEntry> {
  /** Every entry told, in order. */
  readonly entries: ReadonlyArray<AccessEntry>
  /** The same entries formatted as they would be written. */
  readonly lines: ReadonlyArray<string>
}

/** An in-memory access log for tests: keeps every entry told; writes nothing anywhere. */
export const makeTest = (format: Format = "combined"): TestAccessLog => {
  const entries: Array<AccessEntry> = []
  const lines: Array<string> = []
  const line = formatEntry(format)
  const stats = { written: 0, dropped: 0, writeErrors: 0, batches: 0 }
  const tellUnsafe = (entry: AccessEntry) => {
    entries.push(entry)
    lines.push(line(entry))
    stats.written++
  }
  return {
    tellUnsafe,
    tell: (entry: AccessEntry) => Effect.sync(() => tellUnsafe(entry)),
    reopen: Effect.void,
    flush: Effect.void,
    stats,
    depth: () => 0,
    entries,
    lines
  }
}

/** The in-memory access log of `layerTest`, to read what was logged. */
export class AccessLogTest extends Context.Service<AccessLogTest, TestAccessLog>()("fiberd/AccessLogTest") {}

/**
 * An in-memory access log for tests, provided both as the `AccessLog` and as
 * `AccessLogTest` (read its `entries` and `lines`).
 */
export const layerTest = (format: Format = "combined"): Layer.Layer<AccessLog | AccessLogTest> =>
  Layer.effectContext(Effect.sync(() => {
    const log = makeTest(format)
    return Context.make(AccessLog, log).pipe(Context.add(AccessLogTest, log))
  }))

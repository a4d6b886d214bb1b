/**
 * Captures Effect log output in memory, for tests that check what was logged.
 */
import { Logger, References } from "effect"
import type { LogLevel } from "effect"

export interface CapturedLog {
  readonly level: LogLevel.LogLevel
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
  readonly cause: string
}

/** A logger layer that appends every entry to `into` (and prints nothing). */
export const captureLogs = (into: Array<CapturedLog>) =>
  Logger.layer([
    Logger.make((o) => {
      const message = Array.isArray(o.message) ? o.message.map(String).join(" ") : String(o.message)
      into.push({
        level: o.logLevel,
        message,
        annotations: { ...o.fiber.getRef(References.CurrentLogAnnotations) },
        cause: String(o.cause)
      })
    })
  ])

/**
 * HTTP metrics of one server, cheap on the hot path: each answer adds to
 * plain numbers (a typed array indexed by method and status class, a bucket
 * of the duration histogram, the bytes); the Effect metrics read them only
 * when a snapshot is taken (`Metric.registerUnsafe` hooks), e.g. by
 * `GET /metrics`. Series carry the server's `service` attribute.
 *
 * - `fiberd_http_requests_total{service, method, status_class}`
 * - `fiberd_http_request_duration_ms{service}` (histogram)
 * - `fiberd_http_response_body_bytes_total{service}`
 */
import type { Effect, Scope } from "effect"
import * as Published from "../../core/Published.ts"

const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"] as const
const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const
/** Duration bucket upper bounds, in milliseconds. */
export const BOUNDS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

const methodIndex = (method: string): number => {
  switch (method) {
    case "GET":
      return 0
    case "HEAD":
      return 1
    case "POST":
      return 2
    case "PUT":
      return 3
    case "DELETE":
      return 4
    case "PATCH":
      return 5
    case "OPTIONS":
      return 6
    default:
      return 7
  }
}

/** The counters of one HTTP server. */
export class HttpCounters {
  /** Requests by method (row) and status class (column). */
  readonly requests = new Float64Array(METHODS.length * CLASSES.length)
  /** Requests per duration bucket (not cumulative); the last one is "above every bound". */
  readonly buckets = new Float64Array(BOUNDS.length + 1)
  count = 0
  sum = 0
  min = Number.POSITIVE_INFINITY
  max = Number.NEGATIVE_INFINITY
  bodyBytes = 0

  /** Records one answer (a few array stores). */
  record(method: string, status: number, bytes: number, durationMs: number): void {
    const cls = Math.min(4, Math.max(0, Math.floor(status / 100) - 1))
    this.requests[methodIndex(method) * CLASSES.length + cls]!++
    let b = 0
    while (b < BOUNDS.length && durationMs > BOUNDS[b]!) b++
    this.buckets[b]!++
    this.count++
    this.sum += durationMs
    if (durationMs < this.min) this.min = durationMs
    if (durationMs > this.max) this.max = durationMs
    if (bytes > 0) this.bodyBytes += bytes
  }
}

/** Answers so far with a 4xx and with a 5xx status (every method). */
export const errors = (counters: HttpCounters): { readonly clientErrors: number; readonly serverErrors: number } => {
  let clientErrors = 0
  let serverErrors = 0
  for (let m = 0; m < METHODS.length; m++) {
    clientErrors += counters.requests[m * CLASSES.length + 3]!
    serverErrors += counters.requests[m * CLASSES.length + 4]!
  }
  return { clientErrors, serverErrors }
}

/**
 * The `q` quantile (0 to 1) of the durations recorded between two readings
 * of `buckets` (`before` then `now`), in ms: the upper bound of the bucket it
 * falls in (the last, open bucket: the largest bound). undefined when none.
 */
export const quantile = (before: ArrayLike<number>, now: ArrayLike<number>, q: number): number | undefined => {
  let total = 0
  for (let i = 0; i < now.length; i++) total += now[i]! - (before[i] ?? 0)
  if (total <= 0) return undefined
  const rank = q * total
  let seen = 0
  for (let i = 0; i < now.length; i++) {
    seen += now[i]! - (before[i] ?? 0)
    if (seen >= rank) return BOUNDS[Math.min(i, BOUNDS.length - 1)]!
  }
  return BOUNDS[BOUNDS.length - 1]!
}

/** Publishes `counters` as Effect metrics under `service` until the scope closes. */
export const register = (service: string, counters: HttpCounters): Effect.Effect<void, never, Scope.Scope> =>
  Published.publish([
    ...METHODS.flatMap((method, m) =>
      CLASSES.map((statusClass, c) =>
        Published.counter(
          "fiberd_http_requests_total",
          "HTTP requests answered",
          { service, method, status_class: statusClass },
          () => counters.requests[m * CLASSES.length + c]!
        )
      )
    ),
    Published.histogram(
      "fiberd_http_request_duration_ms",
      "time from a request's head to its answer being written, in ms",
      { service },
      BOUNDS,
      () => {
        let cumulative = 0
        const buckets: Array<[number, number]> = BOUNDS.map((bound, i) => [bound, (cumulative += counters.buckets[i]!)])
        const empty = counters.count === 0
        return { buckets, count: counters.count, min: empty ? 0 : counters.min, max: empty ? 0 : counters.max, sum: counters.sum }
      }
    ),
    Published.counter("fiberd_http_response_body_bytes_total", "response body bytes sent", { service }, () => counters.bodyBytes)
  ])

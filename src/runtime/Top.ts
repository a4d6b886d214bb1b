/**
 * `fiberd top`: the live status feed (`/_status/stream`) in a terminal, for
 * servers without a browser — the same numbers as the live page, one screen
 * a second: per service requests/s, connections, p50/p99 latency, bytes in
 * and out per second, 4xx/5xx, restarts; the supervisor's children; the
 * event-loop delay and heap. It redraws in place on a terminal and prints
 * one block per frame otherwise. It ends (exit 1, one line) when the server
 * closes the stream or cannot be reached.
 */
import { Console, Data, Effect } from "effect"
import type { Frame } from "./StatusFeed.ts"

/** The feed could not be read: the server is down, refused, or closed it. */
export class TopError extends Data.TaggedError("TopError")<{ readonly url: string; readonly reason: string }> {
  override get message() {
    return `fiberd top: ${this.reason} (${this.url})`
  }
}

const pad = (text: string, width: number, right = false) => (right ? text.padStart(width) : text.padEnd(width)).slice(0, Math.max(width, text.length))
const num = (n: number | null, digits = 0) => (n === null ? "–" : n.toFixed(digits))
const bytes = (n: number) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)}M` : n >= 1024 ? `${(n / 1024).toFixed(1)}K` : `${Math.round(n)}`)

/** One screen for a frame. */
export const render = (frame: Frame, url: string): string => {
  const head = ["service", "req/s", "conns", "p50 ms", "p99 ms", "in/s", "out/s", "4xx", "5xx", "restarts"]
  const widths = [16, 9, 7, 8, 8, 8, 8, 7, 7, 8]
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => pad(c, widths[i]!, i > 0)).join(" ")
  const rows = frame.services.map((s) =>
    line([s.name, num(s.requestsPerSecond, 1), String(s.activeConnections), num(s.p50Ms, 1), num(s.p99Ms, 1), bytes(s.bytesInPerSecond), bytes(s.bytesOutPerSecond), String(s.clientErrors), String(s.serverErrors), String(s.restarts)])
  )
  const tree = frame.supervisor.map((c) =>
    `${c.id} ${c.status}${c.restarts > 0 ? ` (${c.restarts} restarts)` : ""}${c.children !== undefined ? ` [${c.children.length} below${c.children.some((k) => k.restarts > 0) ? `, ${c.children.reduce((n, k) => n + k.restarts, 0)} restarts` : ""}]` : ""}`
  ).join(" · ")
  return [
    `fiberd top — ${url} — up ${frame.uptimeSeconds} s — event loop p50 ${num(frame.loop.delayP50Ms, 2)} ms, p99 ${num(frame.loop.delayP99Ms, 2)} ms — heap ${bytes(frame.memory.heapUsedBytes)}, resident ${bytes(frame.memory.rssBytes)}`,
    "",
    line(head),
    ...rows,
    "",
    `supervisor: ${tree}`,
    ...frame.services.filter((s) => s.oldest.length > 0).map((s) => `oldest on ${s.name}: ${s.oldest.map((o) => `${o.peer} ${o.seconds} s`).join(", ")}`),
    `logs queued: access ${frame.logsQueued.access}, error ${frame.logsQueued.error}`,
    ""
  ].join("\n")
}

/** Follows the feed at `url`, drawing each frame, until the stream ends. */
export const run = (url: string): Effect.Effect<void, TopError> =>
  Effect.gen(function*() {
    const tty = process.stdout.isTTY === true
    const response = yield* Effect.tryPromise({
      try: (signal) => fetch(url, { signal, headers: { accept: "text/event-stream" } }),
      catch: (e) => new TopError({ url, reason: `cannot reach the server: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : String(e)}` })
    })
    if (!response.ok || response.body === null) return yield* new TopError({ url, reason: `the server answered ${response.status}` })
    const reader = response.body.getReader()
    yield* Effect.addFinalizer(() => Effect.promise(() => reader.cancel().catch(() => undefined)))
    const decoder = new TextDecoder()
    let pending = ""
    while (true) {
      const chunk = yield* Effect.tryPromise({ try: () => reader.read(), catch: () => new TopError({ url, reason: "the stream broke" }) })
      if (chunk.done) return yield* new TopError({ url, reason: "the server closed the stream" })
      pending += decoder.decode(chunk.value, { stream: true })
      const events = pending.split("\n\n")
      pending = events.pop()!
      for (const event of events) {
        const data = event.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n")
        if (data === "") continue
        let frame: Frame
        try {
          frame = JSON.parse(data) as Frame
        } catch {
          return yield* new TopError({ url, reason: "this is not a fiberd status stream" })
        }
        const screen = render(frame, url)
        yield* Console.log(tty ? `\x1b[H\x1b[2J${screen}` : screen)
      }
    }
  }).pipe(Effect.scoped)

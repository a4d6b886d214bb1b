/**
 * The whole-server status of a prefork fiberd: the primary's and every
 * worker's snapshot combined. `/_status` shows each process (pid, uptime,
 * restarts, its services) and the sum per service; `/metrics` merges every
 * process's Prometheus text, each sample labelled `worker="N"` (or
 * `worker="primary"`), one HELP/TYPE per family: sum them in PromQL with
 * `sum without (worker)`.
 */
import type { ProcessView, ServerView } from "./WorkerProtocol.ts"

type Row = Record<string, unknown>

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)

/** Adds the numeric fields of `row` into `into` (other fields: the first value seen is kept). */
const addInto = (into: Row, row: Row) => {
  for (const [key, value] of Object.entries(row)) {
    if (isNumber(value)) into[key] = (isNumber(into[key]) ? into[key] : 0) + value
    else if (!(key in into)) into[key] = value
  }
}

/** Sums rows with the same `name`, in first-seen order. */
const sumByName = (rows: ReadonlyArray<Row>): Array<Row> => {
  const byName = new Map<unknown, Row>()
  for (const row of rows) {
    let sum = byName.get(row["name"])
    if (sum === undefined) byName.set(row["name"], sum = {})
    addInto(sum, row)
  }
  return [...byName.values()]
}

/** Sums objects of numbers (logs, offload) key by key, recursively. */
const sumDeep = (objects: ReadonlyArray<unknown>): unknown => {
  const present = objects.filter((o) => o !== undefined && o !== null)
  if (present.length === 0) return undefined
  if (present.every(isNumber)) return present.reduce((a, b) => a + b, 0)
  if (present.every((o) => typeof o === "object")) {
    const keys = [...new Set(present.flatMap((o) => Object.keys(o as Row)))]
    return Object.fromEntries(keys.map((k) => [k, sumDeep(present.map((o) => (o as Row)[k]))]))
  }
  return present[0]
}

const statusOf = (p: ProcessView) => p.snapshot?.status as { services?: Array<Row>; logs?: unknown; offload?: unknown; cluster?: unknown; memory?: unknown } | undefined

/** The whole-server status document. */
export const document = (view: ServerView) => {
  const answered = view.processes.filter((p) => p.snapshot !== undefined)
  const primary = view.processes.find((p) => p.name === "primary")
  return {
    mode: "prefork",
    portSharing: view.portSharing,
    uptimeSeconds: primary?.uptimeSeconds ?? 0,
    workers: view.processes.filter((p) => p.name !== "primary").length,
    processes: view.processes.map((p) => ({
      name: p.name,
      pid: p.pid,
      uptimeSeconds: p.uptimeSeconds,
      restarts: p.restarts,
      answered: p.snapshot !== undefined,
      ...(statusOf(p)?.memory !== undefined ? { memory: statusOf(p)!.memory } : {}),
      services: statusOf(p)?.services ?? []
    })),
    services: sumByName(answered.flatMap((p) => statusOf(p)?.services ?? [])),
    logs: sumDeep(answered.map((p) => statusOf(p)?.logs)),
    ...(answered.some((p) => statusOf(p)?.offload !== undefined) ? { offload: sumDeep(answered.map((p) => statusOf(p)?.offload)) } : {}),
    // in cluster mode the primary is the node's runner (it runs the chat)
    ...(primary !== undefined && statusOf(primary)?.cluster !== undefined ? { cluster: statusOf(primary)!.cluster } : {})
  }
}

/** Adds `worker="<name>"` as the first label of a sample line. */
const labelSample = (line: string, worker: string): string => {
  const label = `worker="${worker}"`
  const brace = line.indexOf("{")
  const space = line.indexOf(" ")
  if (brace !== -1 && (space === -1 || brace < space)) {
    return line[brace + 1] === "}" ? `${line.slice(0, brace + 1)}${label}${line.slice(brace + 1)}` : `${line.slice(0, brace + 1)}${label},${line.slice(brace + 1)}`
  }
  return space === -1 ? line : `${line.slice(0, space)}{${label}}${line.slice(space)}`
}

/**
 * Merges the Prometheus texts of every process: families in first-seen order,
 * each with its HELP and TYPE once and the samples of every process after it
 * (the text format wants a family's samples together).
 */
export const mergeMetrics = (view: ServerView): string => {
  const families = new Map<string, { header: Array<string>; samples: Array<string> }>()
  const family = (name: string) => {
    let f = families.get(name)
    if (f === undefined) families.set(name, f = { header: [], samples: [] })
    return f
  }
  for (const p of view.processes) {
    if (p.snapshot === undefined) continue
    let current = ""
    for (const line of p.snapshot.metrics.split("\n")) {
      if (line.length === 0) continue
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line)
      if (meta !== null) {
        current = meta[2]!
        const f = family(current)
        if (!f.header.some((h) => h.startsWith(`# ${meta[1]} `))) f.header.push(line)
      } else if (!line.startsWith("#")) {
        family(current === "" ? line.split(/[{ ]/)[0]! : current).samples.push(labelSample(line, p.name))
      }
    }
  }
  const own = [
    "# HELP fiberd_worker_processes worker processes running",
    "# TYPE fiberd_worker_processes gauge",
    `fiberd_worker_processes ${view.processes.filter((p) => p.name !== "primary").length}`,
    "# HELP fiberd_worker_restarts_total restarts of each worker slot after a crash",
    "# TYPE fiberd_worker_restarts_total counter",
    ...view.processes.filter((p) => p.name !== "primary").map((p) => `fiberd_worker_restarts_total{worker="${p.name}"} ${p.restarts}`)
  ]
  return [...[...families.values()].flatMap((f) => [...f.header, ...f.samples]), ...own].join("\n") + "\n"
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;" })[c]!)

/** The status document as HTML tables (the processes, and the services summed): the status page without JavaScript. */
export const tables = (doc: ReturnType<typeof document>): string => {
  const cells = (row: Row, keys: ReadonlyArray<string>) => keys.map((k) => `<td>${escapeHtml(String(row[k] ?? "–"))}</td>`).join("")
  const serviceKeys = ["name", "protocol", "transport", "address", "activeConnections", "totalConnections", "requests", "bytesIn", "bytesOut", "handlerFailures"]
  const processKeys = ["name", "pid", "uptimeSeconds", "restarts", "answered"]
  return `<p>Up ${doc.uptimeSeconds} s, ${doc.workers} worker processes (${escapeHtml(doc.portSharing)}).</p>
<h2>Processes</h2><table><tr>${processKeys.map((k) => `<th>${k}</th>`).join("")}</tr>
${doc.processes.map((p) => `<tr>${cells(p as unknown as Row, processKeys)}</tr>`).join("\n")}</table>
<h2>Services (sum of all processes)</h2><table><tr>${serviceKeys.map((k) => `<th>${k}</th>`).join("")}</tr>
${doc.services.map((s) => `<tr>${cells(s, serviceKeys)}</tr>`).join("\n")}</table>`
}

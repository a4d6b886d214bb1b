/**
 * What a new service table changes, as a pure plan (nginx's reload, in
 * data): which services stop, which start, which are handed over (the new
 * generation takes the listening socket of the old one, which then drains),
 * which are kept (their certificates read again), whether the access log is
 * switched, and which table keys change nothing until a restart. The
 * runtime executes the plan; the single process and the prefork primary
 * share it, and it is property-tested on its own.
 */
import type { Service, Table } from "./ServiceTable.ts"

/** A service to launch: fresh, or taking over the listening socket of its previous generation. */
export interface Launch {
  readonly service: Service
  readonly handOver: boolean
}

/** What applying `next` over `previous` does, in the order it is done. */
export interface Plan {
  /** Stopped (drained) first: removed services, and changed ones that cannot be handed over (their old configuration). */
  readonly stop: ReadonlyArray<Service>
  /** Then launched, in the new table's order: new services, and changed ones (handed over when they keep their address). */
  readonly launch: ReadonlyArray<Launch>
  /** Unchanged services: they keep their connections. */
  readonly keep: ReadonlyArray<string>
  /** Kept services with TLS: their certificate files are read again in place (renewed certificates). */
  readonly reloadTls: ReadonlyArray<string>
  /** The access log's settings changed: a new log is opened, the old one flushed and closed. */
  readonly switchAccessLog: boolean
}

/**
 * A service and where it listens, as a key: a changed service with the same key is handed over its
 * listening socket (with port 0, the port it got is kept). Names are unique, so two services never share one.
 */
export const addressKey = (service: { readonly name: string; readonly transport?: string; readonly listen: string }): string => `${service.name} ${service.transport ?? "tcp"} ${service.listen}`

/** A service with the table-wide keys that shape it, so a change of those changes it too. */
const effective = (service: Service, table: Table): string =>
  JSON.stringify({ service, maxConnections: service.maxConnections ?? table.maxConnections, drainTimeout: table.drainTimeout })

/** A changed service keeps its listening socket when its address and protocol stay (UDP rebinds). */
const canHandOver = (old: Service, now: Service): boolean =>
  addressKey(old) === addressKey(now) && (now.transport ?? "tcp") !== "udp" && old.protocol === now.protocol

/** The plan that takes a runtime from `previous` to `next`. */
export const plan = (previous: Table, next: Table): Plan => {
  const before = new Map(previous.services.map((s) => [s.name, s]))
  const after = new Map(next.services.map((s) => [s.name, s]))
  const stop: Array<Service> = []
  for (const [name, old] of before) {
    const now = after.get(name)
    if (now === undefined || (effective(now, next) !== effective(old, previous) && !canHandOver(old, now))) stop.push(old)
  }
  const launch: Array<Launch> = []
  const keep: Array<string> = []
  const reloadTls: Array<string> = []
  for (const service of next.services) {
    const old = before.get(service.name)
    if (old !== undefined && effective(old, previous) === effective(service, next)) {
      keep.push(service.name)
      if (service.tls !== undefined) reloadTls.push(service.name)
    } else launch.push({ service, handOver: old !== undefined && canHandOver(old, service) })
  }
  return { stop, launch, keep, reloadTls, switchAccessLog: JSON.stringify(previous.accessLog ?? null) !== JSON.stringify(next.accessLog ?? null) }
}

/**
 * Table keys a reload does not apply (they shape the process itself), which differ between the
 * table the process started with and `next`. In prefork mode the offload pools are the workers',
 * and a roll applies them.
 */
export const restartOnly = (startedWith: Table, next: Table, mode: "single" | "prefork"): ReadonlyArray<string> => {
  const keys: ReadonlyArray<keyof Table> = ["errorLog", "cluster", "workers", "portSharing", "workerRestarts", ...(mode === "single" ? ["offload" as const] : [])]
  return keys.filter((k) => JSON.stringify(startedWith[k] ?? null) !== JSON.stringify(next[k] ?? null))
}

/**
 * The messages between the prefork primary and its worker processes, over
 * node:cluster's IPC channel (structured clone, `serialization: "advanced"`).
 * Every message has a `fiberd:` type, so nothing else on the channel (Node's
 * own cluster messages) is mistaken for one.
 */
import { Deferred, type Duration, Effect, Exit, type Option } from "effect"
import type * as ServiceTable from "./ServiceTable.ts"

/** How workers share a TCP port. */
export type PortSharing = "round-robin" | "reuse-port"

/** A service as a process prints it: `name protocol/transport address`. */
export interface ServiceLine {
  readonly name: string
  readonly protocol: string
  readonly transport: string
  readonly address: string
}

/** A running service's line (what the program prints for it): over TLS, `https` for http and `tls` (or `unix+tls`) for the transport. */
export const serviceLine = (s: ServiceLine & { readonly tls?: boolean }): ServiceLine => ({
  name: s.name,
  protocol: s.tls === true && s.protocol === "http" ? "https" : s.protocol,
  transport: s.tls !== true ? s.transport : s.transport === "unix" ? "unix+tls" : "tls",
  address: s.address
})

/** One process's view of itself: its status document (see `Status.snapshot`) and its metrics (Prometheus text). */
export interface ProcessSnapshot {
  readonly status: Record<string, unknown>
  readonly metrics: string
}

/** One process of the server, as the whole-server status shows it. */
export interface ProcessView {
  /** "primary", or the worker's slot number (1..N) as text. */
  readonly name: string
  readonly pid: number
  readonly uptimeSeconds: number
  /** Times this worker slot was restarted after a crash (the primary: 0). */
  readonly restarts: number
  /** Undefined when the process did not answer in time. */
  readonly snapshot: ProcessSnapshot | undefined
}

/** The whole server: the primary and every live worker. */
export interface ServerView {
  readonly portSharing: PortSharing
  readonly processes: ReadonlyArray<ProcessView>
}

/** Primary → worker. */
export type ToWorker =
  | { readonly type: "fiberd:start"; readonly slot: number; readonly table: ServiceTable.Table; readonly portSharing: PortSharing; readonly chats: Record<string, string>; readonly inherited?: ReadonlyArray<readonly [string, number]> }
  | { readonly type: "fiberd:snapshot?"; readonly id: number }
  | { readonly type: "fiberd:view"; readonly id: number; readonly view: ServerView }

/** Worker → primary. */
export type ToPrimary =
  /** The worker listens for messages: the primary sends the start message (a message sent earlier could be lost). */
  | { readonly type: "fiberd:hello" }
  | { readonly type: "fiberd:ready"; readonly services: ReadonlyArray<ServiceLine> }
  | { readonly type: "fiberd:failed"; readonly message: string }
  | { readonly type: "fiberd:snapshot"; readonly id: number; readonly snapshot: ProcessSnapshot }
  | { readonly type: "fiberd:view?"; readonly id: number }

/** True for a fiberd message (of either direction). */
export const isMessage = (m: unknown): m is { readonly type: `fiberd:${string}` } =>
  typeof m === "object" && m !== null && typeof (m as { type?: unknown }).type === "string" && (m as { type: string }).type.startsWith("fiberd:")

/**
 * Questions over the IPC channel, matched to their answers by id: `ask`
 * sends with a fresh id and waits for `answer` with that id (None after
 * `timeout`: the other side is busy or gone).
 */
export const makeAsks = <A>() => {
  const pending = new Map<number, Deferred.Deferred<A>>()
  let nextId = 0
  return {
    ask: (send: (id: number) => void, timeout: Duration.Input): Effect.Effect<Option.Option<A>> =>
      Effect.gen(function*() {
        const id = ++nextId
        const answer = yield* Deferred.make<A>()
        pending.set(id, answer)
        send(id)
        return yield* Deferred.await(answer).pipe(Effect.timeoutOption(timeout), Effect.ensuring(Effect.sync(() => pending.delete(id))))
      }),
    answer: (id: number, value: A): void => {
      const waiting = pending.get(id)
      if (waiting !== undefined) Deferred.doneUnsafe(waiting, Exit.succeed(value))
    }
  }
}

/**
 * Admission, the listener's gatekeeper (Ranch's `max_connections`), as a
 * state machine with no sockets in it: a connection that arrives takes a
 * slot, waits for one (up to `maxPending`), or is refused. A slot is held
 * from admission to close — a TLS connection holds one from its first byte,
 * through the handshake — so the listener stops serving new peers when full
 * whatever they are doing. While accepts back off (EMFILE) nobody is
 * admitted. A peer address may hold at most `maxHandshakesPerAddress`
 * handshakes at once, so one address cannot take the table with connections
 * that never finish their handshake.
 */

/** What happens to a connection that arrived. */
export type Arrival = "start" | "wait" | "refuse-closing" | "refuse-full" | "refuse-address"

/** Admission limits. */
export interface AdmissionLimits {
  /** Slots: connections served (or handshaking) at once. */
  readonly maxConnections: number
  /** Connections that may wait for a slot; more are refused. */
  readonly maxPending: number
  /** Handshakes one peer address may have in progress at once. */
  readonly maxHandshakesPerAddress: number
}

/** The default per-address handshake cap: a quarter of the slots, at most 128, at least 1. */
export const defaultHandshakesPerAddress = (maxConnections: number): number =>
  Math.max(1, Math.min(128, Math.floor(maxConnections / 4)))

/** The admission state of one listener; `T` is whatever stands for a waiting connection (a socket). */
export class Admission<T> {
  private readonly limits: AdmissionLimits
  private inUse = 0
  private queue: Array<T> = []
  private head = 0
  private backingOff = false
  private closing = false
  private readonly handshakes = new Map<string, number>()
  private handshaking = 0

  constructor(limits: AdmissionLimits) {
    this.limits = limits
  }

  /** Slots held (connections and handshakes). */
  get used(): number {
    return this.inUse
  }

  /** Connections waiting for a slot. */
  get waiting(): number {
    return this.queue.length - this.head
  }

  /** Accepting is paused (an accept error). */
  get isBackingOff(): boolean {
    return this.backingOff
  }

  /** Shut down: nobody is admitted any more. */
  get isClosed(): boolean {
    return this.closing
  }

  /** Handshakes in progress. */
  get handshakesPending(): number {
    return this.handshaking
  }

  private canStart(): boolean {
    return !this.backingOff && !this.closing && this.inUse < this.limits.maxConnections
  }

  /** A connection arrived: "start" takes a slot for it, "wait" queues it, a refusal says why. */
  arrive(item: T): Arrival {
    if (this.closing) return "refuse-closing"
    if (this.canStart() && this.waiting === 0) {
      this.inUse++
      return "start"
    }
    if (this.waiting >= this.limits.maxPending) return "refuse-full"
    this.queue.push(item)
    return "wait"
  }

  /** A slot was freed (a connection closed): the waiting connections that may start now, each with its slot taken. */
  release(): Array<T> {
    this.inUse--
    return this.admit()
  }

  /** The waiting connections that may start now (after a release or the end of a back-off), slots taken, oldest first. */
  admit(): Array<T> {
    const started: Array<T> = []
    while (this.waiting > 0 && this.canStart()) {
      started.push(this.queue[this.head]!)
      this.queue[this.head++] = undefined as never
      this.inUse++
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
    return started
  }

  /** Accepting pauses (an accept error) or resumes; on resuming, the connections that may start now. */
  setBackingOff(on: boolean): Array<T> {
    this.backingOff = on
    return on ? [] : this.admit()
  }

  /** Shutdown: nobody is admitted any more; the connections that were waiting (to be refused). */
  close(): Array<T> {
    this.closing = true
    const left = this.queue.slice(this.head)
    this.queue = []
    this.head = 0
    return left
  }

  /** A started connection begins a handshake from `address`: false (and no count) when the address has too many already. */
  beginHandshake(address: string): boolean {
    const n = this.handshakes.get(address) ?? 0
    if (n >= this.limits.maxHandshakesPerAddress) return false
    this.handshakes.set(address, n + 1)
    this.handshaking++
    return true
  }

  /** A handshake from `address` ended (done, failed or closed). */
  endHandshake(address: string): void {
    const n = this.handshakes.get(address)
    if (n === undefined) return
    if (n <= 1) this.handshakes.delete(address)
    else this.handshakes.set(address, n - 1)
    this.handshaking--
  }
}

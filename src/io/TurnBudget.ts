/**
 * Bounded work per event-loop turn, shared by a listener's push consumers.
 *
 * libuv accepts one connection per loop iteration (libuv#3696) and, in the
 * same iteration, runs the read callback of every ready socket. With
 * hundreds of busy connections an iteration grows to many milliseconds and a
 * new connection waits seconds in the kernel's accept queue while the others
 * are served (node:http shows it too: p99 in seconds at 1,000 connections).
 * So a listener's connections share a budget of chunks consumed per turn:
 * past it, a chunk waits in its connection's queue and the connection joins a
 * FIFO that a check-phase callback (`setImmediate`) serves, `perTurn` at a
 * time, one connection's chunks at a go; between two such callbacks the loop
 * goes round (polls sockets, accepts, runs timers). While the FIFO holds
 * anyone, new chunks queue behind it, so nobody jumps the line. While
 * connections are arriving (one was accepted since the last turn, so more
 * may wait) the budget shrinks to `ACCEPTING`, so the loop goes round, and
 * accepts, more often until the accept queue is empty.
 */

/** The budget per turn while connections arrive. */
const ACCEPTING = 8

/** A connection whose chunks wait for their turn. */
export interface Deferred {
  /** Its turn: consume what waits. */
  readonly runDeferred: () => void
}

/** One listener's budget (see the module comment). */
export class TurnBudget {
  readonly perTurn: number
  private used = 0
  private limit: number
  private arrivals = 0
  private waiting: Array<Deferred | undefined> = []
  private head = 0
  private scheduled = false

  constructor(perTurn: number) {
    this.perTurn = perTurn
    this.limit = perTurn
  }

  /** A connection was accepted (more may wait in the accept queue). */
  arrived(): void {
    this.arrivals++
    this.schedule()
  }

  /** May a chunk be consumed now? Counts it when it may. */
  take(): boolean {
    if (this.head < this.waiting.length || this.used >= this.limit) return false
    if (this.used++ === 0) this.schedule() // the check phase gives the budget back
    return true
  }

  /** Queues a connection for a later turn. */
  defer(connection: Deferred): void {
    this.waiting.push(connection)
    this.schedule()
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(this.turn)
  }

  private readonly turn = (): void => {
    this.scheduled = false
    this.limit = this.arrivals > 0 ? Math.min(ACCEPTING, this.perTurn) : this.perTurn
    this.arrivals = 0
    const end = Math.min(this.waiting.length, this.head + this.limit)
    while (this.head < end) {
      const next = this.waiting[this.head]!
      this.waiting[this.head++] = undefined
      next.runDeferred()
    }
    if (this.head < this.waiting.length) {
      // more wait: the next callback runs after the loop went round once
      this.used = this.limit
      this.schedule()
      return
    }
    this.waiting = []
    this.head = 0
    this.used = 0
  }
}

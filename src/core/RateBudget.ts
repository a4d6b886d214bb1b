/**
 * A token bucket: `rate` events a second on average, in bursts of at most
 * `burst` (default `rate`). Used for what a client may send without limit
 * otherwise: WebSocket control frames, HTTP/2 pings and settings.
 */

/** `take(now)` spends one token (now in ms); false when none is left. */
export class RateBudget {
  private tokens: number
  private at = 0
  private readonly rate: number
  private readonly burst: number
  constructor(rate: number, burst = rate) {
    this.rate = rate
    this.burst = burst
    this.tokens = burst
  }
  take(now: number): boolean {
    if (this.at === 0) this.at = now
    const refill = ((now - this.at) / 1000) * this.rate
    if (refill > 0) {
      this.tokens = Math.min(this.burst, this.tokens + refill)
      this.at = now
    }
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

/**
 * Waits for a condition on state the test cannot subscribe to (a counter a
 * socket's close event updates on the server side), checking every few
 * milliseconds; fails naming what it waited for if it never holds.
 */
import { Effect } from "effect"

/** Resolves once `condition()` holds; rejects after `ms` with `what`. */
export const untilTrue = (condition: () => boolean, what: string, ms = 10_000): Promise<void> =>
  new Promise((resolve, reject) => {
    const deadline = Date.now() + ms
    const check = () => {
      if (condition()) return resolve()
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for: ${what}`))
      setTimeout(check, 5)
    }
    check()
  })

/** `untilTrue` as an Effect. */
export const until = (condition: () => boolean, what: string, ms?: number): Effect.Effect<void> =>
  Effect.promise(() => untilTrue(condition, what, ms))

/** The error of a service that could not start, shared by the runtime, prefork and cluster wiring. */
import { Data } from "effect"

/**
 * A service could not start: its address cannot be bound, its root is not
 * readable... The message is `<service>: <what> (<path or address>)`.
 */
export class StartError extends Data.TaggedError("StartError")<{ readonly service: string; readonly reason: string }> {
  override get message() {
    return this.reason.startsWith(`${this.service}: `) ? this.reason : `${this.service}: ${this.reason}`
  }
}

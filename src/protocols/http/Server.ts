/**
 * An HTTP server on a listener: the HTTP engine for an app, bound with the
 * listener's limits, and wired so that shutdown closes idle keep-alive
 * connections at once and lets in-flight requests finish within the drain time.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Listener from "../../io/Listener.ts"
import * as Serve from "./Serve.ts"

/** A running HTTP server. */
export interface HttpServer {
  readonly listener: Listener.Listener
  /** Requests answered so far. */
  readonly requests: () => number
}

/**
 * Serves `app` on a new listener until the scope closes.
 *
 * @example
 * const server = yield* Server.listen(app, { listen: { port: 8080 }, http: { accessLog } })
 */
export const listen = <E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen: Listener.ListenOptions; readonly http?: Serve.ServeOptions }
): Effect.Effect<HttpServer, Listener.ListenError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const http = yield* Serve.make(app, options.http)
    const listener = yield* Listener.make({ name: "http", ...options.listen, onDrain: http.drain }, http.handler)
    return { listener, requests: http.requests }
  })

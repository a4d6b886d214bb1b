/**
 * An HTTP server on a listener: the HTTP engine for an app, bound with the
 * listener's limits, and wired so that shutdown closes idle keep-alive
 * connections at once and lets in-flight requests finish within the drain time.
 */
import { Context, Effect, Layer } from "effect"
import type { Config, Scope } from "effect"
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
 * const accessLog = yield* AccessLog.make({ destination: "logs/access.log" })
 * const app = Router.make([Router.get("/", () => Effect.succeed(Response.text("hi\n")))])
 * const server = yield* HttpServer.listen(app, { listen: { port: 8080 }, http: { accessLog } })
 */
export const listen = <E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen: Listener.ListenOptions; readonly http?: Serve.ServeOptions }
): Effect.Effect<HttpServer, Listener.ListenError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const http = yield* Serve.make(app, { metricsName: options.listen.name ?? "http", ...options.http })
    // over TLS, an HTTP server offers http/1.1 by ALPN unless told otherwise
    const tls = options.listen.tls === undefined ? {} : { tls: { alpn: ["http/1.1"], ...options.listen.tls } }
    const listener = yield* Listener.make({ name: "http", ...options.listen, ...tls, onDrain: http.drain }, http.handler)
    return { listener, requests: http.requests }
  })

/** The service an HTTP layer provides: the running server. */
export class Http extends Context.Service<Http, HttpServer>()("fiberd/HttpServer") {}

/**
 * An HTTP server as a Layer. Its type carries the app's requirements: a route
 * that needs your `Database` makes the layer need it too, until provided.
 *
 * @example
 * class Database extends Context.Service<Database, { readonly count: Effect.Effect<number> }>()("app/Database") {}
 * const app = Router.make([Router.get("/count", () => Database.use((db) => db.count).pipe(Effect.map((n) => Response.json({ n }))))])
 * const Web = HttpServer.layer(app, { listen: { name: "web", port: 8080 } }) // Layer<Http, ListenError, Database>
 */
export const layer = <E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen: Listener.ListenOptions; readonly http?: Serve.ServeOptions }
): Layer.Layer<Http, Listener.ListenError, R> => Layer.effect(Http, listen(app, options))

/** `layer` under a tag of your own, for several HTTP servers in one application. */
export const layerAs = <I>(tag: Context.Key<I, HttpServer>) =>
<E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen: Listener.ListenOptions; readonly http?: Serve.ServeOptions }
): Layer.Layer<I, Listener.ListenError, R> => Layer.effect(tag, listen(app, options))

/** `layer` with host and port from Effect's Config (`HOST`, `PORT`, under `prefix`). */
export const layerConfig = <E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen?: Omit<Listener.ListenOptions, "host" | "port">; readonly http?: Serve.ServeOptions; readonly prefix?: string }
): Layer.Layer<Http, Listener.ListenError | Config.ConfigError, R> =>
  Layer.effect(
    Http,
    Effect.flatMap(Listener.config(options.prefix), (address) =>
      listen(app, { listen: { ...options.listen, ...address }, ...(options.http !== undefined ? { http: options.http } : {}) }))
  )

/**
 * An HTTP server on a listener: the HTTP engine for an app, bound with the
 * listener's limits, and wired so that shutdown closes idle keep-alive
 * connections at once and lets in-flight requests finish within the drain time.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { Config, Scope } from "effect"
import * as Options from "../../core/Options.ts"
import * as Listener from "../../io/Listener.ts"
import type { Http2Stats } from "./Http2.ts"
import type { HttpCounters } from "./HttpMetrics.ts"
import * as Serve from "./Serve.ts"

/** A running HTTP server. */
export interface HttpServer {
  readonly listener: Listener.Listener
  /** Requests answered so far. */
  readonly requests: () => number
  /** HTTP/2 counters (undefined when `http2` is off). */
  readonly http2: Http2Stats | undefined
  /** Answers by status class and the duration histogram (see `HttpMetrics`). */
  readonly counters: HttpCounters | undefined
}

/**
 * Serves `app` on a new listener until the scope closes.
 *
 * @example
 * const accessLog = yield* AccessLog.make({ path: "logs/access.log" })
 * const app = Router.make([Router.get("/", () => Effect.succeed(Response.text("hi\n")))])
 * const server = yield* HttpServer.listen(app, { listen: { port: 8080 }, http: { accessLog } })
 */
export const listen = <E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen: Listener.ListenOptions; readonly http?: Serve.ServeOptions }
): Effect.Effect<HttpServer, Listener.ListenError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const http = yield* Serve.make(app, { metricsName: options.listen.name ?? "http", ...options.http })
    // over TLS, an HTTP server offers h2 (unless http2 is off) and http/1.1 by ALPN, unless told otherwise
    const alpn = options.http?.http2 === "off" ? ["http/1.1"] : ["h2", "http/1.1"]
    const tls = options.listen.tls === undefined ? {} : { tls: { alpn, ...options.listen.tls } }
    const listener = yield* Listener.make({ name: "http", ...options.listen, ...tls, onDrain: http.drain }, http.handler)
    return { listener, requests: http.requests, http2: http.http2, counters: http.counters }
  })

/** The service an HTTP layer provides: the running server; `Listener.Running` is its twin for any protocol. */
export class Running extends Context.Service<Running, HttpServer>()("fiberd/HttpServer") {}

/** @deprecated the old name of `Running`. */
export const Http = Running
/** @deprecated the old name of `Running`. */
export type Http = Running

/**
 * An HTTP server as a Layer. Its type carries the app's requirements: a route
 * that needs your `Database` makes the layer need it too, until provided.
 *
 * @example
 * class Database extends Context.Service<Database, { readonly count: Effect.Effect<number> }>()("app/Database") {}
 * const app = Router.make([Router.get("/count", () => Database.use((db) => db.count).pipe(Effect.map((n) => Response.json({ n }))))])
 * const Web = HttpServer.layer(app, { listen: { name: "web", port: 8080 } }) // Layer<HttpServer.Running, ListenError, Database>
 */
export const layer = <E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen: Listener.ListenOptions; readonly http?: Serve.ServeOptions }
): Layer.Layer<Running, Listener.ListenError, R> => Layer.effect(Running, listen(app, options))

/** `layer` under a tag of your own, for several HTTP servers in one application. */
export const layerAs = <I>(tag: Context.Key<I, HttpServer>) =>
<E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen: Listener.ListenOptions; readonly http?: Serve.ServeOptions }
): Layer.Layer<I, Listener.ListenError, R> => Layer.effect(tag, listen(app, options))

/** Every option of an HTTP server (the listener's and the engine's), as Config reads it. */
export const configurable = Schema.Struct({ ...Listener.configurable.fields, ...Serve.options.schema.fields })

/**
 * `layer` with every option read from Effect's Config over the ones given: the listener's and the
 * engine's, under `prefix`, keys in CONSTANT_CASE (`WEB_HOST`, `WEB_PORT`, `WEB_KEEP_ALIVE_TIMEOUT`...).
 */
export const layerConfig = <E, R>(
  app: Serve.App<E, R>,
  options: { readonly listen?: Listener.ListenOptions; readonly http?: Serve.ServeOptions; readonly prefix?: string }
): Layer.Layer<Running, Listener.ListenError | Config.ConfigError, R> =>
  Layer.effect(
    Running,
    Effect.flatMap(Options.fromConfig(configurable, options.prefix), (read) =>
      listen(app, { listen: { ...options.listen, ...read }, http: { ...options.http, ...read } }))
  )

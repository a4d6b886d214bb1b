/** The http kind: the HTTP engine (Serve's options) serving a static site with the status page and the bundled site's routes. */
import { Effect, Schema } from "effect"
import * as HttpServer from "../../protocols/http/Server.ts"
import * as Serve from "../../protocols/http/Serve.ts"
import * as Middleware from "../../protocols/http/Middleware.ts"
import * as Router from "../../protocols/http/Router.ts"
import * as StaticFiles from "../../protocols/http/StaticFiles.ts"
import * as Listener from "../../io/Listener.ts"
import * as BundledSite from "../BundledSite.ts"
import * as Status from "../Status.ts"
import { common, entryBase, kind, listenOptions } from "./Kind.ts"

export const http = kind({
  schema: Schema.Struct({ ...common, protocol: Schema.Literal("http"), ...Serve.options.schema.fields, ...BundledSite.options.schema.fields }),
  start: (service, deps) =>
    Effect.gen(function*() {
      const site = BundledSite.options.resolve(service)
      const files = yield* StaticFiles.make({ root: site.root ?? BundledSite.publicDir })
      const full = Router.make(BundledSite.routes(site, deps), Status.withStatus(files, deps.status, site.status))
      // a redirecting service (plain HTTP in front of HTTPS) answers only ACME challenges itself, from its root
      const app = site.redirect === undefined ? full : Middleware.redirect(site.redirect)(files)
      const server = yield* HttpServer.listen(app, { listen: listenOptions(service, deps), http: { ...service, accessLog: deps.accessLog } })
      return {
        ...entryBase(service, deps),
        address: Listener.formatAddress(server.listener.address),
        stats: server.listener.stats,
        oldest: server.listener.oldest,
        requests: server.requests,
        ...(server.http2 !== undefined ? { http2: server.http2 } : {}),
        ...(server.counters !== undefined ? { http: server.counters } : {}),
        reloadTls: server.listener.reloadTls
      }
    })
})

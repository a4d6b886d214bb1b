/**
 * A thin router: method + path pattern (`/users/:id`, `/files/*`) to an app.
 * The first matching route wins; a path that matches with another method
 * gets 405 with `Allow`; no match falls through to `fallback` (404 by default).
 */
import { Effect } from "effect"
import type { App } from "./Serve.ts"
import type { Request } from "./Request.ts"
import * as Res from "./Response.ts"
import * as WebSocket from "../websocket/WebSocket.ts"

/** One route. */
export interface Route<E, R> {
  readonly method: string | "*"
  readonly pattern: string
  readonly app: App<E, R>
}

const route = (method: string) => <E = never, R = never>(pattern: string, app: App<E, R>): Route<E, R> => ({ method, pattern, app })

/** Routes for GET (HEAD too, body dropped by the server). */
export const get = route("GET")
export const post = route("POST")
export const put = route("PUT")
export const patch = route("PATCH")
export const del = route("DELETE")
/** Any method. */
export const any = route("*")

/**
 * A WebSocket route: the opening handshake is checked (400/426 with a
 * reason otherwise) and `handler` runs as the connection's fiber over
 * messages.
 *
 * @example
 * const app = Router.make([
 *   Router.ws("/echo", (socket) => Effect.gen(function*() {
 *     while (true) {
 *       const message = yield* socket.receive
 *       if (Option.isNone(message)) return
 *       yield* socket.send(message.value)
 *     }
 *   }))
 * ])
 */
export const ws = <E = never, R = never>(
  pattern: string,
  handler: (socket: WebSocket.WebSocket) => Effect.Effect<void, E, R>,
  options?: WebSocket.WebSocketOptions
): Route<never, R> => ({ method: "GET", pattern, app: WebSocket.route(handler, options) })

interface Compiled<E, R> {
  readonly route: Route<E, R>
  readonly match: (path: string) => Record<string, string> | undefined
}

/** The params of every route without parameters (never written: the Router sets a fresh object only for patterns). */
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({})

const compile = <E, R>(r: Route<E, R>): Compiled<E, R> => {
  const parts = r.pattern.split("/")
  // a pattern without parameters or wildcard: one string comparison, no allocation
  if (!parts.some((part) => part === "*" || part.startsWith(":"))) {
    const pattern = r.pattern
    return { route: r, match: (path) => (path === pattern ? NO_PARAMS : undefined) }
  }
  return {
    route: r,
    match: (path) => {
      const segments = path.split("/")
      const params: Record<string, string> = {}
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!
        if (part === "*") {
          params["*"] = segments.slice(i).join("/")
          return params
        }
        const segment = segments[i]
        if (segment === undefined) return undefined
        if (part.startsWith(":")) {
          if (segment === "") return undefined
          try {
            params[part.slice(1)] = decodeURIComponent(segment)
          } catch {
            return undefined
          }
        } else if (part !== segment) return undefined
      }
      return segments.length === parts.length ? params : undefined
    }
  }
}

/**
 * Builds an app from routes.
 *
 * @example
 * const site = yield* StaticFiles.make({ root: "public" })
 * const app = Router.make([
 *   Router.get("/hello/:name", (req) => Effect.succeed(Response.text(`hello ${req.params.name}`))),
 *   Router.any("/*", site)
 * ])
 */
export const make = <Routes extends ReadonlyArray<Route<unknown, unknown>>, E2 = never, R2 = never>(
  routes: Routes,
  fallback?: App<E2, R2>
): App<RouteError<Routes[number]> | E2, RouteContext<Routes[number]> | R2> => {
  const compiled = routes.map(compile) as Array<Compiled<unknown, unknown>>
  return ((request: Request) => {
    let allowed: Array<string> | undefined
    for (const c of compiled) {
      const params = c.match(request.path)
      if (params === undefined) continue
      const m = c.route.method
      if (m === "*" || m === request.method || (m === "GET" && request.method === "HEAD")) {
        ;(request as { params: Readonly<Record<string, string>> }).params = params
        return c.route.app(request)
      }
      ;(allowed ??= []).push(m)
    }
    if (allowed !== undefined) {
      return Effect.succeed(Res.text("405 Method Not Allowed\n", { status: 405, headers: [["Allow", [...new Set(allowed)].join(", ")]] }))
    }
    return fallback !== undefined ? fallback(request) : NOT_FOUND
  }) as App<RouteError<Routes[number]> | E2, RouteContext<Routes[number]> | R2>
}

const NOT_FOUND = Effect.succeed(Res.text("404 Not Found\n", { status: 404 }))

/** The error type of a route. */
export type RouteError<T> = T extends Route<infer E, unknown> ? E : never
/** The context a route needs. */
export type RouteContext<T> = T extends Route<unknown, infer R> ? R : never

/**
 * HTTP middleware: `App => App` functions that wrap an application. A
 * redirect to another origin (HTTP to HTTPS, ACME challenges kept), CORS,
 * basic and bearer authentication guards, request logging (to the error log
 * at debug level), and response compression (gzip or brotli with
 * `node:zlib`, negotiated by `Accept-Encoding`). Compose with `pipe`:
 *
 *   const app = pipe(Router.make(routes), Middleware.compress(), Middleware.cors({ origins: "*" }))
 *
 * A synchronous app stays on the engine's fast path where the middleware
 * allows it (CORS and auth answer synchronously when the app does).
 */
import { Effect, Exit } from "effect"
import * as Zlib from "node:zlib"
import { accepted, compressible, VARY } from "./ContentCoding.ts"
import type { Request } from "./Request.ts"
import * as Res from "./Response.ts"
import type { App } from "./Serve.ts"

type Header = readonly [string, string]

const withHeaders = (response: Res.Response, extra: ReadonlyArray<Header>): Res.Response =>
  extra.length === 0 ? response : { ...response, headers: [...response.headers, ...extra] }

const hasHeader = (response: Res.Response, name: string): boolean =>
  response.headers.some(([n]) => n.toLowerCase() === name)

/** Maps a response whether the app answered synchronously (an Exit) or not, keeping an Exit an Exit. */
const mapResponse = <E, R>(
  result: Effect.Effect<Res.Response, E, R>,
  f: (response: Res.Response) => Res.Response
): Effect.Effect<Res.Response, E, R> =>
  Exit.isExit(result)
    ? (Exit.isSuccess(result) ? Exit.succeed(f((result as Exit.Success<Res.Response>).value)) : result) as Effect.Effect<Res.Response, E, R>
    : Effect.map(result, f)

// ---- Redirect ---------------------------------------------------------------

/** ACME's HTTP-01 challenge paths (RFC 8555 §8.3): a redirecting service still answers them itself, so certificates can be issued. */
export const acmeChallenge = (path: string): boolean => path.startsWith("/.well-known/acme-challenge/")

/**
 * Sends every request to `origin` (`https://example.org`), its path and query
 * kept: 301 for GET and HEAD, 308 for other methods (so the method and body
 * survive). Requests whose path `keep` accepts (default: ACME challenges) go
 * to the app.
 *
 * @example
 * const files = yield* StaticFiles.make({ root: "/srv/www" })
 * const plain = Middleware.redirect("https://example.org")(files) // ACME challenges from /srv/www, the rest to HTTPS
 */
export const redirect = (origin: string, keep: (path: string) => boolean = acmeChallenge) => <E, R>(app: App<E, R>): App<E, R> => {
  const base = origin.endsWith("/") ? origin.slice(0, -1) : origin
  return (request: Request) => {
    if (keep(request.path)) return app(request)
    const target = request.target.startsWith("/") ? request.target : request.path + (request.query === "" ? "" : `?${request.query}`)
    return Effect.succeed(Res.redirect(base + target, request.method === "GET" || request.method === "HEAD" ? 301 : 308))
  }
}

// ---- CORS -------------------------------------------------------------------

/** CORS options (the Fetch standard's CORS protocol). */
export interface CorsOptions {
  /** Allowed origins: `"*"`, a list, or a predicate. */
  readonly origins: "*" | ReadonlyArray<string> | ((origin: string) => boolean)
  /** Methods allowed in preflight answers. Default GET, HEAD, POST, PUT, PATCH, DELETE. */
  readonly methods?: ReadonlyArray<string>
  /** Request headers allowed; default: whatever the preflight asks for. */
  readonly headers?: ReadonlyArray<string>
  /** Response headers exposed to scripts. */
  readonly exposeHeaders?: ReadonlyArray<string>
  /** Allow credentials (cookies, Authorization); the origin is then echoed, never `*`. */
  readonly credentials?: boolean
  /** How long a preflight may be cached, in seconds. Default 600. */
  readonly maxAge?: number
}

/**
 * Answers CORS preflights (`OPTIONS` with `Access-Control-Request-Method`)
 * with 204 and adds the CORS headers to every answer to an allowed origin.
 */
export const cors = (options: CorsOptions) => <E, R>(app: App<E, R>): App<E, R> => {
  const allowed = (origin: string) =>
    options.origins === "*" ? true : typeof options.origins === "function" ? options.origins(origin) : options.origins.includes(origin)
  const methods = (options.methods ?? ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]).join(", ")
  const wildcard = options.origins === "*" && options.credentials !== true
  return (request: Request) => {
    const origin = request.headers.get("origin")
    if (origin === undefined || !allowed(origin)) return app(request)
    const common: Array<Header> = [["Access-Control-Allow-Origin", wildcard ? "*" : origin]]
    if (!wildcard) common.push(["Vary", "Origin"])
    if (options.credentials === true) common.push(["Access-Control-Allow-Credentials", "true"])
    const preflight = request.method === "OPTIONS" ? request.headers.get("access-control-request-method") : undefined
    if (preflight !== undefined) {
      const asked = request.headers.get("access-control-request-headers")
      const headers = options.headers?.join(", ") ?? asked
      return Exit.succeed(Res.status(204, {
        headers: [
          ...common,
          ["Access-Control-Allow-Methods", methods],
          ...(headers !== undefined ? [["Access-Control-Allow-Headers", headers] as Header] : []),
          ["Access-Control-Max-Age", String(options.maxAge ?? 600)]
        ]
      }))
    }
    if (options.exposeHeaders !== undefined) common.push(["Access-Control-Expose-Headers", options.exposeHeaders.join(", ")])
    return mapResponse(app(request), (response) => withHeaders(response, common))
  }
}

// ---- authentication ----------------------------------------------------------

const unauthorized = (challenge: string) =>
  Exit.succeed(Res.text("401 Unauthorized\n", { status: 401, headers: [["WWW-Authenticate", challenge]] }))

/**
 * HTTP Basic authentication (RFC 7617): requests without valid credentials
 * get 401 with a `WWW-Authenticate` challenge; `check` decides.
 */
export const basicAuth = <E2 = never, R2 = never>(options: {
  readonly realm: string
  readonly check: (user: string, password: string) => Effect.Effect<boolean, E2, R2> | boolean
}) =>
<E, R>(app: App<E, R>): App<E | E2, R | R2> => {
  const challenge = `Basic realm="${options.realm.replace(/["\\]/g, "")}", charset="UTF-8"`
  return (request: Request) => {
    const header = request.headers.get("authorization")
    const m = header === undefined ? null : /^Basic +([A-Za-z0-9+/=]+)$/i.exec(header)
    if (m === null) return unauthorized(challenge)
    const decoded = Buffer.from(m[1]!, "base64").toString("utf8")
    const colon = decoded.indexOf(":")
    if (colon < 0) return unauthorized(challenge)
    const verdict = options.check(decoded.slice(0, colon), decoded.slice(colon + 1))
    if (typeof verdict === "boolean") return verdict ? app(request) : unauthorized(challenge)
    return Effect.flatMap(verdict, (ok): Effect.Effect<Res.Response, E | E2, R | R2> => (ok ? app(request) : unauthorized(challenge)))
  }
}

/**
 * Bearer-token authentication (RFC 6750): requests without a valid
 * `Authorization: Bearer` token get 401 with a `WWW-Authenticate` challenge.
 */
export const bearerAuth = <E2 = never, R2 = never>(options: {
  readonly realm?: string
  readonly check: (token: string) => Effect.Effect<boolean, E2, R2> | boolean
}) =>
<E, R>(app: App<E, R>): App<E | E2, R | R2> => {
  const realm = (options.realm ?? "api").replace(/["\\]/g, "")
  return (request: Request) => {
    const header = request.headers.get("authorization")
    const m = header === undefined ? null : /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header)
    if (m === null) return unauthorized(`Bearer realm="${realm}"`)
    const verdict = options.check(m[1]!)
    const denied = unauthorized(`Bearer realm="${realm}", error="invalid_token"`)
    if (typeof verdict === "boolean") return verdict ? app(request) : denied
    return Effect.flatMap(verdict, (ok): Effect.Effect<Res.Response, E | E2, R | R2> => (ok ? app(request) : denied))
  }
}

// ---- request logging -----------------------------------------------------------

/** Logs every request at debug level (method, target, status, milliseconds) to the error log. */
export const requestLog = <E, R>(app: App<E, R>): App<E, R> => (request: Request) =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.tap(app(request), (response) =>
      Effect.logDebug(`${request.method} ${request.target} ${response.status} ${(performance.now() - started).toFixed(1)} ms`).pipe(
        Effect.annotateLogs({ peer: `${request.remote.address}:${request.remote.port}` })
      ))
  })

// ---- compression ---------------------------------------------------------------

/** Compression options. */
export interface CompressOptions {
  /** Bodies smaller than this are sent as they are. Default 1024 bytes. */
  readonly threshold?: number
  /** Encodings offered, in order of preference. Default brotli, then gzip. */
  readonly encodings?: ReadonlyArray<"br" | "gzip">
}

const zip = (encoding: "br" | "gzip", bytes: Uint8Array) =>
  Effect.callback<Buffer>((resume) => {
    const done = (error: Error | null, out: Buffer) => resume(error ? Effect.die(error) : Effect.succeed(out))
    if (encoding === "br") Zlib.brotliCompress(bytes, { params: { [Zlib.constants.BROTLI_PARAM_QUALITY]: 5 } }, done)
    else Zlib.gzip(bytes, done)
  })

/**
 * Compresses in-memory response bodies with brotli or gzip when the client
 * accepts it (`Accept-Encoding`), the body is at least `threshold` bytes, of
 * a compressible type and not already encoded. Every answer that could be
 * compressed carries `Vary: Accept-Encoding`, compressed or not (so a shared
 * cache does not hand one client's copy to another). Streamed and file
 * bodies, ranges (206) and bodiless answers pass unchanged; HEAD is
 * compressed too, so it announces what GET would send. Compression runs on
 * libuv's thread pool, not on the event loop.
 */
export const compress = (options: CompressOptions = {}) => <E, R>(app: App<E, R>): App<E, R> => {
  const threshold = options.threshold ?? 1024
  const offered = options.encodings ?? ["br", "gzip"]
  /** Whether the coding of this answer depends on Accept-Encoding (what this middleware may compress). */
  const candidate = (response: Res.Response): response is Res.Response & { readonly body: { readonly _tag: "Bytes"; readonly bytes: Uint8Array } } =>
    response.body._tag === "Bytes" && response.body.bytes.byteLength >= threshold && response.status === 200 &&
    compressible(response.headers.find(([n]) => n.toLowerCase() === "content-type")?.[1] ?? "") && !hasHeader(response, "content-encoding")
  return (request: Request) => {
    const result = app(request)
    const wants = accepted(request.headers.get("accept-encoding"))
    const encoding = offered.find((e) => wants.has(e))
    // not compressed for this client, but a cache must not give this copy to one that accepts a coding
    if (encoding === undefined) return mapResponse(result, (response) => (candidate(response) ? withHeaders(response, [VARY]) : response))
    return Effect.flatMap(result, (response): Effect.Effect<Res.Response> => {
      if (!candidate(response)) return Effect.succeed(response)
      return Effect.map(zip(encoding, response.body.bytes), (bytes) => ({
        status: response.status,
        headers: [...response.headers, ["Content-Encoding", encoding], VARY],
        body: { _tag: "Bytes", bytes }
      }))
    })
  }
}

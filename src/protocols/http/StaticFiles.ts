/**
 * Static files as an HTTP app, confined to a root directory.
 *
 * Path resolution: the path is percent-decoded once; NUL, backslashes and any
 * `..` segment (in whatever encoding it arrived) are refused with 403; the
 * result is resolved with realpath and must stay inside the root's realpath,
 * so a symlink out of the root is refused too (404, never the file).
 * Directories get `index.html`, and `/dir` redirects to `/dir/`. Responses
 * carry a MIME type, `ETag` and `Last-Modified`, answer conditional requests
 * with 304, a single `Range` with 206 (unsatisfiable: 416), and HEAD. Files up
 * to `cacheMaxFile` are kept in memory (revalidated with stat at most once a
 * second, so a change is served within a second); bigger files stream from
 * disk with backpressure. A precompressed sibling (`X.br`, `X.gz`) is served
 * in place of X to a client that accepts its coding. Misses are cached for the same window (nginx's
 * `open_file_cache_errors`), so a flood of 404s costs no more than hits.
 * MIME types come from `mime-types` (the mime-db table), with
 * `charset=utf-8` for text.
 */
import { Data, Effect, Exit } from "effect"
import * as MimeTypes from "mime-types"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { FileError, statusForFileError } from "./BodyWriter.ts"
import * as ContentCoding from "./ContentCoding.ts"
import { Headers } from "./Headers.ts"
import * as HttpDate from "./HttpDate.ts"
import type { Request } from "./Request.ts"
import * as Req from "./Request.ts"
import * as Res from "./Response.ts"

/** Static-file options. */
export interface StaticOptions {
  /** The directory served. */
  readonly root: string
  /** Directory index file. Default `index.html`. */
  readonly index?: string
  /** Files up to this size are cached in memory. Default 1 MiB; 0 disables the cache. */
  readonly cacheMaxFile?: number
  /** Total cache size. Default 64 MiB. */
  readonly cacheMaxBytes?: number
  /** How long a cached file is trusted before it is stat()ed again. Default 1000 ms. */
  readonly revalidateMillis?: number
  /**
   * Serve `X.br` or `X.gz` in place of `X` when it exists and the client accepts that coding (nginx's
   * `gzip_static`); compressible types then carry `Vary: Accept-Encoding`. Default true.
   */
  readonly precompressed?: boolean
}

/** Precompressed siblings, in order of preference. */
const SIBLINGS: ReadonlyArray<readonly [ContentCoding.Coding, string]> = [["br", ".br"], ["gzip", ".gz"]]

/** Content type for a file name (from mime-db; text types get `charset=utf-8`). */
export const mimeType = (file: string): string => {
  const ext = Path.extname(file)
  return (ext === "" ? false : MimeTypes.contentType(ext)) || "application/octet-stream"
}

/** The served directory is missing, not a directory, or not readable. */
export class RootError extends Data.TaggedError("RootError")<{ readonly root: string; readonly reason: string }> {
  override get message() {
    return `${this.reason} (${this.root})`
  }
}

/** The outcome of resolving a URL path inside the root. */
export type Resolved =
  | { readonly _tag: "File"; readonly file: string; readonly stat: Fs.Stats }
  | { readonly _tag: "Redirect"; readonly location: string }
  | { readonly _tag: "Refused"; readonly status: 400 | 403 | 404 }

/**
 * Decodes and checks a URL path; returns the relative segments, or the status
 * to refuse it with. Pure, so it is property-tested on its own.
 */
export const safeSegments = (rawPath: string): ReadonlyArray<string> | 400 | 403 => {
  let decoded: string
  try {
    decoded = decodeURIComponent(rawPath)
  } catch {
    return 400
  }
  if (decoded.includes("\0") || decoded.includes("\\")) return 403
  const segments: Array<string> = []
  for (const segment of decoded.split("/")) {
    if (segment === "" || segment === ".") continue
    if (segment === "..") return 403
    segments.push(segment)
  }
  return segments
}

const inside = (root: string, file: string) => file === root || file.startsWith(root.endsWith(Path.sep) ? root : root + Path.sep)

/** Errors that mean "no such file here" (404) or "not yours to read" (403); others are the server's problem. */
const missingCodes = new Set(["ENOENT", "ENOTDIR", "ELOOP", "ENAMETOOLONG"])

/** realpath/stat with the usual refusals as values and the server's own failures (EMFILE...) as FileError. */
const lookup = <A>(operation: "stat" | "open", path: string, f: () => Promise<A>): Effect.Effect<A | 403 | 404, FileError> =>
  Effect.tryPromise({ try: f, catch: (e) => e as NodeJS.ErrnoException }).pipe(
    Effect.catch((e) =>
      missingCodes.has(e.code ?? "")
        ? Effect.succeed(404 as const)
        : e.code === "EACCES" || e.code === "EPERM"
        ? Effect.succeed(403 as const)
        : Effect.fail(new FileError({ path, operation, code: e.code ?? String(e) }))
    )
  )

/** A URL path with runs of slashes collapsed, so a redirect to it cannot read as `//authority`. */
const collapseSlashes = (path: string): string => path.replace(/\/{2,}/g, "/")

/** Resolves a request path inside `root` (which must be a realpath). */
export const resolve = (root: string, rawPath: string, index: string): Effect.Effect<Resolved, FileError> =>
  Effect.gen(function*() {
    const segments = safeSegments(rawPath)
    if (typeof segments === "number") return { _tag: "Refused", status: segments }
    const file = yield* lookup("stat", rawPath, () => Fs.promises.realpath(Path.join(root, ...segments)))
    if (typeof file === "number") return { _tag: "Refused", status: file }
    if (!inside(root, file)) return { _tag: "Refused", status: 404 }
    const stat = yield* lookup("stat", file, () => Fs.promises.stat(file))
    if (typeof stat === "number") return { _tag: "Refused", status: stat }
    if (stat.isDirectory()) {
      if (!rawPath.endsWith("/")) return { _tag: "Redirect", location: collapseSlashes(rawPath + "/") }
      const indexFile = yield* lookup("stat", rawPath, () => Fs.promises.realpath(Path.join(file, index)))
      if (typeof indexFile === "number") return { _tag: "Refused", status: indexFile === 403 ? 403 : 404 }
      if (!inside(root, indexFile)) return { _tag: "Refused", status: 404 }
      const indexStat = yield* lookup("stat", indexFile, () => Fs.promises.stat(indexFile))
      if (typeof indexStat === "number" || !indexStat.isFile()) return { _tag: "Refused", status: 404 }
      return { _tag: "File", file: indexFile, stat: indexStat }
    }
    if (!stat.isFile()) return { _tag: "Refused", status: 404 }
    return { _tag: "File", file, stat }
  })

/** A weak validator from size and modification time. */
export const etagOf = (stat: Pick<Fs.Stats, "size" | "mtimeMs">): string =>
  `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`

/** Parses a single `bytes=` range against a size; undefined when absent/ignored, "unsatisfiable" when so. */
export const parseRange = (
  header: string | undefined,
  size: number
): { readonly start: number; readonly end: number } | "unsatisfiable" | undefined => {
  if (header === undefined) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (m === null) return undefined // multiple ranges or another unit: serve the whole file
  const [, a, b] = m
  if (a === "" && b === "") return undefined
  if (a === "") {
    const suffix = Number(b)
    if (suffix === 0) return "unsatisfiable"
    return { start: Math.max(0, size - suffix), end: size }
  }
  const start = Number(a)
  const last = b === "" ? size - 1 : Math.min(Number(b), size - 1)
  if (start >= size || (b !== "" && Number(b) < start)) return "unsatisfiable"
  return { start, end: last + 1 }
}

interface Cached {
  readonly bytes: Buffer
  readonly etag: string
  readonly lastModified: string
  readonly mtimeMs: number
  readonly size: number
  readonly type: string
  /** The unconditional 200 response, built once. */
  readonly ok: Effect.Effect<Res.Response>
  checkedAt: number
}

/** A cached miss: the refusal answered for this path until it is revalidated. */
interface Missing {
  readonly _tag: "Missing"
  readonly answer: Effect.Effect<Res.Response>
  readonly checkedAt: number
}

/** Misses remembered at most (the oldest is forgotten first), so random paths cannot grow the cache without bound. */
const MAX_MISSES = 10_000

/** True when the request has a conditional or Range header (one pass over the names). */
const isPlain = (request: Request): boolean => {
  for (const name of request.headers.names) {
    if (name === "if-none-match" || name === "if-modified-since" || name === "range" || name === "if-range") return false
  }
  return true
}

const notModified = (request: Request, etag: string, mtimeMs: number): boolean => {
  const inm = request.headers.get("if-none-match")
  if (inm !== undefined) {
    if (inm.trim() === "*") return true
    const weak = (t: string) => t.trim().replace(/^W\//, "")
    return inm.split(",").some((t) => weak(t) === weak(etag))
  }
  const ims = request.headers.get("if-modified-since")
  if (ims !== undefined && (request.method === "GET" || request.method === "HEAD")) {
    // RFC 9110 §13.1.3: an invalid date is ignored
    const since = HttpDate.parse(ims)
    return since !== undefined && Math.floor(mtimeMs / 1000) * 1000 <= since
  }
  return false
}

/**
 * The static-file app. Answers GET and HEAD; other methods get 405.
 *
 * @example
 * const site = yield* StaticFiles.make({ root: "public" })
 * const http = yield* Serve.make(site)
 */
export const make = (options: StaticOptions): Effect.Effect<(request: Request) => Effect.Effect<Res.Response>, RootError> =>
  Effect.gen(function*() {
    const root = yield* Effect.tryPromise({
      try: async () => {
        const real = await Fs.promises.realpath(options.root)
        if (!(await Fs.promises.stat(real)).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" })
        await Fs.promises.access(real, Fs.constants.R_OK | Fs.constants.X_OK)
        return real
      },
      catch: (e) => new RootError({ root: options.root, reason: `root directory is not readable: ${(e as NodeJS.ErrnoException).code ?? String(e)}` })
    })
    const index = options.index ?? "index.html"
    const cacheMaxFile = options.cacheMaxFile ?? 1024 * 1024
    const cacheMaxBytes = options.cacheMaxBytes ?? 64 * 1024 * 1024
    const revalidate = options.revalidateMillis ?? 1000
    const precompressed = options.precompressed ?? true
    const cache = new Map<string, Cached>()
    const misses = new Map<string, Missing>()
    let cachedBytes = 0

    const respond = (request: Request, meta: { etag: string; lastModified: string; mtimeMs: number; size: number; type: string }, body: (start: number, end: number) => Res.Body) => {
      const headers: Array<readonly [string, string]> = [
        ["Content-Type", meta.type],
        ["ETag", meta.etag],
        ["Last-Modified", meta.lastModified],
        ["Accept-Ranges", "bytes"]
      ]
      // a precompressed sibling may be answered instead, by Accept-Encoding: caches keep one copy per coding
      if (precompressed && ContentCoding.compressible(meta.type)) headers.push(ContentCoding.VARY)
      if (notModified(request, meta.etag, meta.mtimeMs)) return { status: 304, headers, body: { _tag: "Empty" } } as Res.Response
      const ifRange = request.headers.get("if-range")
      const rangeHeader = ifRange === undefined || ifRange === meta.etag || ifRange === meta.lastModified
        ? request.headers.get("range")
        : undefined
      const range = parseRange(rangeHeader, meta.size)
      if (range === "unsatisfiable") {
        return { status: 416, headers: [["Content-Range", `bytes */${meta.size}`]], body: { _tag: "Empty" } } as Res.Response
      }
      if (range !== undefined) {
        return {
          status: 206,
          headers: [...headers, ["Content-Range", `bytes ${range.start}-${range.end - 1}/${meta.size}`]],
          body: body(range.start, range.end)
        } as Res.Response
      }
      return { status: 200, headers, body: body(0, meta.size) } as Res.Response
    }

    const fromCache = (request: Request, key: string): Effect.Effect<Res.Response> | undefined => {
      const now = Date.now()
      const miss = misses.get(key)
      if (miss !== undefined) {
        if (now - miss.checkedAt < revalidate) return miss.answer
        misses.delete(key)
        return undefined
      }
      const hit = cache.get(key)
      if (hit === undefined) return undefined
      if (now - hit.checkedAt >= revalidate) {
        // this request revalidates (stat, reload if changed); requests meanwhile keep using the cached copy
        hit.checkedAt = now
        return undefined
      }
      if (isPlain(request)) return hit.ok
      return Effect.succeed(respond(request, hit, (start, end) => ({ _tag: "Bytes", bytes: hit.bytes.subarray(start, end) })))
    }

    const forget = (key: string) => {
      const old = cache.get(key)
      if (old === undefined) return
      cachedBytes -= old.size
      cache.delete(key)
    }

    const refuse = (key: string, status: 400 | 403 | 404): Res.Response => {
      const response = Res.text(`${status} ${Res.reasonPhrase(status)}\n`, { status })
      if (revalidate > 0) {
        if (misses.size >= MAX_MISSES) misses.delete(misses.keys().next().value!)
        misses.set(key, { _tag: "Missing", answer: Effect.succeed(response), checkedAt: Date.now() })
      }
      return response
    }

    const serve = (request: Request) =>
      Effect.gen(function*() {
        const key = request.path
        const resolved = yield* resolve(root, key, index)
        if (resolved._tag !== "File") forget(key)
        if (resolved._tag === "Refused") return refuse(key, resolved.status)
        if (resolved._tag === "Redirect") {
          return Res.redirect(resolved.location + (request.query === "" ? "" : `?${request.query}`), 301)
        }
        const { file, stat } = resolved
        const meta = {
          etag: etagOf(stat),
          lastModified: HttpDate.format(Math.floor(stat.mtimeMs / 1000) * 1000),
          mtimeMs: stat.mtimeMs,
          size: stat.size,
          type: mimeType(file)
        }
        if (stat.size <= cacheMaxFile && cacheMaxFile > 0) {
          const old = cache.get(key)
          let bytes = old !== undefined && old.etag === meta.etag ? old.bytes : undefined
          if (bytes === undefined) {
            bytes = yield* Effect.tryPromise({
              try: () => Fs.promises.readFile(file),
              catch: (e) => new FileError({ path: file, operation: "read", code: (e as NodeJS.ErrnoException).code ?? String(e) })
            })
            if (bytes.byteLength !== stat.size) return Res.text("503 file changed while read\n", { status: 503, headers: [["Retry-After", "1"]] })
          }
          forget(key)
          if (cachedBytes + stat.size <= cacheMaxBytes) {
            const whole = bytes
            const ok = Effect.succeed(respond(PLAIN_GET, meta, () => ({ _tag: "Bytes", bytes: whole })))
            cache.set(key, { ...meta, bytes, ok, checkedAt: Date.now() })
            cachedBytes += stat.size
          }
          const whole = bytes
          return respond(request, meta, (start, end) => ({ _tag: "Bytes", bytes: whole.subarray(start, end) }))
        }
        return respond(request, meta, (start, end) => ({ _tag: "File", path: file, start, end }))
      }).pipe(
        // the server's own trouble (out of descriptors, I/O error): an honest 503/500, and a log line
        Effect.catchTag("FileError", (error) => {
          const status = statusForFileError(error)
          return Effect.logWarning(`static files: ${error.message}`).pipe(
            Effect.as(Res.text(`${status} ${Res.reasonPhrase(status)}\n`, status === 503 ? { status, headers: [["Retry-After", "1"]] } : { status }))
          )
        })
      )

    const plain = (request: Request) => fromCache(request, request.path) ?? serve(request)

    /**
     * `X.br` or `X.gz` for a client that accepts it, labelled as X (its type,
     * `Content-Encoding`, `Vary`); undefined when there is none to try (X itself
     * then answers). Ranges are served from X.
     */
    const sibling = (request: Request): Effect.Effect<Res.Response> | undefined => {
      const coding = ContentCoding.choose(request.headers.get("accept-encoding"), ["br", "gzip"])
      if (coding === undefined || request.headers.has("range")) return undefined
      const type = mimeType(request.path.endsWith("/") ? index : request.path)
      if (!ContentCoding.compressible(type)) return undefined
      const path = (request.path.endsWith("/") ? request.path + index : request.path) + SIBLINGS.find(([c]) => c === coding)![1]
      const compressed = Req.make({ method: request.method, target: path, minor: request.minor, headers: request.headers, remote: request.remote, reader: Req.noBody })
      return then(plain(compressed), (answer) =>
        answer.status === 200 || answer.status === 304
          ? Effect.succeed({
            ...answer,
            headers: [
              ...answer.headers.filter(([n]) => n !== "Content-Type" && n !== "Vary"),
              ["Content-Type", type],
              ["Content-Encoding", coding],
              ContentCoding.VARY
            ]
          })
          : plain(request))
    }

    return (request: Request) => {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return Effect.succeed(Res.status(405, { headers: [["Allow", "GET, HEAD"]] }))
      }
      return (precompressed ? sibling(request) : undefined) ?? plain(request)
    }
  })

/** `flatMap` that stays synchronous when the answer already is (a cache hit is an Exit). */
const then = (answer: Effect.Effect<Res.Response>, f: (response: Res.Response) => Effect.Effect<Res.Response>): Effect.Effect<Res.Response> =>
  Exit.isExit(answer) && Exit.isSuccess(answer) ? f(answer.value as Res.Response) : Effect.flatMap(answer, f)

/** The request the cached unconditional answer is built for. */
const PLAIN_GET = Req.make({ method: "GET", target: "/", minor: 1, headers: Headers.empty, remote: { address: "", port: 0, family: "memory" }, reader: Req.noBody })

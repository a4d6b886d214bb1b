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
 * disk with backpressure.
 */
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Headers } from "./Headers.ts"
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
}

/** MIME types by extension. */
export const mimeTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8", ".json": "application/json",
  ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".xml": "application/xml",
  ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
  ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon", ".woff": "font/woff", ".woff2": "font/woff2",
  ".ttf": "font/ttf", ".otf": "font/otf", ".pdf": "application/pdf", ".wasm": "application/wasm",
  ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".wav": "audio/wav",
  ".zip": "application/zip", ".gz": "application/gzip", ".tar": "application/x-tar", ".csv": "text/csv; charset=utf-8"
}

/** Content type for a file name. */
export const mimeType = (file: string): string => mimeTypes[Path.extname(file).toLowerCase()] ?? "application/octet-stream"

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

const realpath = (p: string) => Fs.promises.realpath(p)

const inside = (root: string, file: string) => file === root || file.startsWith(root.endsWith(Path.sep) ? root : root + Path.sep)

/** Resolves a request path inside `root` (which must be a realpath). */
export const resolve = (root: string, rawPath: string, index: string): Effect.Effect<Resolved> =>
  Effect.promise(async (): Promise<Resolved> => {
    const segments = safeSegments(rawPath)
    if (typeof segments === "number") return { _tag: "Refused", status: segments }
    let file = Path.join(root, ...segments)
    try {
      file = await realpath(file)
    } catch {
      return { _tag: "Refused", status: 404 }
    }
    if (!inside(root, file)) return { _tag: "Refused", status: 404 }
    let stat = await Fs.promises.stat(file).catch(() => undefined)
    if (stat === undefined) return { _tag: "Refused", status: 404 }
    if (stat.isDirectory()) {
      if (!rawPath.endsWith("/")) return { _tag: "Redirect", location: rawPath + "/" }
      let indexFile = Path.join(file, index)
      try {
        indexFile = await realpath(indexFile)
      } catch {
        return { _tag: "Refused", status: 404 }
      }
      if (!inside(root, indexFile)) return { _tag: "Refused", status: 404 }
      stat = await Fs.promises.stat(indexFile).catch(() => undefined)
      if (stat === undefined || !stat.isFile()) return { _tag: "Refused", status: 404 }
      file = indexFile
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
  if (ims !== undefined) {
    const since = Date.parse(ims)
    return !Number.isNaN(since) && Math.floor(mtimeMs / 1000) * 1000 <= since
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
export const make = (options: StaticOptions): Effect.Effect<(request: Request) => Effect.Effect<Res.Response>> =>
  Effect.gen(function*() {
    const root = yield* Effect.promise(() => realpath(options.root))
    const index = options.index ?? "index.html"
    const cacheMaxFile = options.cacheMaxFile ?? 1024 * 1024
    const cacheMaxBytes = options.cacheMaxBytes ?? 64 * 1024 * 1024
    const revalidate = options.revalidateMillis ?? 1000
    const cache = new Map<string, Cached>()
    let cachedBytes = 0

    const respond = (request: Request, meta: { etag: string; lastModified: string; mtimeMs: number; size: number; type: string }, body: (start: number, end: number) => Res.Body) => {
      const headers: Array<readonly [string, string]> = [
        ["Content-Type", meta.type],
        ["ETag", meta.etag],
        ["Last-Modified", meta.lastModified],
        ["Accept-Ranges", "bytes"]
      ]
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
      const hit = cache.get(key)
      if (hit === undefined) return undefined
      const now = Date.now()
      if (now - hit.checkedAt >= revalidate) {
        // this request revalidates (stat, reload if changed); requests meanwhile keep using the cached copy
        hit.checkedAt = now
        return undefined
      }
      if (isPlain(request)) return hit.ok
      return Effect.succeed(respond(request, hit, (start, end) => ({ _tag: "Bytes", bytes: hit.bytes.subarray(start, end) })))
    }

    return (request: Request) => {
      if (request.method !== "GET" && request.method !== "HEAD") {
        return Effect.succeed(Res.status(405, { headers: [["Allow", "GET, HEAD"]] }))
      }
      const cached = fromCache(request, request.path)
      if (cached !== undefined) return cached
      return Effect.gen(function*() {
        const resolved = yield* resolve(root, request.path, index)
        if (resolved._tag !== "File" && cache.has(request.path)) {
          cachedBytes -= cache.get(request.path)!.size
          cache.delete(request.path)
        }
        if (resolved._tag === "Refused") return Res.text(`${resolved.status} ${Res.reasons[resolved.status]}\n`, { status: resolved.status })
        if (resolved._tag === "Redirect") {
          return Res.redirect(resolved.location + (request.query === "" ? "" : `?${request.query}`), 301)
        }
        const { file, stat } = resolved
        const meta = {
          etag: etagOf(stat),
          lastModified: new Date(Math.floor(stat.mtimeMs / 1000) * 1000).toUTCString(),
          mtimeMs: stat.mtimeMs,
          size: stat.size,
          type: mimeType(file)
        }
        if (stat.size <= cacheMaxFile && cacheMaxFile > 0) {
          const old = cache.get(request.path)
          let bytes = old !== undefined && old.etag === meta.etag ? old.bytes : undefined
          if (bytes === undefined) {
            bytes = yield* Effect.promise(() => Fs.promises.readFile(file))
            if (bytes.byteLength !== stat.size) return Res.text("503 file changed while read\n", { status: 503 })
          }
          if (old !== undefined) cachedBytes -= old.size
          if (cachedBytes + stat.size <= cacheMaxBytes) {
            const whole = bytes
            const ok = Effect.succeed(respond(Req.make({ method: "GET", target: "/", minor: 1, headers: Headers.empty, remote: { address: "", port: 0, family: "memory" }, reader: Req.noBody }), meta, () => ({ _tag: "Bytes", bytes: whole })))
            cache.set(request.path, { ...meta, bytes, ok, checkedAt: Date.now() })
            cachedBytes += stat.size
          } else {
            cache.delete(request.path)
          }
          const whole = bytes
          return respond(request, meta, (start, end) => ({ _tag: "Bytes", bytes: whole.subarray(start, end) }))
        }
        return respond(request, meta, (start, end) => ({ _tag: "File", path: file, start, end }))
      })
    }
  })

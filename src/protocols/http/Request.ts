/**
 * The request an app sees, and the reader behind its body.
 *
 * The body is pulled from the connection only when the app asks: as a
 * Stream (`body`), or whole (`bytes`, `text`, `json`). An `Expect:
 * 100-continue` request gets its `100 Continue` when the app starts reading.
 */
import { Data, Effect, Option, Schema, SchemaIssue, Stream } from "effect"
import type { ConnectionError, RemoteAddress } from "../../io/Connection.ts"
import type { BodyDecoder } from "./Body.ts"
import type { Headers } from "./Headers.ts"

/** The request body could not be read: framing error, too large, or the connection failed. */
export class BodyError extends Data.TaggedError("BodyError")<{
  readonly status: 400 | 408 | 413 | 499
  readonly reason: string
}> {
  override get message() {
    return `request body: ${this.reason}`
  }
}

/**
 * A request the app refuses with a client-error status (415, 422, 400...):
 * the engine answers it with that status and a short reason, keeps the
 * connection when the body was read, and logs nothing as a failure.
 */
export class HttpError extends Data.TaggedError("HttpError")<{
  readonly status: number
  readonly reason: string
  /** What a JSON error answer lists as its `issues` (decodeJson: the schema's issues, each `{ path, message }`). */
  readonly details?: unknown
}> {
  override get message() {
    return `${this.status}: ${this.reason}`
  }
}

/** `application/json` and `application/*+json`, parameters allowed. */
const isJsonType = (type: string | undefined): boolean =>
  type !== undefined && /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(type.trim())

const standard = SchemaIssue.makeFormatterStandardSchemaV1()

/** A schema's issues as plain data: `{ path, message }` each, the path as keys and indexes. */
const issuesOf = (issue: SchemaIssue.Issue): ReadonlyArray<{ readonly path: ReadonlyArray<string | number>; readonly message: string }> =>
  standard(issue).issues.map((i) => ({
    path: (i.path ?? []).map((k) => (typeof k === "object" && k !== null && "key" in k ? k.key : k) as string | number),
    message: i.message
  }))

/**
 * The body decoded as JSON and then with `schema`: 415 when the request is
 * not `application/json`, 400 for malformed JSON, 422 with the schema's
 * message when the shape is wrong (as `HttpError`, which the engine answers).
 *
 * @example
 * const User = Schema.Struct({ name: Schema.String, age: Schema.Int })
 * const create = (req: Request.Request) => Effect.map(Request.decodeJson(req, User), (user) => Response.json({ hello: user.name }))
 */
export const decodeJson = <A, I, RD>(request: Request, schema: Schema.Codec<A, I, RD>): Effect.Effect<A, HttpError | BodyError, RD> =>
  Effect.gen(function*() {
    if (!isJsonType(request.headers.get("content-type"))) {
      return yield* new HttpError({ status: 415, reason: "expected Content-Type: application/json" })
    }
    const json = yield* request.json.pipe(
      Effect.catchIf((e) => e.status === 400 && e.reason === "body is not valid JSON", () => Effect.fail(new HttpError({ status: 400, reason: "the body is not valid JSON" })))
    )
    return yield* Schema.decodeUnknownEffect(schema)(json).pipe(
      Effect.mapError((e) => new HttpError({ status: 422, reason: String(e.message), details: issuesOf(e.issue) }))
    )
  })

/** A request as the app sees it. */
export interface Request {
  readonly method: string
  /** The request-target as received (`/path?query`). */
  readonly target: string
  /** The path, not decoded (of an absolute-form target `http://host/p?q`: `/p`). */
  readonly path: string
  /** The query string without `?` (empty when none). */
  readonly query: string
  /** Parsed query parameters (first value of each name). */
  readonly searchParams: URLSearchParams
  /** Case-insensitive headers. */
  readonly headers: Headers
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1
  readonly remote: RemoteAddress
  /** Path parameters set by the Router (`/users/:id`). */
  readonly params: Readonly<Record<string, string>>
  /** The body as a stream of chunks (empty when the request has none). */
  readonly body: Stream.Stream<Uint8Array, BodyError>
  /** The next body chunk; None at the end. */
  readonly readBody: Effect.Effect<Option.Option<Uint8Array>, BodyError>
  /** The whole body (bounded by the server's body limit). */
  readonly bytes: Effect.Effect<Uint8Array, BodyError>
  /** The whole body as UTF-8 text. */
  readonly text: Effect.Effect<string, BodyError>
  /** The whole body parsed as JSON. */
  readonly json: Effect.Effect<unknown, BodyError>
}

/** Where body bytes come from: the connection loop's input buffer, refilled from the connection. */
export interface BodySource {
  buffer: Uint8Array
  start: number
  end: number
  /** Reads one more chunk from the connection into the buffer; false at EOF. */
  readonly fill: Effect.Effect<boolean, ConnectionError>
  /** Sends `100 Continue` if the request asked for it and nothing was sent yet. */
  readonly continue: Effect.Effect<void, ConnectionError>
}

/** Reads a request body through its decoder; tracks whether it is complete. */
export class BodyReader {
  done: boolean
  started = false
  private pending: Array<Uint8Array> = []
  private readonly source: BodySource | undefined
  private readonly decoder: BodyDecoder | undefined
  private readEffect: Effect.Effect<Option.Option<Uint8Array>, BodyError> | undefined

  constructor(source: BodySource | undefined, decoder: BodyDecoder | undefined) {
    this.source = source
    this.decoder = decoder
    this.done = decoder === undefined
  }

  /** Body bytes received so far. */
  get received(): number {
    return this.decoder?.received ?? 0
  }

  /** The next chunk of the body; None at its end. */
  get read(): Effect.Effect<Option.Option<Uint8Array>, BodyError> {
    if (this.decoder === undefined) return NONE
    return this.readEffect ??= Effect.suspend(() => this.next()).pipe(
      Effect.catchTag(
        ["ConnectionReset", "ConnectionClosed", "ConnectionFailed", "ConnectionTimeout"],
        (e) => Effect.fail(new BodyError({ status: e._tag === "ConnectionTimeout" ? 408 : 499, reason: e.message }))
      )
    )
  }

  private next(): Effect.Effect<Option.Option<Uint8Array>, BodyError | ConnectionError> {
    if (this.pending.length > 0) return Effect.succeed(Option.some(this.pending.shift()!))
    if (this.done || this.decoder === undefined || this.source === undefined) return NONE
    const decoder = this.decoder
    const source = this.source
    const self = this
    return Effect.gen(function*() {
      if (!self.started) {
        self.started = true
        yield* source.continue
      }
      while (true) {
        if (source.start < source.end) {
          const step = decoder.decode(source.buffer, source.start, source.end)
          source.start += step.consumed
          if (step.error !== undefined) {
            return yield* new BodyError({ status: step.error.status, reason: step.error.reason })
          }
          if (step.done) self.done = true
          const data = step.data.filter((d) => d.byteLength > 0)
          if (data.length > 0) {
            self.pending = data.slice(1)
            return Option.some(data[0]!)
          }
          if (self.done) return Option.none()
        }
        if (!(yield* source.fill)) {
          return yield* new BodyError({ status: 400, reason: "connection ended before the body was complete" })
        }
      }
    })
  }

  /** Reads and discards up to `limit` more body bytes; true when the body then ended. */
  drain(limit: number): Effect.Effect<boolean, BodyError> {
    const self = this
    return Effect.gen(function*() {
      const until = self.received + limit
      while (!self.done) {
        if (self.received > until) return false
        yield* self.read
      }
      self.pending = []
      return true
    })
  }
}

const NONE: Effect.Effect<Option.Option<Uint8Array>> = Effect.succeed(Option.none())

/** The reader of every request without a body. */
export const noBody = new BodyReader(undefined, undefined)

const collect = (reader: BodyChunks): Effect.Effect<Uint8Array, BodyError> =>
  Effect.gen(function*() {
    const parts: Array<Uint8Array> = []
    while (true) {
      const chunk = yield* reader.read
      if (Option.isNone(chunk)) return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
      parts.push(chunk.value)
    }
  })

const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("utf8")

/** Where a Request's body comes from: an HTTP/1.1 connection's `BodyReader`, or an HTTP/2 stream's. */
export interface BodyChunks {
  /** The next chunk of the body; None at its end. */
  readonly read: Effect.Effect<Option.Option<Uint8Array>, BodyError>
}

/** What a Request is built from. */
export interface RequestInit {
  readonly method: string
  readonly target: string
  readonly minor: 0 | 1
  readonly headers: Headers
  readonly remote: RemoteAddress
  readonly reader: BodyChunks
}

/** Where the path of an absolute-form target starts (its length when it has none); 0 for other forms. */
const pathStart = (target: string): number => {
  const scheme = target.indexOf("://")
  if (scheme === -1) return 0
  const authorityEnd = target.slice(scheme + 3).search(/[/?#]/)
  return authorityEnd === -1 ? target.length : scheme + 3 + authorityEnd
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({})

/** The Request implementation: cheap to build; body helpers are made when first used. */
class HttpRequest implements Request {
  readonly method: string
  readonly target: string
  readonly path: string
  readonly query: string
  readonly headers: Headers
  readonly minor: 0 | 1
  readonly remote: RemoteAddress
  params: Readonly<Record<string, string>> = NO_PARAMS
  private readonly reader: BodyChunks
  private searchParamsCache: URLSearchParams | undefined
  private bytesCache: Effect.Effect<Uint8Array, BodyError> | undefined

  constructor(options: RequestInit) {
    const target = options.target
    const q = target.indexOf("?")
    this.method = options.method
    this.target = target
    // absolute-form (RFC 9112 §3.2.2, e.g. from a proxy): the path is what follows the authority
    const from = target.charCodeAt(0) === 0x2f ? 0 : pathStart(target)
    const pathEnd = q === -1 ? target.length : q
    this.path = from === 0 ? (q === -1 ? target : target.slice(0, q)) : from < pathEnd ? target.slice(from, pathEnd) : "/"
    this.query = q === -1 ? "" : target.slice(q + 1)
    this.headers = options.headers
    this.minor = options.minor
    this.remote = options.remote
    this.reader = options.reader
  }

  get searchParams(): URLSearchParams {
    return (this.searchParamsCache ??= new URLSearchParams(this.query))
  }

  get body(): Stream.Stream<Uint8Array, BodyError> {
    const reader = this.reader
    return Stream.unfold(undefined, () =>
      reader.read.pipe(Effect.map((chunk) => Option.isNone(chunk) ? undefined : [chunk.value, undefined] as const)))
  }

  get readBody(): Effect.Effect<Option.Option<Uint8Array>, BodyError> {
    return this.reader.read
  }

  get bytes(): Effect.Effect<Uint8Array, BodyError> {
    return (this.bytesCache ??= Effect.cached(collect(this.reader)).pipe(Effect.runSync))
  }

  get text(): Effect.Effect<string, BodyError> {
    return Effect.map(this.bytes, utf8)
  }

  get json(): Effect.Effect<unknown, BodyError> {
    return Effect.flatMap(this.bytes, (b) =>
      Effect.try({
        try: () => JSON.parse(utf8(b)) as unknown,
        catch: () => new BodyError({ status: 400, reason: "body is not valid JSON" })
      }))
  }
}

/** Builds the app's Request. */
export const make = (options: RequestInit): Request => new HttpRequest(options)

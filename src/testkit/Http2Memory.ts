/**
 * Drives an HTTP/2 connection in memory: node:http2's own client over a
 * `MemoryConnection` pair whose server end runs a handler (the HTTP engine
 * with `http2: "prior-knowledge"`). `split` cuts the client's bytes into
 * pieces of the given sizes (cycled) before the server reads them, so a
 * property can check that any split gives the same answers.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as NodeHttp2 from "node:http2"
import { Duplex } from "node:stream"
import type { Connection } from "../io/Connection.ts"
import * as MemoryConnection from "./MemoryConnection.ts"

/** A request to send. */
export interface Http2Request {
  readonly path: string
  readonly method?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: Uint8Array
}

/** What came back for one request: an answer, or the stream's error (a reset) as its code. */
export type Http2Answer =
  | { readonly _tag: "Answer"; readonly status: number; readonly headers: NodeHttp2.IncomingHttpHeaders; readonly body: Buffer }
  | { readonly _tag: "Reset"; readonly code: string }

/** `inner` with every write cut into pieces of `sizes` (cycled; each at least one byte). */
const rechunk = (inner: Duplex, sizes: ReadonlyArray<number>): Duplex => {
  let k = 0
  const outer = new Duplex({
    read() {
      inner.resume()
    },
    write(chunk: Buffer, _encoding, done) {
      let at = 0
      while (at < chunk.byteLength) {
        const n = Math.max(1, sizes[k++ % sizes.length]!)
        inner.write(chunk.subarray(at, at + n))
        at += n
      }
      done()
    },
    final(done) {
      inner.end()
      done()
    },
    destroy(error, done) {
      inner.destroy()
      done(error)
    }
  })
  inner.on("data", (chunk: Buffer) => {
    if (!outer.push(chunk)) inner.pause()
  })
  inner.on("end", () => outer.push(null))
  inner.on("error", (error) => outer.destroy(error))
  return outer
}

const ask = (session: NodeHttp2.ClientHttp2Session, request: Http2Request) =>
  new Promise<Http2Answer>((resolve) => {
    const stream = session.request(
      { ":path": request.path, ":method": request.method ?? "GET", ...request.headers },
      { endStream: request.body === undefined }
    )
    let status = 0
    let headers: NodeHttp2.IncomingHttpHeaders = {}
    const parts: Array<Buffer> = []
    stream.on("response", (h) => {
      headers = h
      status = Number(h[":status"])
    })
    stream.on("data", (d: Buffer) => parts.push(d))
    stream.on("end", () => resolve({ _tag: "Answer", status, headers, body: Buffer.concat(parts) }))
    stream.on("error", (e: NodeJS.ErrnoException) => resolve({ _tag: "Reset", code: e.code ?? String(e) }))
    if (request.body !== undefined) stream.end(request.body)
  })

/**
 * Opens one HTTP/2 connection to `handler` in memory, sends `requests` at
 * once (multiplexed) and returns their answers in the same order.
 *
 * @example
 * const app = Router.make([Router.get("/hello", () => Effect.succeed(Response.text("hi")))])
 * const http = yield* Serve.make(app, { http2: "prior-knowledge" })
 * const [answer] = yield* Http2Memory.exchange(http.handler, [{ path: "/hello" }], { split: [1] })
 */
export const exchange = <R>(
  handler: (conn: Connection) => Effect.Effect<void, never, R>,
  requests: ReadonlyArray<Http2Request>,
  options: { readonly split?: ReadonlyArray<number> } = {}
): Effect.Effect<ReadonlyArray<Http2Answer>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const pair = MemoryConnection.makePair()
    yield* Effect.forkScoped(handler(pair.server))
    const socket = pair.client.detach(new Uint8Array(0))
    const wire = options.split === undefined || options.split.length === 0 ? socket : rechunk(socket, options.split)
    const session = NodeHttp2.connect("http://memory", { createConnection: () => wire })
    session.on("error", () => {}) // a broken session shows as the streams' resets
    yield* Effect.addFinalizer(() => Effect.sync(() => session.destroy()))
    return yield* Effect.promise(async () => {
      const answers = await Promise.all(requests.map((r) => ask(session, r)))
      await new Promise<void>((resolve) => session.close(() => resolve()))
      return answers
    })
  })

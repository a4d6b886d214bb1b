// An existing Effect application adds fiberd: HTTP on one port, a line protocol on another,
// an access log, all as Layers. Run it: node examples/embedding.ts  (HTTP :8081, lines :7071)
import { NodeRuntime } from "@effect/platform-node"
import { Context, Effect, Layer, Option } from "effect"
import { AccessLog, Codec, type Connection, HttpServer, Lines as LineFrames, Listener, Response, Router } from "fiberd"

// ---- the application's own service and layer (what the team already had) ----
export class Greetings extends Context.Service<Greetings, {
  readonly greet: (name: string) => Effect.Effect<string>
  readonly count: Effect.Effect<number>
}>()("app/Greetings") {
  static readonly layer = Layer.sync(Greetings, () => {
    let n = 0
    return Greetings.of({
      greet: (name) => Effect.sync(() => `hello, ${name} (#${++n})`),
      count: Effect.sync(() => n)
    })
  })
}

// ---- fiberd pieces ----
// HTTP routes that need Greetings: the layer's type carries that requirement until provided
const app = Router.make([
  Router.get("/hello/:name", (req) =>
    Greetings.use((g) => g.greet(req.params.name!)).pipe(Effect.map((text) => Response.text(text + "\n")))),
  Router.get("/count", () => Greetings.use((g) => g.count).pipe(Effect.map((n) => Response.json({ greetings: n }))))
])

// A line protocol: each line is answered with a greeting (the Lines codec decodes whole lines, so a
// character split across two reads is never corrupted)
const lines = (conn: Connection) =>
  Effect.gen(function*() {
    const next = Codec.reader(conn, new LineFrames.Decoder({ maxLength: 256 }))
    while (true) {
      const line = yield* next
      if (Option.isNone(line)) return yield* conn.endWrite
      if (line.value._tag === "TooLong") continue
      const name = line.value.text.trim()
      yield* conn.write(Buffer.from((yield* Greetings.use((g) => g.greet(name))) + "\n"))
    }
  })

export class Web extends Context.Service<Web, HttpServer.HttpServer>()("app/Web") {}
export class Lines extends Context.Service<Lines, Listener.Listener>()("app/Lines") {}

/** fiberd, as layers of the application, on the given ports (0: any free port). */
export const FiberdLive = (options: { readonly httpPort: number; readonly linePort: number; readonly accessLog: string }) =>
  Layer.unwrap(Effect.gen(function*() {
    const accessLog = yield* AccessLog.AccessLog
    return Layer.mergeAll(
      HttpServer.layerAs(Web)(app, { listen: { name: "web", port: options.httpPort }, http: { accessLog } }),
      Listener.layerAs(Lines)({ name: "lines", port: options.linePort }, lines)
    )
  })).pipe(Layer.provideMerge(AccessLog.layer({ path: options.accessLog, format: "common" })))

/** The whole application: its own layers plus fiberd's. */
export const AppLive = (options: Parameters<typeof FiberdLive>[0]) =>
  FiberdLive(options).pipe(Layer.provideMerge(Greetings.layer))

if (import.meta.main) {
  const main = Effect.gen(function*() {
    const web = yield* Web
    const lines = yield* Lines
    yield* Effect.log(`http on ${Listener.formatAddress(web.listener.address)}, lines on ${Listener.formatAddress(lines.address)}`)
    return yield* Effect.never
  })
  NodeRuntime.runMain(main.pipe(Effect.provide(AppLive({ httpPort: 8081, linePort: 7071, accessLog: "logs/embedding-access.log" }))))
}

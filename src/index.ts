/**
 * fiberd: network servers as Effect fibers. The public API.
 */

/** The Connection contract every protocol handler sees, its errors, and the Handler type. */
export {
  type Connection,
  ConnectionClosed,
  type ConnectionError,
  ConnectionFailed,
  ConnectionReset,
  ConnectionTimeout,
  type Handler,
  DrainSignal,
  consumeChunk,
  isConnectionError,
  type ReadWithOutcome,
  type RemoteAddress
} from "./io/Connection.ts"

/** WebSocket (RFC 6455) routes: the socket a route's fiber sees, the handshake check, the frame codec. */
export * as WebSocket from "./protocols/websocket/WebSocket.ts"
export * as WebSocketFrame from "./protocols/websocket/Frame.ts"

/** TLS for listeners: options (certificate files, SNI, ALPN), what a handler learns (`conn.tls`), config errors. */
export * as Tls from "./io/Tls.ts"

/** TCP / Unix-socket listener: accept loop, limits, idle timeout, drain. */
export * as Listener from "./io/Listener.ts"

/** Per-listener counters, live and read-only (also published as Effect metrics). */
export type { ListenerCounters } from "./io/ListenerStats.ts"

/** The echo protocol (RFC 862). */
export * as Echo from "./protocols/echo.ts"

/** The daytime protocol (RFC 867). */
export * as Daytime from "./protocols/daytime.ts"

/** Actors: a fiber with a mailbox (bounded / dropping / sliding / unbounded), tell / ask / stop. */
export * as Actor from "./actors/Actor.ts"

/** OTP-style supervisors: strategies, restart types, intensity, back-off, dynamic children. */
export * as Supervisor from "./actors/Supervisor.ts"

/** CPU offload: a worker-thread pool running an `effect/rpc` group's handlers; typed busy/crash/failure errors. */
export * as Offload from "./actors/Offload.ts"

/** The batching log-writer actor behind the access and error logs. */
export * as LogWriter from "./actors/LogWriter.ts"

/** The access log (Common / Combined Log Format). */
export * as AccessLog from "./actors/AccessLog.ts"

/** The error log: an Effect Logger feeding a log actor (text / JSON, syslog severities, optional syslog UDP). */
export * as ErrorLog from "./actors/ErrorLog.ts"

/** UDP listeners: a fiber per datagram, and per-peer sessions that expire. */
export * as Udp from "./io/Udp.ts"

/** The HTTP types an application names: `Http.App<E, R>`, `Http.Request`, `Http.Response`, `Http.Headers`. */
export * as Http from "./protocols/http/Http.ts"

/** HTTP/1.1 and HTTP/2: the connection engine (`Serve`), the server on a listener (`HttpServer`, with Layers). */
export * as Serve from "./protocols/http/Serve.ts"
export * as HttpServer from "./protocols/http/Server.ts"

/** HTTP/2's counters (`Http2Stats`) and the preface rule of prior knowledge (`prefaceOf`). */
export * as Http2 from "./protocols/http/Http2.ts"

/** HTTP requests as the app sees them (also as `HttpRequest`, a name that does not shadow the web-standard `Request`). */
export * as Request from "./protocols/http/Request.ts"
export * as HttpRequest from "./protocols/http/Request.ts"

/** HTTP responses and their helpers: text, html, json, bytes, stream, status, redirect (also as `HttpResponse`). */
export * as Response from "./protocols/http/Response.ts"
export * as HttpResponse from "./protocols/http/Response.ts"

/** HTTP middleware (`App => App`): CORS, basic/bearer guards, request logging, gzip/brotli compression. */
export * as Middleware from "./protocols/http/Middleware.ts"

/** A thin router: method + path pattern. */
export * as Router from "./protocols/http/Router.ts"

/** Static files confined to a root, with validators, ranges and a small-file cache. */
export * as StaticFiles from "./protocols/http/StaticFiles.ts"

/** The strict incremental HTTP/1.1 request parser (pure). */
export * as HttpParser from "./protocols/http/Parser.ts"

/** Framing codecs: pure incremental decoders for every chunking, and `Codec.reader` to pull frames from a Connection. */
export * as Codec from "./protocols/codecs/Codec.ts"
/** Lines (LF or CRLF, UTF-8 decoded whole, bounded length). */
export * as Lines from "./protocols/codecs/Lines.ts"
/** Length-prefixed frames (u8 / u16 / u32 big-endian prefix, bounded size). */
export * as LengthPrefixed from "./protocols/codecs/LengthPrefixed.ts"
/** Delimiter-terminated frames (e.g. NUL), the general case. */
export * as Delimited from "./protocols/codecs/Delimited.ts"

/** The chat service: rooms as actors. */
export * as Chat from "./protocols/chat/Chat.ts"

/** inetd-style exec services. */
export * as Exec from "./protocols/exec.ts"

/** The service table (schema, defaults, loading) and the runtime that runs one. */
export * as ServiceTable from "./runtime/ServiceTable.ts"
export * as Runtime from "./runtime/Runtime.ts"

/** The /_status page. */
export * as Status from "./runtime/Status.ts"

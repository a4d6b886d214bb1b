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
  isConnectionError,
  type RemoteAddress
} from "./io/Connection.ts"

/** TCP / Unix-socket listener: accept loop, limits, idle timeout, drain. */
export * as Listener from "./io/Listener.ts"

/** Per-listener counters (also published as Effect metrics). */
export { ListenerStats, type ListenerStatsSnapshot } from "./io/ListenerStats.ts"

/** The echo protocol (RFC 862). */
export * as Echo from "./protocols/echo.ts"

/** The daytime protocol (RFC 867). */
export * as Daytime from "./protocols/daytime.ts"

/** Actors: a fiber with a mailbox (bounded / dropping / sliding / unbounded), tell / ask / stop. */
export * as Actor from "./actors/Actor.ts"

/** OTP-style supervisors: strategies, restart types, intensity, back-off, dynamic children. */
export * as Supervisor from "./actors/Supervisor.ts"

/** The batching log-writer actor behind the access and error logs. */
export * as LogWriter from "./actors/LogWriter.ts"

/** The access log (Common / Combined Log Format). */
export * as AccessLog from "./actors/AccessLog.ts"

/** The error log: an Effect Logger feeding a log actor (text / JSON, syslog severities, optional syslog UDP). */
export * as ErrorLog from "./actors/ErrorLog.ts"

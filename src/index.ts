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

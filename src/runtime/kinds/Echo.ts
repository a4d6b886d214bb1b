/** The echo (RFC 862) and daytime (RFC 867) kinds: over TCP, TLS, a Unix socket, or UDP (a fiber per datagram). */
import { Effect, Schema } from "effect"
import type { Connection } from "../../io/Connection.ts"
import * as Udp from "../../io/Udp.ts"
import * as Daytime from "../../protocols/daytime.ts"
import * as EchoProtocol from "../../protocols/echo.ts"
import { type Address, type CommonService, common, type Deps, entryBase, kind, listen, parseListen } from "./Kind.ts"

/** A stream handler over a connection, or a datagram one over UDP. */
const streamOrDatagram = <E>(
  service: CommonService,
  deps: Deps,
  handler: (conn: Connection) => Effect.Effect<void, E>,
  datagram: Udp.DatagramHandler
) =>
  Effect.gen(function*() {
    if (service.transport !== "udp") return yield* listen(service, deps, handler)
    const address = parseListen(service.listen, "udp") as Extract<Address, { _tag: "inet" }>
    const inheritedFd = deps.options.inherited?.get(service.name)
    const udp = yield* Udp.make({ name: service.name, host: address.host, port: address.port, ...(inheritedFd !== undefined ? { inheritedFd } : {}) }, datagram)
    const host = udp.address.family === "IPv6" ? `[${udp.address.host}]` : udp.address.host
    return { ...entryBase(service, deps), address: `${host}:${udp.address.port}`, udp: udp.stats }
  })

export const echo = kind({
  schema: Schema.Struct({ ...common, protocol: Schema.Literal("echo") }),
  start: (service, deps) => streamOrDatagram(service, deps, EchoProtocol.handler, EchoProtocol.datagram)
})

export const daytime = kind({
  schema: Schema.Struct({ ...common, protocol: Schema.Literal("daytime") }),
  start: (service, deps) => streamOrDatagram(service, deps, Daytime.handler, Daytime.datagram)
})

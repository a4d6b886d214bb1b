/**
 * A WebSocket chat member whose rooms live in another process. With prefork
 * workers, chat services run in the primary (one set of rooms for the whole
 * server); an http worker's `GET /chat` bridges each WebSocket member to the
 * chat service's own TCP port: a text message goes there as one line, each
 * line that comes back goes out as one message. The chat sees an ordinary
 * TCP member, with the same nick, rooms, commands and outbox limits.
 */
import { type Cause, Effect, Queue } from "effect"
import * as Net from "node:net"
import type * as WebSocket from "../protocols/websocket/WebSocket.ts"
import { parseListen } from "./kinds/Kind.ts"

/** Lines waiting for the WebSocket before the TCP side is paused. */
const HIGH_WATER = 256

/** Where to connect for a chat service's listen address (not host:port: a Unix socket path); a wildcard host means this machine's loopback. */
const target = (listen: string): Net.NetConnectOpts => {
  const address = parseListen(listen, "tcp")
  if (typeof address === "string" || address._tag === "unix") return { path: listen }
  const host = address.host === "0.0.0.0" ? "127.0.0.1" : address.host === "::" ? "::1" : address.host
  return { host, port: address.port }
}

const connect = (options: Net.NetConnectOpts) =>
  Effect.callback<Net.Socket, Error>((resume) => {
    const socket = Net.connect(options)
    const onError = (error: Error) => resume(Effect.fail(error))
    socket.once("error", onError)
    socket.once("connect", () => {
      socket.removeListener("error", onError)
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.destroy())
  })

/** The route handler for `GET /chat` when the chat service `listen`s in another process. */
export const bridge = (listen: string) => (socket: WebSocket.WebSocket): Effect.Effect<void> =>
  Effect.gen(function*() {
    const tcp = yield* Effect.acquireRelease(connect(target(listen)), (s) => Effect.sync(() => s.destroy()))
    const lines = yield* Queue.unbounded<string, Cause.Done>()
    let pending = ""
    tcp.setEncoding("utf8")
    tcp.on("data", (text: string) => {
      const parts = (pending + text).split("\n")
      pending = parts.pop()!
      for (const line of parts) Queue.offerUnsafe(lines, line.replace(/\r$/, ""))
      if (Queue.sizeUnsafe(lines) > HIGH_WATER) tcp.pause()
    })
    tcp.on("close", () => Queue.endUnsafe(lines))
    tcp.on("error", () => Queue.endUnsafe(lines))
    // chat → member
    const down = Effect.gen(function*() {
      while (true) {
        const line = yield* Queue.take(lines)
        if (tcp.isPaused() && Queue.sizeUnsafe(lines) < HIGH_WATER / 4) tcp.resume()
        yield* socket.send(line)
      }
    }).pipe(Effect.catch(() => socket.close(1000)))
    // member → chat: one message, one line
    const up = Effect.gen(function*() {
      while (true) {
        const message = yield* socket.receive
        if (message._tag === "None") return tcp.end()
        if (typeof message.value === "string") tcp.write(message.value.replace(/\r?\n$/, "").replace(/[\r\n]/g, " ") + "\r\n")
      }
    }).pipe(Effect.catch(() => Effect.sync(() => tcp.end())))
    yield* Effect.all([down, up], { concurrency: 2, discard: true })
  }).pipe(
    Effect.scoped,
    Effect.catch((error) => socket.close(1011, `the chat service is not reachable (${error.message})`))
  )

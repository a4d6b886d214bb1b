/** The chat kind: rooms in this process (or the cluster's), members over TCP here and over WebSocket on http services. */
import { Effect, Schema } from "effect"
import * as ChatProtocol from "../../protocols/chat/Chat.ts"
import { common, kind, listen } from "./Kind.ts"

export const chat = kind({
  schema: Schema.Struct({ ...common, protocol: Schema.Literal("chat"), ...ChatProtocol.options.schema.fields }),
  start: (service, deps) =>
    Effect.gen(function*() {
      const chat = yield* ChatProtocol.make({ ...service, ...(deps.clusterRooms !== undefined ? { rooms: deps.clusterRooms } : {}) })
      deps.chats.set(service.name, chat)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (deps.chats.get(service.name) === chat) deps.chats.delete(service.name)
        })
      )
      const entry = yield* listen(service, deps, chat.handler)
      return chat.children === undefined ? entry : { ...entry, children: chat.children }
    })
})

/**
 * What the fiberd program adds to an http service, apart from the library:
 * the site it serves (the bundled one by default), who may read its status
 * page, and the bundled site's routes — `GET /api/pbkdf2` (CPU work on the
 * offload pool) and `GET /chat` (a WebSocket member of a chat service, in
 * this process or, in a prefork worker, bridged to the primary's).
 */
import { Schema } from "effect"
import * as Path from "node:path"
import * as Options from "../core/Options.ts"
import * as Router from "../protocols/http/Router.ts"
import * as ChatBridge from "./ChatBridge.ts"
import type { Deps } from "./kinds/Kind.ts"
import * as Pbkdf2Route from "./Pbkdf2Route.ts"

/** The bundled site, served when a service names no `root`. */
export const publicDir = Path.resolve(import.meta.dirname, "../../public")

/** An http service's program keys. */
export const options = Options.declare({
  root: Options.option(Schema.String, "the directory served (default: the bundled site)"),
  status: Options.option(Schema.Literals(["loopback", "any", "off"]), "who may read /_status and /metrics: loopback peers, anyone, or nobody", "loopback"),
  chat: Options.option(Schema.String, "the chat service whose rooms GET /chat (WebSocket) joins"),
  redirect: Options.option(
    Schema.String.check(Schema.isPattern(/^https?:\/\/[^/?#\s]+\/?$/, { message: "an origin such as \"https://example.org\"" })),
    "send every request to this origin (`https://example.org`), path and query kept (301, or 308 for other methods than GET and HEAD); ACME challenges (`/.well-known/acme-challenge/`) are still served from `root`"
  )
})

/** The bundled site's routes for a service: /api/pbkdf2 and, when it names a chat service, /chat. */
export const routes = (site: { readonly chat?: string }, deps: Deps) => {
  const chatName = site.chat
  const remote = chatName === undefined ? undefined : deps.options.remoteChats?.[chatName]
  return [
    Router.get("/api/pbkdf2", Pbkdf2Route.app(deps.offload)),
    // GET /chat joins the rooms of the chat service named by `chat`, looked up per connection (it may restart, or reload, on its own)
    ...(chatName === undefined ? [] : [
      Router.ws("/chat", remote !== undefined ? ChatBridge.bridge(remote) : (socket) => {
        const chat = deps.chats.get(chatName)
        return chat === undefined ? socket.close(1011, `the chat service ${chatName} is not running`) : chat.websocket(socket)
      })
    ])
  ]
}

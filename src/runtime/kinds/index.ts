/**
 * The registry of service kinds: the table's service entry is the union of
 * their schemas, and a service starts through its kind. A new protocol is a
 * new module here, added to this list.
 */
import { Effect, Schema, type Scope } from "effect"
import type * as Status from "../Status.ts"
import { StartError } from "../StartError.ts"
import { chat } from "./Chat.ts"
import { daytime, echo } from "./Echo.ts"
import { exec } from "./Exec.ts"
import { http } from "./Http.ts"
import type { Deps } from "./Kind.ts"

/** Every kind, by the protocol its table entries name. */
export const kinds = { http, echo, daytime, chat, exec }

/** The protocols a service may name. */
export const protocols = Object.keys(kinds) as ReadonlyArray<keyof typeof kinds>

/** One service of the table: a union on `protocol`. */
export const Service = Schema.Union([http.schema, echo.schema, daytime.schema, chat.schema, exec.schema])
export type Service = typeof Service.Type

/** Starts one service in the current scope through its kind; returns what the status page shows. */
export const start = (service: Service, deps: Deps): Effect.Effect<Status.ServiceEntry, StartError, Scope.Scope> =>
  (kinds[service.protocol].start as (s: Service, d: Deps) => Effect.Effect<Status.ServiceEntry, { readonly message: string }, Scope.Scope>)(service, deps)
    .pipe(Effect.mapError((e) => new StartError({ service: service.name, reason: e.message })))

/**
 * `GET /api/pbkdf2?rounds=N`: the bundled server's CPU-heavy example. The
 * digest is computed on the offload pool, so the loop keeps serving everyone
 * else while it runs; `&inline=1` computes it on the loop itself, to show
 * the difference (every other connection of the process waits meanwhile).
 * `rounds` is an integer from 1 to `maxRounds` (400 otherwise).
 */
import { Effect } from "effect"
import * as Crypto from "node:crypto"
import type { Request } from "../protocols/http/Request.ts"
import * as Res from "../protocols/http/Response.ts"
import type { Pbkdf2Pool } from "./Pbkdf2Jobs.ts"

/** The fixed password and salt every digest is derived from. */
const password = "fiberd"
const salt = "fiberd offload example"

/** The derived key's hex digest (32 bytes) after `rounds` iterations: the work itself, on whichever thread calls it. */
export const digest = (rounds: number): string => Crypto.pbkdf2Sync(password, salt, rounds, 32, "sha256").toString("hex")

/** The most rounds one request may ask for (about a second of CPU here). */
export const maxRounds = 2_000_000

const noStore: ReadonlyArray<readonly [string, string]> = [["Cache-Control", "no-store"]]
const badRequest = (why: string) => Effect.succeed(Res.text(`400 Bad Request: ${why}\n`, { status: 400, headers: noStore }))
const unavailable = (why: string) => Effect.succeed(Res.text(`503 Service Unavailable: ${why}\n`, { status: 503, headers: [...noStore, ["Retry-After", "1"]] }))

/** The route's app; `offload` undefined (a table with `offload.threads: 0`) allows only `inline=1`. */
export const app = (offload: Pbkdf2Pool | undefined) =>
(request: Request): Effect.Effect<Res.Response> => {
  const text = request.searchParams.get("rounds")
  if (text === null) return badRequest(`give the number of rounds: /api/pbkdf2?rounds=N (1 to ${maxRounds})`)
  const rounds = /^[0-9]{1,8}$/.test(text) ? Number(text) : Number.NaN
  if (!(rounds >= 1 && rounds <= maxRounds)) return badRequest(`rounds must be an integer from 1 to ${maxRounds}, got ${JSON.stringify(text.slice(0, 40))}`)
  const answer = (hex: string) => Res.text(`${hex}\n`, { headers: noStore })
  if (request.searchParams.get("inline") === "1") return Effect.sync(() => answer(digest(rounds)))
  if (offload === undefined) return unavailable("the offload pool is off (offload.threads is 0); add inline=1 to compute on the loop")
  // PBKDF2 is a pure function: re-running it after a thread crash is safe
  return offload.run((jobs) => jobs.Pbkdf2({ rounds }), { retries: 1 }).pipe(
    Effect.map(answer),
    Effect.catchTags({
      OffloadBusy: () => unavailable("the offload pool is full"),
      OffloadCrashed: () => unavailable("a worker thread died twice in a row"),
      OffloadFailed: (e) => Effect.succeed(Res.text(`500 Internal Server Error: ${e.reason}\n`, { status: 500, headers: noStore }))
    })
  )
}

/**
 * Chat rooms over several nodes, the node side: a `RoomDirectory` whose rooms
 * are `ChatRoom` entities (`ClusterRoom`). A member's connection fiber stays
 * on the node it connected to.
 *
 * Per room with local members the node keeps one link: a subscription (the
 * room's lines come once to this node, which hands them to its members) and a
 * sender (its members' lines go out in batches, in order, one batch in
 * flight). When the subscription breaks — the room's shard moved because a
 * node joined or left, or its node died — the link subscribes again where the
 * room lives now (or resyncs the subscription the cluster re-routed there),
 * with its members (the room learns its membership back), and
 * then re-sends the lines the room took in the last `resendWindow` before the
 * break, ahead of any new line; the room and every node drop what they
 * already had by the senders' line numbers. A line the room did not take
 * within `requestTimeout` is given up and its sender told which. A member's
 * other commands (/nick, /who, /part) wait until its lines went out, so
 * everything a member does reaches the room in the order it did it.
 */
import { Cause, Deferred, Duration, Effect, Exit, Option, Schema, Scope, Stream } from "effect"
import type { Sharding } from "effect/cluster"
import { ChatRoom, type Line, NickTaken, type Out, Resubscribe } from "./ClusterRoom.ts"
import * as Rooms from "./Rooms.ts"

export { entityLayer, Hosted } from "./ClusterRoom.ts"

/** How members reach the rooms. */
export interface ClusterRoomsOptions {
  /** This node's name in member keys (its runner address): member ids are unique per node. */
  readonly node: string
  readonly hosted: { readonly rooms: ReadonlySet<string> }
  /** How long a line, /nick, /who or a join may wait for the room (moving to another node) before the member is told it failed. Default 15 s. */
  readonly requestTimeout?: Duration.Input
  /** Lines the room took this recently before a subscription broke are sent again where it lives now. Default 2 s. */
  readonly resendWindow?: Duration.Input
}

/** A member of a room on this node. */
interface Local {
  readonly member: Rooms.Member
  readonly key: string
  /** Known to the room (its join was answered). */
  joined: boolean
  /** Still gets the room's lines (not released). */
  receiving: boolean
  readonly released: Deferred.Deferred<void>
  /** Its lines not yet taken (or given up), and who waits for none to be left. */
  pending: number
  readonly flushed: Array<Deferred.Deferred<void>>
}

interface Outgoing {
  readonly line: Line
  readonly local: Local
}

const MAX_RECENT = 20_000
const MAX_BATCH = 4096

/** A `RoomDirectory` whose rooms are `ChatRoom` entities of the cluster. */
export const make = (options: ClusterRoomsOptions): Effect.Effect<Rooms.RoomDirectory, never, Sharding.Sharding | Scope.Scope> =>
  Effect.gen(function*() {
    const clientFor = yield* ChatRoom.client
    const timeout = Duration.fromInputUnsafe(options.requestTimeout ?? "15 seconds")
    const windowMillis = Duration.toMillis(Duration.fromInputUnsafe(options.resendWindow ?? "2 seconds"))
    const scope = yield* Effect.scope
    const node = options.node
    const links = new Map<string, ReturnType<typeof openLink>>()
    // line numbers grow across rooms and restarts of this node (a member key can come back after one)
    let lineSeq = Date.now() * 1000

    const openLink = (name: string, linkScope: Scope.Closeable) => {
      const room = clientFor(name)
      const members = new Map<string, Local>()
      let epoch = 0
      /** The room instance this node's subscription reached (from its Host item). */
      let instance = ""
      let ready = Deferred.makeUnsafe<void>()
      let subscribedBefore = false
      let resend = false
      let closing = false
      /** Lines the room took, newest last: sent again after the subscription broke. */
      const recent: Array<{ readonly line: Line; readonly at: number }> = []
      const outgoing: Array<Outgoing> = []
      let wake = Deferred.makeUnsafe<void>()
      /** The room's members as this node last heard (sent back with each subscription: presence across a crash). */
      const roster = new Map<string, string>()
      /** The last line number delivered here from each sender: a line re-sent after a move is dropped once seen. */
      const delivered = new Map<string, number>()

      const deliver = (local: Local, line: string) => {
        if (local.receiving && !local.member.send(line)) slow(local)
      }
      /** Members this node dropped for not reading: the sender tells the room. */
      const slowKeys: Array<string> = []
      const slow = (local: Local) => {
        local.receiving = false
        local.member.kick("you are not reading fast enough")
        slowKeys.push(local.key)
        Deferred.doneUnsafe(wake, Exit.void)
      }
      /** The subscription reached a room instance: requests may go, after the lines to send again. */
      const reached = (at: string, members: ReadonlyArray<{ readonly member: string; readonly nick: string }>) => {
        instance = at
        roster.clear()
        for (const m of members) roster.set(m.member, m.nick)
        resend = subscribedBefore
        subscribedBefore = true
        Deferred.doneUnsafe(ready, Exit.void)
        Deferred.doneUnsafe(wake, Exit.void)
      }
      const onOut = (out: Exclude<Out, { readonly _tag: "Host" }>) => {
        switch (out._tag) {
          case "Roster":
            // (`delivered` keeps a member that left: a room rebuilt after a move drops and re-adds members
            // silently, and their lines sent again must still be recognised)
            if (out.nick === undefined) roster.delete(out.member)
            else roster.set(out.member, out.nick)
            return
          case "Broadcast": {
            if (out.from !== undefined && out.seq !== undefined) {
              if (out.seq <= (delivered.get(out.from) ?? 0)) return // seen before the room moved
              delivered.set(out.from, out.seq)
            }
            for (const local of members.values()) if (local.key !== out.except) deliver(local, out.line)
            return
          }
          case "Tell": {
            const local = members.get(out.to)
            if (local !== undefined) deliver(local, out.line)
            return
          }
          case "Release": {
            const local = members.get(out.key)
            if (local === undefined) return
            if (out.dropped !== undefined && local.receiving) local.member.kick(out.dropped)
            local.receiving = false
            Deferred.doneUnsafe(local.released, Exit.void)
            delivered.delete(out.key)
          }
        }
      }

      const known = () => [...roster].map(([member, nick]) => ({ member, nick }))
      /** The members the room should know from this node. */
      const current = () => [...members.values()].filter((m) => m.joined && m.receiving).map((m) => ({ member: m.key, nick: m.member.nick }))

      /** The subscription, made again whenever it breaks (the room moved, its node died) until the link closes. */
      const subscribe = Effect.gen(function*() {
        let failures = 0
        /** When the subscription last worked (it is given up after a minute without). */
        let lastUp = Date.now()
        while (!closing) {
          const mine = ++epoch
          const ours = current()
          let hosts = 0
          // it ends (the room moved: its old node interrupts the subscriptions) or fails (its node died)
          yield* Effect.exit(room.Subscribe({ node, epoch: mine, members: ours, roster: known() }).pipe(
            Stream.runForEach((out) => {
              failures = 0
              lastUp = Date.now()
              if (out._tag !== "Host") return Effect.sync(() => onOut(out))
              if (++hosts === 1) return Effect.sync(() => reached(out.instance, out.roster))
              // the room's node died and the cluster sent this subscription to where the room lives now, with
              // the members it had then: tell the room the members of now, under a new epoch
              if (Deferred.isDoneUnsafe(ready)) ready = Deferred.makeUnsafe()
              const next = ++epoch
              const members = current()
              return room.Resync({ node, epoch: next, instance: out.instance, members, roster: known() }).pipe(
                Effect.andThen(Effect.sync(() => reached(out.instance, out.roster)))
              )
            })
          ))
          if (Deferred.isDoneUnsafe(ready)) ready = Deferred.makeUnsafe()
          if (closing) return
          // subscribe again: retried often (cheap, and the room is back sooner after its node died); when no node
          // can host the room for a minute, its members are told and let go
          failures++
          if (Date.now() - lastUp > 60_000) {
            for (const local of members.values()) local.member.kick(`#${name} is not reachable`)
            return
          }
          yield* Effect.sleep(Duration.millis(Math.min(200, 25 * 2 ** Math.min(failures, 3))))
        }
      })

      /** Waits for the current subscription, then runs `request` with its epoch; asks again after Resubscribe, up to `timeout`. */
      const whenSubscribed = <A, E>(request: (at: { readonly node: string; readonly epoch: number; readonly instance: string }) => Effect.Effect<A, E>): Effect.Effect<A, E | Resubscribe | Cause.TimeoutError> =>
        Effect.gen(function*() {
          for (let attempt = 0;; attempt++) {
            yield* Deferred.await(ready)
            const exit = yield* Effect.exit(request({ node, epoch, instance }))
            if (Exit.isSuccess(exit)) return exit.value
            const error = exit.cause.reasons.find((r) => r._tag === "Fail")
            if (error === undefined || Schema.is(NickTaken)(error.error)) return yield* exit
            // refused (not subscribed there yet) or lost on the way: once the subscription is back, again
            yield* Effect.sleep(Duration.millis(Math.min(100, 10 * 2 ** Math.min(attempt, 4))))
          }
        }).pipe(Effect.timeout(timeout))

      const finish = (batch: ReadonlyArray<Outgoing>) => {
        for (const { local } of batch) {
          if (--local.pending === 0) for (const waiter of local.flushed.splice(0)) Deferred.doneUnsafe(waiter, Exit.void)
        }
      }

      /** The sender: members' lines in order, in batches, one batch in flight. */
      const send = Effect.gen(function*() {
        while (true) {
          for (const member of slowKeys.splice(0)) yield* Effect.ignore(room.Slow({ node, member }))
          // after a move the lines to send again go out at once, new lines or not
          if (outgoing.length === 0 && !(resend && recent.length > 0 && Deferred.isDoneUnsafe(ready))) {
            if (slowKeys.length > 0) continue
            yield* Deferred.await(wake)
            wake = Deferred.makeUnsafe()
            continue
          }
          const batch = outgoing.splice(0, MAX_BATCH)
          const lines = batch.map((o) => o.line)
          const sent = yield* Effect.exit(whenSubscribed((at) => {
            const again = resend ? recent.map((r) => r.line) : []
            resend = false
            return room.Say({ ...at, lines: again.length === 0 ? lines : [...again, ...lines] }).pipe(
              Effect.tapError(() => Effect.sync(() => (resend ||= again.length > 0)))
            )
          }))
          if (Exit.isSuccess(sent)) {
            const now = Date.now()
            for (const line of lines) recent.push({ line, at: now })
            let old = 0
            while (old < recent.length && (now - recent[old]!.at > windowMillis || recent.length - old > MAX_RECENT)) old++
            if (old > 0) recent.splice(0, old)
          } else {
            for (const { line, local } of batch) {
              local.member.send(`*** error: your line "${line.text.slice(0, 60)}" was not delivered to #${name} (it is moving to another node); send it again`)
            }
          }
          finish(batch)
        }
      })

      const say = (local: Local, text: string) =>
        Effect.sync(() => {
          local.pending++
          outgoing.push({ line: { member: local.key, seq: ++lineSeq, text }, local })
          Deferred.doneUnsafe(wake, Exit.void)
        })
      /** Waits until the member's lines went out (or were given up). */
      const flushed = (local: Local) =>
        Effect.suspend(() => {
          if (local.pending === 0) return Effect.void
          const waiter = Deferred.makeUnsafe<void>()
          local.flushed.push(waiter)
          return Deferred.await(waiter)
        })

      const close = Effect.suspend(() => {
        closing = true
        if (links.get(name)?.close === close) links.delete(name)
        return Scope.close(linkScope, Exit.void)
      })

      return { name, room, members, say, flushed, whenSubscribed, close, isClosing: () => closing, subscribe, send }
    }

    /** The link to room `name`, opened with its fibers when there is none. */
    const linkFor = (name: string) =>
      Effect.gen(function*() {
        const existing = links.get(name)
        if (existing !== undefined && !existing.isClosing()) return existing
        const linkScope = yield* Scope.fork(scope)
        const link = openLink(name, linkScope)
        links.set(name, link)
        yield* Effect.forkIn(link.subscribe, linkScope)
        yield* Effect.forkIn(link.send, linkScope)
        return link
      })

    const describe = (e: unknown) => (e as { _tag?: string })._tag ?? String(e)

    const join = (member: Rooms.Member, name: string): Effect.Effect<Rooms.JoinResult, never, Scope.Scope> =>
      Effect.gen(function*() {
        const link = yield* linkFor(name)
        const key = `${node}/${member.id}`
        const local: Local = { member, key, joined: false, receiving: true, released: Deferred.makeUnsafe(), pending: 0, flushed: [] }
        // getting lines before the join is answered: the member sees its own "joined" line
        link.members.set(key, local)
        const joined = yield* Effect.exit(link.whenSubscribed((at) => link.room.Join({ ...at, member: key, nick: member.nick })))
        if (Exit.isFailure(joined)) {
          link.members.delete(key)
          if (link.members.size === 0) yield* link.close
          const error = joined.cause.reasons.find((r) => r._tag === "Fail")
          if (error !== undefined && Schema.is(NickTaken)(error.error)) return { _tag: "Refused", reason: Rooms.nickTaken(member.nick, name) } as const
          return { _tag: "Refused", reason: `#${name} is not reachable; try again` } as const
        }
        local.joined = true

        /** A request to the room after the member's lines: on failure the member gets an error line (`what`). */
        const request = <A, E>(what: string, effect: (at: { readonly node: string; readonly epoch: number; readonly instance: string }) => Effect.Effect<A, E>) =>
          link.flushed(local).pipe(
            Effect.andThen(link.whenSubscribed(effect)),
            Effect.map(Option.some),
            Effect.catch((e) =>
              Effect.sync(() => {
                if (Schema.is(NickTaken)(e)) member.send(`*** error: ${Rooms.nickTaken(e.nick, name)}`)
                else member.send(`*** error: ${what} (#${name}: ${describe(e)}); send it again`)
                return Option.none<A>()
              })
            )
          )
        const session: Rooms.RoomSession = {
          name,
          say: (text) => link.say(local, text),
          nick: (nick) =>
            request("the nick was not changed", (at) => link.room.Nick({ ...at, member: key, nick })).pipe(
              Effect.map((done) => {
                if (Option.isSome(done)) member.nick = nick
                return Option.isSome(done)
              })
            ),
          who: request("/who got no answer", (at) => link.room.Who({ ...at, member: key })).pipe(
            Effect.flatMap((nicks) => Effect.sync(() => Option.isSome(nicks) && member.send(`*** in #${name}: ${nicks.value.join(" ")}`)))
          ),
          // the room's last lines for this member (its "you left") arrive before leave returns
          leave: (quit) =>
            Effect.gen(function*() {
              yield* request("leaving failed", (at) => link.room.Leave({ ...at, member: key, quit }))
              yield* Deferred.await(local.released).pipe(Effect.timeoutOption(Duration.seconds(5)))
              link.members.delete(key)
              if (link.members.size === 0) yield* link.close
            })
        }
        return { _tag: "Joined", session } as const
      })

    yield* Effect.addFinalizer(() => Effect.forEach([...links.values()], (link) => link.close, { discard: true }))
    return { join, names: () => [...options.hosted.rooms] }
  })


/**
 * Chat rooms over several nodes: each room is an effect/cluster entity
 * (`ChatRoom`), addressed by its name and living wherever its shard lives;
 * a member's connection fiber stays on the node it connected to.
 *
 * Joining is a streaming request: the room answers with the stream of lines
 * for that member (first a host marker, then every event of the room), so
 * the room's lines flow back to the member's node. Say, Nick, Who and Leave
 * are plain requests that answer once the room broadcast them. Nicks are
 * unique per room across nodes (the room checks them). A member whose node
 * dies is removed (its stream ends) and the room told.
 *
 * When the node hosting a room dies, the cluster moves its shard to a
 * surviving node (after the shard lock expires) and re-sends the members'
 * joins there; when a shard moves for another reason (a node joined and the
 * shards were rebalanced) the room is stopped and each member's node joins it
 * again where it now lives. Either way the new room is rebuilt from those
 * joins (membership and nicks; nothing else is kept), and each member gets
 * `*** #room moved to <runner> (its node left, or the cluster rebalanced) ...`
 * (the host marker changed). A line whose
 * Say had not been answered is re-sent too (it reaches the members that have
 * rejoined by then); a Say that does not complete within `sayTimeout` tells
 * its sender `*** error: ... not delivered`, so no line is lost silently.
 */
import { type Cause, Deferred, Duration, Effect, Exit, Fiber, Option, Queue, Schema, type Scope, Stream } from "effect"
import { Entity, type Sharding } from "effect/cluster"
import { Rpc } from "effect/rpc"
import * as RoomRules from "./RoomRules.ts"
import * as Rooms from "./Rooms.ts"

/** A join or rename with a nick that another member of the room has. */
export class NickTaken extends Schema.TaggedError<NickTaken>()("NickTaken", { nick: Schema.String, room: Schema.String }) {}

const Member = Schema.String // `<node>/<member id>`: unique across the cluster

/** The room entity. */
export const ChatRoom = Entity.make("ChatRoom", [
  Rpc.make("Join", { payload: { member: Member, nick: Schema.String }, success: Schema.String, error: NickTaken, stream: true }),
  Rpc.make("Say", { payload: { member: Member, text: Schema.String } }),
  Rpc.make("Nick", { payload: { member: Member, nick: Schema.String }, error: NickTaken }),
  Rpc.make("Who", { payload: { member: Member }, success: Schema.Array(Schema.String) }),
  Rpc.make("Leave", { payload: { member: Member, quit: Schema.Boolean } })
])

/** The first line of every join stream: which runner hosts the room (not shown to the member). */
const HOST = "\u0000host "

/** Rooms this node hosts right now (for `/_status`). */
export class Hosted {
  readonly rooms = new Set<string>()
}

/**
 * The room entity's behaviour, registered on this node: rooms whose shards
 * this node owns run here. `outboxSize`: lines a member may have waiting in
 * the room before it is dropped as too slow.
 */
export const entityLayer = (options: { readonly outboxSize: number; readonly hosted: Hosted }) =>
  ChatRoom.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const runner = yield* Entity.CurrentRunnerAddress
      const name = address.entityId
      /** The room's rules (RoomRules), and each member's outbox: the queue its join stream reads. */
      let rules = RoomRules.empty<string>(name, false)
      const queues = new Map<string, Queue.Queue<string, Cause.Done>>()
      options.hosted.rooms.add(name)
      yield* Effect.addFinalizer(() => Effect.sync(() => options.hosted.rooms.delete(name)))
      const delivery: RoomRules.Delivery<string> = {
        send: (key, line) => {
          const queue = queues.get(key)
          return queue === undefined || Queue.offerUnsafe(queue, line)
        },
        // the member's node sees its stream end (without a Leave, when it was dropped: too slow)
        release: (key) => {
          const queue = queues.get(key)
          queues.delete(key)
          if (queue !== undefined) Queue.endUnsafe(queue)
        }
      }
      const apply = (event: RoomRules.Event<string>) => {
        const result = RoomRules.run(rules, event, delivery)
        rules = result.room
        return result.answer
      }

      return ChatRoom.of({
        Join: ({ payload }) =>
          Effect.gen(function*() {
            const queue = yield* Queue.dropping<string, Cause.Done>(options.outboxSize)
            Queue.offerUnsafe(queue, `${HOST}${runner.host}:${runner.port}`)
            queues.set(payload.member, queue)
            if (apply({ _tag: "Join", key: payload.member, nick: payload.nick }) === "taken") {
              queues.delete(payload.member)
              return yield* Effect.fail(new NickTaken({ nick: payload.nick, room: name }))
            }
            return Stream.fromQueue(queue).pipe(
              // the member's node went away (or interrupted the stream) without leaving: it quit
              Stream.ensuring(Effect.sync(() => {
                if (queues.get(payload.member) === queue) apply({ _tag: "Gone", key: payload.member })
              }))
            )
          }).pipe(Stream.unwrap),
        Say: ({ payload }) => Effect.sync(() => void apply({ _tag: "Say", key: payload.member, text: payload.text })),
        Nick: ({ payload }) =>
          Effect.suspend(() =>
            apply({ _tag: "Nick", key: payload.member, nick: payload.nick }) === "taken"
              ? Effect.fail(new NickTaken({ nick: payload.nick, room: name }))
              : Effect.void
          ),
        Who: () => Effect.sync(() => [...rules.members.values()]),
        Leave: ({ payload }) => Effect.sync(() => void apply({ _tag: "Part", key: payload.member, quit: payload.quit }))
      })
    }),
    // a member's join stream stays open while it is in the room: every request runs at once
    { concurrency: "unbounded" }
  )

/** How members reach the rooms. */
export interface ClusterRoomsOptions {
  /** This node's name in member keys (its runner address): member ids are unique per node. */
  readonly node: string
  readonly hosted: Hosted
  /** How long a Say, Nick or Who may take (a room moving to another node) before the member is told it failed. Default 15 s. */
  readonly requestTimeout?: Duration.Input
}

/** A `RoomDirectory` whose rooms are `ChatRoom` entities of the cluster. */
export const make = (options: ClusterRoomsOptions): Effect.Effect<Rooms.RoomDirectory, never, Sharding.Sharding> =>
  Effect.gen(function*() {
    const clientFor = yield* ChatRoom.client
    const timeout = options.requestTimeout ?? "15 seconds"
    const describe = (e: unknown) => (e as { _tag?: string })._tag ?? String(e)

    const join = (member: Rooms.Member, name: string): Effect.Effect<Rooms.JoinResult, never, Scope.Scope> =>
      Effect.gen(function*() {
        const room = clientFor(name)
        const key = `${options.node}/${member.id}`
        const first = yield* Deferred.make<void, string>()
        let host: string | undefined
        let leaving = false
        const onLine = (line: string) =>
          Effect.sync(() => {
            if (line.startsWith(HOST)) {
              const at = line.slice(HOST.length)
              if (host !== undefined && host !== at) {
                member.send(`*** #${name} moved to ${at} (its node left, or the cluster rebalanced); lines sent meanwhile may not have reached everyone`)
              }
              host = at
              Deferred.doneUnsafe(first, Exit.void)
              return
            }
            if (!member.send(line)) member.kick("you are not reading fast enough")
          })
        /**
         * The member's join stream, joined again when it breaks: the room's node was lost, or its shard
         * moved to another node (a node joined, or left) and the room was stopped there. A refusal
         * (nick taken) or a stream the room ended (this member too slow) ends the membership.
         */
        const stream = yield* Effect.gen(function*() {
          let attempt = 0
          while (!leaving) {
            const exit = yield* Effect.exit(room.Join({ member: key, nick: member.nick }).pipe(Stream.runForEach((line) => {
              attempt = 0
              return onLine(line)
            })))
            if (leaving) return
            if (Exit.isSuccess(exit)) return member.kick("you are not reading fast enough")
            const error = exit.cause.reasons.find((r) => r._tag === "Fail")
            const refused = error?._tag === "Fail" && error.error instanceof NickTaken
            const reason = refused ? Rooms.nickTaken(member.nick, name) : `#${name} is not reachable (${error?._tag === "Fail" ? describe(error.error) : "its node went away"})`
            if (Deferred.doneUnsafe(first, Exit.fail(reason))) return // the first join failed: refused
            if (refused || ++attempt > 30) return member.kick(reason)
            yield* Effect.sleep(Duration.millis(Math.min(2000, 50 * 2 ** attempt)))
          }
        }).pipe(Effect.forkScoped)
        // a room that does not answer the join in time (no node can host it now) refuses it
        const joined = yield* Effect.exit(Deferred.await(first).pipe(Effect.timeout(timeout)))
        if (Exit.isFailure(joined)) {
          leaving = true
          yield* Fiber.interrupt(stream)
          const reason = joined.cause.reasons.find((r) => r._tag === "Fail")
          return { _tag: "Refused", reason: reason?._tag === "Fail" && typeof reason.error === "string" ? reason.error : `#${name} is not reachable; try again` } as const
        }
        /** A request to the room: on failure or timeout the member gets an error line (`what`); returns whether it went through. */
        const request = <A, E>(what: string, effect: Effect.Effect<A, E>) =>
          effect.pipe(
            Effect.timeout(timeout),
            Effect.map(Option.some),
            Effect.catch((e) =>
              Effect.sync(() => {
                if (e instanceof NickTaken) member.send(`*** error: ${Rooms.nickTaken(e.nick, name)}`)
                else member.send(`*** error: ${what} (#${name}: ${describe(e)}); send it again`)
                return Option.none<A>()
              })
            )
          )
        const session: Rooms.RoomSession = {
          name,
          say: (text) => Effect.asVoid(request("your line was not delivered", room.Say({ member: key, text }))),
          nick: (nick) =>
            request("the nick was not changed", room.Nick({ member: key, nick })).pipe(
              Effect.map((done) => {
                if (Option.isSome(done)) member.nick = nick
                return Option.isSome(done)
              })
            ),
          who: request("/who got no answer", room.Who({ member: key })).pipe(
            Effect.flatMap((nicks) => Effect.sync(() => Option.isSome(nicks) && member.send(`*** in #${name}: ${nicks.value.join(" ")}`)))
          ),
          // the room's last lines for this member (its "you left") arrive before leave returns
          leave: (quit) =>
            Effect.gen(function*() {
              leaving = true
              yield* Effect.ignore(room.Leave({ member: key, quit }).pipe(Effect.timeout(timeout)))
              const done = yield* Fiber.await(stream).pipe(Effect.timeoutOption(Duration.seconds(5)))
              if (Option.isNone(done)) yield* Fiber.interrupt(stream)
            })
        }
        return { _tag: "Joined", session } as const
      })

    return { join, names: () => [...options.hosted.rooms] }
  })

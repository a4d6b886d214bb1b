/**
 * Where a chat's rooms live. A `RoomDirectory` joins a member to a room and
 * gives back the member's `RoomSession` (say, nick, who, leave); the room
 * delivers its lines with the member's `send`. Two directories: `local`
 * (this process: each room an actor under the chat's supervisor) and
 * `ClusterRooms` (each room an effect/cluster entity, wherever its shard lives).
 * Both keep the same semantics: every member sees a room's events in one
 * order, nicks are unique within a room, a member that cannot keep up is
 * dropped without slowing the room.
 */
import { Deferred, Effect, Exit, Option, type Scope } from "effect"
import { Scope as ScopeModule } from "effect"
import * as Actor from "../../actors/Actor.ts"
import * as Supervisor from "../../actors/Supervisor.ts"
import * as RoomRules from "./RoomRules.ts"

/** A connected client, as rooms see it. */
export interface Member {
  readonly id: number
  nick: string
  /** Queues a line for the client; false if its outbox is full. */
  readonly send: (line: string) => boolean
  /** Disconnects the client with a reason line. */
  readonly kick: (reason: string) => void
}

/** A member's place in one room. Each call answers once the room handled it, so a member's lines stay in order. */
export interface RoomSession {
  readonly name: string
  readonly say: (text: string) => Effect.Effect<void>
  /** Renames the member in the room; false (and an error line) when another member of the room has that nick. */
  readonly nick: (nick: string) => Effect.Effect<boolean>
  readonly who: Effect.Effect<void>
  readonly leave: (quit: boolean) => Effect.Effect<void>
}

/** What a join gives: the session, or the reason it was refused (sent to the member as an error line). */
export type JoinResult =
  | { readonly _tag: "Joined"; readonly session: RoomSession }
  | { readonly _tag: "Refused"; readonly reason: string }

/** Rooms, wherever they live. */
export interface RoomDirectory {
  /** Joins `name` as `member` (its current nick); the member's scope bounds anything the join starts. */
  readonly join: (member: Member, name: string) => Effect.Effect<JoinResult, never, Scope.Scope>
  /** Names of the rooms this directory hosts here. */
  readonly names: () => ReadonlyArray<string>
  /** The rooms as supervised children (state, restarts), when they are (local rooms; cluster rooms are entities). */
  readonly supervised?: Effect.Effect<ReadonlyArray<Supervisor.ChildInfo>>
}

/** The refusal line for a nick in use. */
export const nickTaken = (nick: string, room: string) => `the nick ${nick} is taken in #${room}; choose another with /nick`

/** What a member asks of its local room (a RoomRules event with the member); the answer comes once the event is delivered. */
type RoomEvent =
  | { readonly _tag: "Join"; readonly member: Member }
  | { readonly _tag: "Part"; readonly member: Member; readonly quit: boolean }
  | { readonly _tag: "Say"; readonly member: Member; readonly text: string }
  | { readonly _tag: "Nick"; readonly member: Member; readonly nick: string }
  | { readonly _tag: "Who"; readonly member: Member }
type RoomMsg = RoomEvent & { readonly reply: Actor.Reply<RoomRules.Answer> }

interface RoomState {
  rules: RoomRules.Room<number>
  /** The members, to deliver to. */
  readonly members: Map<number, Member>
}

/** A local room's behaviour: the room's rules (RoomRules), delivered to its members' outboxes. */
const room = (name: string): Actor.Behavior<RoomMsg, RoomState> => ({
  initial: Effect.sync((): RoomState => ({ rules: RoomRules.empty(name, true), members: new Map() })),
  receive: (state, msg) =>
    Effect.suspend(() => {
      const member = msg.member
      if (msg._tag === "Join") state.members.set(member.id, member)
      const delivery: RoomRules.Delivery<number> = {
        send: (key, line) => state.members.get(key)?.send(line) ?? true,
        release: (key, dropped) => {
          const m = state.members.get(key)
          state.members.delete(key)
          if (dropped !== undefined) m?.kick(dropped)
        }
      }
      const event: RoomRules.Event<number> = msg._tag === "Join"
        ? { _tag: "Join", key: member.id, nick: member.nick }
        : msg._tag === "Part"
        ? { _tag: "Part", key: member.id, quit: msg.quit }
        : msg._tag === "Say"
        ? { _tag: "Say", key: member.id, text: msg.text }
        : msg._tag === "Nick"
        ? { _tag: "Nick", key: member.id, nick: msg.nick }
        : { _tag: "Who", key: member.id }
      const result = RoomRules.run(state.rules, event, delivery)
      state.rules = result.room
      if (msg._tag === "Join" && result.answer !== "ok") state.members.delete(member.id)
      if (msg._tag === "Nick" && result.answer === "ok") member.nick = msg.nick
      return msg.reply.succeed(result.answer).pipe(Effect.as(state))
    })
})

/** A running local room: its actor's ref, its supervisor child id (once started), the scope its mailbox lives in. */
interface Room {
  readonly name: string
  readonly id: Deferred.Deferred<string>
  readonly ref: Actor.ActorRef<RoomMsg>
  readonly scope: Scope.Closeable
}

/**
 * Rooms in this process, at most `maxRooms` at once: each an actor, a
 * transient child of the chat's dynamic supervisor (restarted after a crash;
 * its `maxChildren` is `maxRooms`), stopped and forgotten when its last member leaves.
 */
export const local = (options: { readonly maxRooms: number }): Effect.Effect<RoomDirectory, never, Scope.Scope> =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor.dynamic(
      { name: "chat-rooms", maxRestarts: 10, period: "10 seconds", maxChildren: options.maxRooms },
      (started: { readonly name: string; readonly ref: Actor.Mailbox<RoomMsg> }) => ({
        label: started.name,
        restart: "transient",
        start: Actor.runSupervised(started.ref, room(started.name))
      })
    )
    const rooms = new Map<string, Room>()
    const scope = yield* Effect.scope

    /** The room called `name`, started when missing (undefined when `maxRooms` are open). */
    const roomRef = (name: string) =>
      Effect.gen(function*() {
        const existing = rooms.get(name)
        if (existing !== undefined) return existing
        const roomScope = yield* ScopeModule.fork(scope)
        const ref = yield* Actor.make<RoomMsg>({ name: `room #${name}` }).pipe(ScopeModule.provide(roomScope))
        const created: Room = { name, id: Deferred.makeUnsafe(), ref, scope: roomScope }
        // in the map before the supervisor answers: a concurrent join of the same name finds this room
        rooms.set(name, created)
        const started = yield* Effect.exit(supervisor.startChild({ name, ref }))
        if (Exit.isSuccess(started) && Option.isSome(started.value)) {
          yield* Deferred.succeed(created.id, started.value.value)
          return created
        }
        // maxRooms are open (MaxChildren), or the chat is stopping
        if (rooms.get(name) === created) rooms.delete(name)
        yield* ScopeModule.close(roomScope, Exit.void)
        return undefined
      })

    /** Stops and forgets a room its last member left (the room closed itself, so no join can slip in). */
    const removeRoom = (closed: Room) =>
      Effect.gen(function*() {
        if (rooms.get(closed.name) === closed) rooms.delete(closed.name)
        yield* Effect.ignore(supervisor.terminateChild(yield* Deferred.await(closed.id)))
        yield* ScopeModule.close(closed.scope, Exit.void)
      })

    /** Asks the room; "closed" when it is closed or stopped. */
    const ask = (target: Room, event: RoomEvent) =>
      target.ref.ask<RoomRules.Answer>((reply) => ({ ...event, reply }) as RoomMsg).pipe(Effect.orElseSucceed((): RoomRules.Answer => "closed"))

    const session = (target: Room, member: Member): RoomSession => ({
      name: target.name,
      say: (text) => Effect.asVoid(ask(target, { _tag: "Say", member, text })),
      nick: (nick) =>
        ask(target, { _tag: "Nick", member, nick }).pipe(Effect.map((answer) => {
          if (answer === "taken") member.send(`*** error: ${nickTaken(nick, target.name)}`)
          return answer !== "taken"
        })),
      who: Effect.asVoid(ask(target, { _tag: "Who", member })),
      leave: (quit) =>
        ask(target, { _tag: "Part", member, quit }).pipe(Effect.flatMap((answer) => (answer === "last" ? removeRoom(target) : Effect.void)))
    })

    /** Joins `name`; a room that closed meanwhile is replaced by a fresh one. */
    const join = (member: Member, name: string): Effect.Effect<JoinResult> =>
      Effect.gen(function*() {
        for (let attempt = 0; attempt < 3; attempt++) {
          const target = yield* roomRef(name)
          if (target === undefined) break
          const answer = yield* ask(target, { _tag: "Join", member })
          if (answer === "ok") return { _tag: "Joined", session: session(target, member) } as const
          if (answer === "taken") return { _tag: "Refused", reason: nickTaken(member.nick, name) } as const
          // closed by its last member meanwhile (or stopped): forget it, a fresh room takes its place
          if (rooms.get(name) === target) rooms.delete(name)
        }
        return { _tag: "Refused", reason: `too many rooms (at most ${options.maxRooms}); join an existing one` } as const
      })

    return { join, names: () => [...rooms.keys()], supervised: supervisor.children }
  })

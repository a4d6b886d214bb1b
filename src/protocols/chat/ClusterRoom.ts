/**
 * A chat room as an effect/cluster entity (`ChatRoom`), living wherever its
 * shard lives; the node side is `ClusterRooms`.
 *
 * Fan-out once per node: a node with members in the room holds one
 * subscription (`Subscribe`, a stream); every line the room makes goes once
 * down each subscription that has members to get it, and the node hands it to
 * its local members. A node's lines come in batches (`Say`, many lines of
 * many members per request), each line numbered by its sender (`seq`) so the
 * room drops a line it already took and every node drops a line it already
 * delivered: a node re-sends its recent lines after the room moved, and
 * nothing is lost or doubled.
 *
 * Each start of a room is an instance (its id in the `Host` item that begins
 * a subscription). A request carries the instance and the epoch of its
 * node's subscription as the node knows them: one made before the node
 * subscribed to the instance that runs now is refused (`Resubscribe`), so a
 * line never overtakes the re-sent ones. When the room's node dies the
 * cluster sends the subscriptions again to the node the room moves to, with
 * the members they had then: the node answers the new `Host` with `Resync`
 * (its members now, a new epoch). A node that (re)subscribes or resyncs with
 * members gets the members' lines this instance took so far (`replay`), so a
 * node that came back after another node re-sent its lines misses none.
 *
 * Presence: every node keeps the room's roster (`Roster` items) and sends it
 * with each (re)subscription. A restarted room takes the members of nodes
 * that have not come back yet as present (`/who` lists them, their nicks stay
 * taken); those whose node does not come back within `presenceGrace` quit,
 * once. The rules of the room are `RoomRules`.
 */
import { type Cause, Duration, Effect, Queue, Schema, Stream } from "effect"
import { Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"
import * as RoomRules from "./RoomRules.ts"

/** A join or rename with a nick that another member of the room has. */
export class NickTaken extends Schema.TaggedError<NickTaken>()("NickTaken", { nick: Schema.String, room: Schema.String }) {}

/** The node has no current subscription to the room here (it moved, or the node has not subscribed yet): subscribe, then ask again. */
export class Resubscribe extends Schema.TaggedError<Resubscribe>()("Resubscribe", {}) {}

/** `<node>/<member id>`: unique across the cluster. */
const Member = Schema.String

/** One line from a member, numbered by its sender. */
export const Line = Schema.Struct({ member: Member, seq: Schema.Number, text: Schema.String })
export type Line = typeof Line.Type

/** What goes down a node's subscription. */
export const Out = Schema.Union([
  /** First item of every subscription: the runner that hosts the room, this start of it, and its members. */
  Schema.TaggedStruct("Host", { host: Schema.String, instance: Schema.String, roster: Schema.Array(Schema.Struct({ member: Member, nick: Schema.String })) }),
  /** A member joined or was renamed (`nick`), or is no longer in the room (no `nick`): every node keeps the roster. */
  Schema.TaggedStruct("Roster", { member: Member, nick: Schema.optionalKey(Schema.String) }),
  /** A line for every local member but `except`; `from`/`seq` for a member's line (duplicates are dropped). */
  Schema.TaggedStruct("Broadcast", {
    line: Schema.String,
    except: Schema.optionalKey(Member),
    from: Schema.optionalKey(Member),
    seq: Schema.optionalKey(Schema.Number)
  }),
  Schema.TaggedStruct("Tell", { to: Member, line: Schema.String }),
  /** The member gets nothing more from the room (it left, or was dropped: `dropped` says why). */
  Schema.TaggedStruct("Release", { key: Member, dropped: Schema.optionalKey(Schema.String) })
])
export type Out = typeof Out.Type

/** Who asks: the node, its subscription's epoch and the room instance it subscribed to. */
const Subscription = { node: Schema.String, epoch: Schema.Number, instance: Schema.String }
const Members = Schema.Array(Schema.Struct({ member: Member, nick: Schema.String }))

/** The room entity. */
export const ChatRoom = Entity.make("ChatRoom", [
  /** `members`: the node's own; `roster`: everyone the node knew in the room (a room restarted after its node died learns them back). */
  Rpc.make("Subscribe", { payload: { node: Schema.String, epoch: Schema.Number, members: Members, roster: Members }, success: Out, stream: true }),
  /** The subscription came back from another node: the node's members now, under a new epoch. */
  Rpc.make("Resync", { payload: { ...Subscription, members: Members, roster: Members }, error: Resubscribe }),
  Rpc.make("Join", { payload: { ...Subscription, member: Member, nick: Schema.String }, error: Schema.Union([NickTaken, Resubscribe]) }),
  Rpc.make("Say", { payload: { ...Subscription, lines: Schema.Array(Line) }, error: Resubscribe }),
  Rpc.make("Nick", { payload: { ...Subscription, member: Member, nick: Schema.String }, error: Schema.Union([NickTaken, Resubscribe]) }),
  Rpc.make("Who", { payload: { ...Subscription, member: Member }, success: Schema.Array(Schema.String), error: Resubscribe }),
  Rpc.make("Leave", { payload: { ...Subscription, member: Member, quit: Schema.Boolean }, error: Resubscribe }),
  /** The member could not take a line on its node: it is dropped as too slow. */
  Rpc.make("Slow", { payload: { node: Schema.String, member: Member } })
])

/** Rooms this node hosts right now (for `/_status`). */
export class Hosted {
  readonly rooms = new Set<string>()
}

/** The node part of a member key. */
export const nodeOf = (member: string) => member.slice(0, member.lastIndexOf("/"))

interface NodeSubscription {
  epoch: number
  readonly queue: Queue.Queue<Out, Cause.Done>
}

/** Members' lines an instance keeps for nodes that come back (`replay`). */
const REPLAY = 20_000

/**
 * The room entity's behaviour, registered on this node: rooms whose shards
 * this node owns run here. `backlog`: items a node's subscription may have
 * waiting before that node is taken as gone (it stopped reading).
 */
export const entityLayer = (options: { readonly backlog: number; readonly hosted: Hosted; readonly presenceGrace?: Duration.Input }) =>
  ChatRoom.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const runner = yield* Entity.CurrentRunnerAddress
      const name = address.entityId
      const host = `${runner.host}:${runner.port}`
      const instance = `${host}/${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`
      let rules = RoomRules.empty<string>(name, false)
      /** The members' lines this instance took, oldest first. */
      const replay: Array<Out> = []
      const nodes = new Map<string, NodeSubscription>()
      /** The last line number taken from each member. */
      const taken = new Map<string, number>()
      /** Members of nodes that have not subscribed to this instance yet (learnt from another node's roster). */
      const presumed = new Set<string>()
      const entityScope = yield* Effect.scope
      const grace = Duration.fromInputUnsafe(options.presenceGrace ?? "5 seconds")
      options.hosted.rooms.add(name)
      yield* Effect.addFinalizer(() => Effect.sync(() => options.hosted.rooms.delete(name)))

      /** Sends `out` down `node`'s subscription; a node that stopped reading loses it (and its members quit). */
      const push = (node: string, out: Out) => {
        const sub = nodes.get(node)
        if (sub !== undefined && !Queue.offerUnsafe(sub.queue, out)) drop(node, sub)
      }
      const drop = (node: string, sub: NodeSubscription) => {
        if (nodes.get(node) !== sub) return
        nodes.delete(node)
        Queue.endUnsafe(sub.queue)
        for (const key of [...rules.members.keys()]) if (nodeOf(key) === node) apply({ _tag: "Gone", key })
      }
      /** Applies a RoomRules event and sends its outputs once per node (and the roster change to every node). */
      const apply = (event: RoomRules.Event<string>, line?: Line) => {
        const step = RoomRules.step(rules, event)
        const before = rules.members.get(event.key)
        rules = step.room
        const after = rules.members.get(event.key)
        if (before !== after) {
          presumed.delete(event.key)
          if (after === undefined) taken.delete(event.key)
          const item: Out = after === undefined ? { _tag: "Roster", member: event.key } : { _tag: "Roster", member: event.key, nick: after }
          for (const node of nodes.keys()) push(node, item)
        }
        for (const out of step.outputs) {
          if (out._tag === "Tell") push(nodeOf(out.to), { _tag: "Tell", to: out.to, line: out.line })
          else if (out._tag === "Release") {
            push(nodeOf(out.key), out.dropped === undefined ? { _tag: "Release", key: out.key } : { _tag: "Release", key: out.key, dropped: out.dropped })
          } else {
            const item: Out = {
              _tag: "Broadcast",
              line: out.line,
              ...(out.except !== undefined ? { except: out.except } : {}),
              ...(line !== undefined ? { from: line.member, seq: line.seq } : {})
            }
            const targets = new Set<string>()
            for (const key of rules.members.keys()) if (key !== out.except) targets.add(nodeOf(key))
            for (const node of targets) push(node, item)
            if (line !== undefined && replay.push(item) > REPLAY) replay.shift()
          }
        }
        return step.answer
      }
      /** Runs `f` when `node` is subscribed to this instance at `epoch` (its lines then come after what it re-sent). */
      const subscribed = <A, E>(
        payload: { readonly node: string; readonly epoch: number; readonly instance: string },
        f: () => Effect.Effect<A, E>
      ): Effect.Effect<A, E | Resubscribe> =>
        Effect.suspend((): Effect.Effect<A, E | Resubscribe> =>
          payload.instance === instance && nodes.get(payload.node)?.epoch === payload.epoch ? f() : Effect.fail(new Resubscribe())
        )
      /** `node`'s members as it knows them (a room rebuilt after a move learns its membership back); it gets the lines taken so far. */
      const adopt = (
        node: string,
        given: ReadonlyArray<{ readonly member: string; readonly nick: string }>,
        roster: ReadonlyArray<{ readonly member: string; readonly nick: string }>
      ): Effect.Effect<void> => {
        const members = new Map(rules.members)
        for (const key of members.keys()) if (nodeOf(key) === node) (members.delete(key), presumed.delete(key))
        for (const m of given) members.set(m.member, m.nick)
        // members of other nodes that have not come back: present until they do, or quit after the grace time
        const learnt: Array<string> = []
        for (const m of roster) {
          const at = nodeOf(m.member)
          if (at === node || nodes.has(at) || members.has(m.member)) continue
          members.set(m.member, m.nick)
          presumed.add(m.member)
          learnt.push(m.member)
        }
        // every node's roster follows (the silent changes included)
        for (const key of new Set([...rules.members.keys(), ...members.keys()])) {
          const nick = members.get(key)
          if (rules.members.get(key) === nick) continue
          const item: Out = nick === undefined ? { _tag: "Roster", member: key } : { _tag: "Roster", member: key, nick }
          for (const other of nodes.keys()) push(other, item)
        }
        rules = { ...rules, members }
        if (learnt.length === 0) return Effect.void
        const quitUnlessBack = Effect.sync(() => {
          for (const key of learnt) if (presumed.has(key) && !nodes.has(nodeOf(key))) apply({ _tag: "Gone", key })
        })
        return Effect.asVoid(Effect.forkIn(Effect.andThen(Effect.sleep(grace), quitUnlessBack), entityScope))
      }
      /** The members' lines this instance took, to a node that (re)subscribed with members (it drops what it had). */
      const replayTo = (node: string, sub: NodeSubscription) => {
        for (const item of replay) if (!Queue.offerUnsafe(sub.queue, item)) return drop(node, sub)
      }

      return ChatRoom.of({
        Subscribe: ({ payload }) =>
          Effect.gen(function*() {
            const previous = nodes.get(payload.node)
            // sent again by the cluster after the node had subscribed anew: nobody reads it
            if (previous !== undefined && previous.epoch > payload.epoch) return Stream.empty
            if (previous !== undefined) {
              nodes.delete(payload.node)
              Queue.endUnsafe(previous.queue)
            }
            const queue = yield* Queue.bounded<Out, Cause.Done>(options.backlog)
            const sub: NodeSubscription = { epoch: payload.epoch, queue }
            nodes.set(payload.node, sub)
            yield* adopt(payload.node, payload.members, payload.roster)
            Queue.offerUnsafe(queue, { _tag: "Host", host, instance, roster: [...rules.members].map(([member, nick]) => ({ member, nick })) })
            if (payload.members.length > 0) replayTo(payload.node, sub)
            return Stream.fromQueue(queue).pipe(
              // the node went away (or dropped the subscription) without its members leaving: they quit
              Stream.ensuring(Effect.sync(() => drop(payload.node, sub)))
            )
          }).pipe(Stream.unwrap),
        Resync: ({ payload }) =>
          Effect.suspend(() => {
            const sub = nodes.get(payload.node)
            if (sub === undefined || payload.instance !== instance || sub.epoch > payload.epoch) return Effect.fail(new Resubscribe())
            sub.epoch = payload.epoch
            if (payload.members.length > 0) replayTo(payload.node, sub)
            return adopt(payload.node, payload.members, payload.roster)
          }),
        Join: ({ payload }) =>
          subscribed(payload, () => {
            if (rules.members.get(payload.member) === payload.nick) return Effect.void // re-sent after a move
            return apply({ _tag: "Join", key: payload.member, nick: payload.nick }) === "taken"
              ? Effect.fail(new NickTaken({ nick: payload.nick, room: name }))
              : Effect.void
          }),
        Say: ({ payload }) =>
          subscribed(payload, () =>
            Effect.sync(() => {
              for (const line of payload.lines) {
                if (line.seq <= (taken.get(line.member) ?? 0)) continue // taken already (re-sent after a move)
                if (apply({ _tag: "Say", key: line.member, text: line.text }, line) === "ok") taken.set(line.member, line.seq)
              }
            })),
        Nick: ({ payload }) =>
          subscribed(payload, () =>
            apply({ _tag: "Nick", key: payload.member, nick: payload.nick }) === "taken"
              ? Effect.fail(new NickTaken({ nick: payload.nick, room: name }))
              : Effect.void),
        Who: ({ payload }) => subscribed(payload, () => Effect.succeed([...rules.members.values()])),
        Leave: ({ payload }) =>
          subscribed(payload, () =>
            Effect.sync(() => {
              apply({ _tag: "Part", key: payload.member, quit: payload.quit })
            })),
        Slow: ({ payload }) => Effect.sync(() => void apply({ _tag: "Slow", key: payload.member }))
      })
    }),
    // a node's subscription stays open while it has members in the room: every request runs at once
    { concurrency: "unbounded" }
  )

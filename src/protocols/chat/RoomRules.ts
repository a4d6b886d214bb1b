/**
 * The rules of a chat room, once, as a reducer over plain data: joins with
 * nicks unique in the room, lines to everyone but their sender, renames,
 * `/who`, parts and quits, and the `***` lines each of these makes. `step`
 * takes the room and an event and gives the answer and what to deliver;
 * `run` delivers it with the caller's `send`, and turns a member that cannot
 * take a line (its outbox is full) into a `Slow` event, so being dropped for
 * slowness is a rule too. The local rooms (an actor per room) and the cluster
 * rooms (an entity per room) both drive it; it is property-tested alone.
 */

/** A room: its name, its members' nicks in join order, and whether its last member closed it (when it closes when empty). */
export interface Room<K> {
  readonly name: string
  readonly members: ReadonlyMap<K, string>
  readonly closesWhenEmpty: boolean
  readonly closed: boolean
}

/** What happens in a room. */
export type Event<K> =
  | { readonly _tag: "Join"; readonly key: K; readonly nick: string }
  | { readonly _tag: "Part"; readonly key: K; readonly quit: boolean }
  | { readonly _tag: "Say"; readonly key: K; readonly text: string }
  | { readonly _tag: "Nick"; readonly key: K; readonly nick: string }
  | { readonly _tag: "Who"; readonly key: K }
  /** The member is gone without leaving (its connection or node went away). */
  | { readonly _tag: "Gone"; readonly key: K }
  /** The member could not take a line: it is dropped. */
  | { readonly _tag: "Slow"; readonly key: K }

/** What a room delivers: a line to everyone (but one), a line to one member, a member let go (with why, when it is dropped). */
export type Output<K> =
  | { readonly _tag: "Broadcast"; readonly line: string; readonly except?: K }
  | { readonly _tag: "Tell"; readonly to: K; readonly line: string }
  | { readonly _tag: "Release"; readonly key: K; readonly dropped?: string }

/** The answer to the event's sender: done, nick taken, not a member, the room was closed, or this part closed it. */
export type Answer = "ok" | "taken" | "absent" | "closed" | "last"

/** One step: the room after the event, the answer, and what to deliver (in order). */
export interface Step<K> {
  readonly room: Room<K>
  readonly answer: Answer
  readonly outputs: ReadonlyArray<Output<K>>
}

/**
 * An empty, open room. One that `closesWhenEmpty` (a local room, stopped when its last member leaves)
 * refuses joins once closed, so none slips in while it is being stopped.
 */
export const empty = <K>(name: string, closesWhenEmpty: boolean): Room<K> => ({ name, members: new Map(), closesWhenEmpty, closed: false })

const nickInUse = <K>(room: Room<K>, nick: string, except: K) => {
  for (const [key, n] of room.members) if (key !== except && n === nick) return true
  return false
}

const without = <K>(room: Room<K>, key: K): Room<K> => {
  const members = new Map(room.members)
  members.delete(key)
  return { ...room, members }
}

const outputs = <K>(room: Room<K>, answer: Answer, ...out: Array<Output<K>>): Step<K> => ({ room, answer, outputs: out })

/** The room's rules. */
export const step = <K>(room: Room<K>, event: Event<K>): Step<K> => {
  const nick = room.members.get(event.key)
  switch (event._tag) {
    case "Join": {
      if (room.closed) return outputs(room, "closed")
      if (nickInUse(room, event.nick, event.key)) return outputs(room, "taken")
      const members = new Map(room.members).set(event.key, event.nick)
      return outputs({ ...room, members }, "ok", { _tag: "Broadcast", line: `*** ${event.nick} joined #${room.name}` })
    }
    case "Say":
      return nick === undefined ? outputs(room, "absent") : outputs(room, "ok", { _tag: "Broadcast", line: `<${nick}> ${event.text}`, except: event.key })
    case "Nick": {
      if (nick === undefined) return outputs(room, "absent")
      if (nickInUse(room, event.nick, event.key)) return outputs(room, "taken")
      const members = new Map(room.members).set(event.key, event.nick)
      return outputs({ ...room, members }, "ok", { _tag: "Broadcast", line: `*** ${nick} is now known as ${event.nick}` })
    }
    case "Who":
      return nick === undefined ? outputs(room, "absent") : outputs(room, "ok", { _tag: "Tell", to: event.key, line: `*** in #${room.name}: ${[...room.members.values()].join(" ")}` })
    case "Part":
    case "Gone":
    case "Slow": {
      if (nick === undefined) return outputs(room, "absent")
      const left = without(room, event.key)
      // the last one out closes the room
      const after = left.members.size === 0 && event._tag === "Part" && room.closesWhenEmpty ? { ...left, closed: true } : left
      const answer: Answer = after.closed ? "last" : "ok"
      if (event._tag === "Slow") {
        return outputs(after, answer, { _tag: "Release", key: event.key, dropped: "you are not reading fast enough" }, {
          _tag: "Broadcast",
          line: `*** ${nick} was disconnected (too slow)`
        })
      }
      const quit = event._tag === "Gone" || event.quit
      return outputs(
        after,
        answer,
        ...(quit ? [] : [{ _tag: "Tell", to: event.key, line: `*** you left #${room.name}` } as const]),
        { _tag: "Release", key: event.key },
        { _tag: "Broadcast", line: quit ? `*** ${nick} quit` : `*** ${nick} left #${room.name}` }
      )
    }
  }
}

/** How a room reaches its members. */
export interface Delivery<K> {
  /** Queues a line for a member; false when its outbox is full (it is then dropped as too slow). */
  readonly send: (key: K, line: string) => boolean
  /** A member no longer gets the room's lines (it left, quit or was dropped, `dropped` saying why). */
  readonly release: (key: K, dropped: string | undefined) => void
}

/** Applies an event: steps the room and delivers what it says; members that cannot keep up are dropped in turn. Returns the room and the answer. */
export const run = <K>(room: Room<K>, event: Event<K>, delivery: Delivery<K>): { readonly room: Room<K>; readonly answer: Answer } => {
  const first = step(room, event)
  let current = first.room
  const pending: Array<Output<K>> = [...first.outputs]
  while (pending.length > 0) {
    const out = pending.shift()!
    const slow: Array<K> = []
    if (out._tag === "Release") delivery.release(out.key, out.dropped)
    else if (out._tag === "Tell") delivery.send(out.to, out.line)
    else {
      for (const key of current.members.keys()) if (key !== out.except && !delivery.send(key, out.line)) slow.push(key)
    }
    for (const key of slow) {
      const dropped = step(current, { _tag: "Slow", key })
      current = dropped.room
      pending.push(...dropped.outputs)
    }
  }
  return { room: current, answer: first.answer }
}

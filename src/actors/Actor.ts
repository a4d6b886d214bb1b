/**
 * Actors: a fiber with a mailbox. State lives in the fiber; the behaviour is
 * an Effect per message.
 *
 * The `ActorRef` (and its mailbox) is separate from the fiber that processes
 * it, so a supervisor can restart the processing fiber with fresh state while
 * senders keep the same ref and messages sent meanwhile wait in the mailbox.
 * `Actor.spawn` is the unsupervised form: ref plus one processing fiber.
 *
 * Mailbox policies are explicit: `bounded(n)` (default: `tell` suspends when
 * full, nothing is lost), `dropping(n)` / `sliding(n)` (drops are counted and
 * logged), `unbounded` (opt-in). When an actor stops, `ask`s still in its
 * mailbox fail with `ActorStopped` and `tell`s are counted as dead letters.
 */
import { Cause, Data, Deferred, Duration, Effect, Exit, Metric, Queue } from "effect"
import type { Scope } from "effect"
import * as Timeouts from "../core/Timeouts.ts"

/** How a mailbox treats a sender when it is full. */
export type MailboxPolicy =
  | { readonly _tag: "bounded"; readonly capacity: number }
  | { readonly _tag: "dropping"; readonly capacity: number }
  | { readonly _tag: "sliding"; readonly capacity: number }
  | { readonly _tag: "unbounded" }

/** `tell` suspends while the mailbox holds `capacity` messages (the default, capacity 1024). */
export const bounded = (capacity: number): MailboxPolicy => ({ _tag: "bounded", capacity })
/** A full mailbox drops the new message (counted in `fiberd_actor_dropped_total`). */
export const dropping = (capacity: number): MailboxPolicy => ({ _tag: "dropping", capacity })
/** A full mailbox drops its oldest message (counted in `fiberd_actor_dropped_total`). */
export const sliding = (capacity: number): MailboxPolicy => ({ _tag: "sliding", capacity })
/** No limit: senders never wait and nothing is dropped; memory is the limit. */
export const unbounded: MailboxPolicy = { _tag: "unbounded" }

/** The actor has stopped (or failed) before it answered. */
export class ActorStopped extends Data.TaggedError("ActorStopped")<{ readonly actor: string }> {
  override get message() {
    return `actor ${this.actor} stopped before it answered`
  }
}

/** No answer within the ask timeout. */
export class AskTimeout extends Data.TaggedError("AskTimeout")<{
  readonly actor: string
  readonly timeout: Duration.Duration
}> {
  override get message() {
    return `actor ${this.actor} did not answer within ${Duration.format(this.timeout)}`
  }
}

/** The reply channel of an `ask`: the behaviour answers through it. */
export interface Reply<A> {
  readonly succeed: (value: A) => Effect.Effect<void>
}

interface Envelope<Msg> {
  readonly message: Msg
  readonly reply: Deferred.Deferred<unknown, ActorStopped> | undefined
}

/** A handle to an actor. */
export interface ActorRef<Msg> {
  readonly name: string
  /** Sends a message; with a bounded mailbox, waits while it is full. */
  readonly tell: (message: Msg) => Effect.Effect<void>
  /**
   * Sends without waiting, for plain-JS hot paths. Returns false if the
   * message was not accepted (full bounded mailbox, or stopped actor).
   */
  readonly tellUnsafe: (message: Msg) => boolean
  /** Sends a message carrying a reply channel and waits for the answer. */
  readonly ask: <A>(
    make: (reply: Reply<A>) => Msg,
    options?: { readonly timeout?: Duration.Input }
  ) => Effect.Effect<A, ActorStopped | AskTimeout>
  /**
   * Stops the actor after the messages already in its mailbox and waits until
   * it has stopped. (A supervised actor is stopped through its supervisor.)
   */
  readonly stop: Effect.Effect<void>
  /** Messages waiting in the mailbox. */
  readonly pending: Effect.Effect<number>
}

/** What an actor does with each message. */
export interface Behavior<Msg, S, E = never, R = never> {
  readonly initial: S | Effect.Effect<S, E, R>
  readonly receive: (state: S, message: Msg) => Effect.Effect<S, E, R>
}

/** A stateless behaviour: one Effect per message. */
export const stateless = <Msg, E = never, R = never>(
  receive: (message: Msg) => Effect.Effect<void, E, R>
): Behavior<Msg, void, E, R> => ({ initial: undefined, receive: (_, message) => receive(message) })

/** Options of a mailbox / actor. */
export interface ActorOptions {
  /** Name in logs, errors and metric attributes. */
  readonly name: string
  /** Default `bounded(1024)`. */
  readonly mailbox?: MailboxPolicy
  /** Default timeout of `ask`. Default 5 seconds. */
  readonly askTimeout?: Duration.Input
}

/** The internal side of a ref: what `run` consumes. */
export interface Mailbox<Msg> extends ActorRef<Msg> {
  readonly queue: Queue.Queue<Envelope<Msg>, Cause.Done>
  current: Envelope<Msg> | undefined
  /** Messages taken from the queue but not handled when the last run failed; the next run takes them first. */
  backlog: Array<Envelope<Msg>>
  /** Final stop: fails every waiting ask, counts waiting tells as dead letters, completes `stop`. */
  readonly failPending: Effect.Effect<void>
}

const droppedTotal = Metric.counter("fiberd_actor_dropped_total", {
  description: "messages dropped by full dropping/sliding mailboxes",
  incremental: true
})
const deadLettersTotal = Metric.counter("fiberd_actor_dead_letters_total", {
  description: "messages told to a stopped actor, or left in its mailbox when it stopped",
  incremental: true
})

const makeQueue = <A>(policy: MailboxPolicy) => {
  switch (policy._tag) {
    case "bounded":
      return Queue.bounded<A, Cause.Done>(policy.capacity)
    case "dropping":
      return Queue.dropping<A, Cause.Done>(policy.capacity)
    case "sliding":
      return Queue.sliding<A, Cause.Done>(policy.capacity)
    case "unbounded":
      return Queue.unbounded<A, Cause.Done>()
  }
}

/**
 * Creates an actor's mailbox and ref, without a processing fiber (a
 * supervisor child runs `run(ref, behavior)`). When the scope closes, the
 * mailbox is ended and whatever is left is failed / counted.
 */
export const make = <Msg>(options: ActorOptions): Effect.Effect<Mailbox<Msg>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const policy = options.mailbox ?? bounded(1024)
    const queue = yield* makeQueue<Envelope<Msg>>(policy)
    const attributes = { actor: options.name }
    const dropped = Metric.withAttributes(droppedTotal, attributes)
    const deadLetters = Metric.withAttributes(deadLettersTotal, attributes)
    const context = yield* Effect.context<never>()
    const defaultAskTimeout = Duration.fromInputUnsafe(options.askTimeout ?? "5 seconds")
    const askTimeouts = yield* Timeouts.make(Timeouts.resolutionFor(Duration.isFinite(defaultAskTimeout) ? defaultAskTimeout : Duration.seconds(4)))
    const capacity = policy._tag === "unbounded" ? Number.POSITIVE_INFINITY : policy.capacity
    let stopped = false
    let ended = false
    const done = yield* Deferred.make<void>()
    const endMailbox = Effect.suspend(() => {
      ended = true
      return Queue.end(queue)
    })

    const reportDrop = Effect.andThen(
      Metric.update(dropped, 1),
      Effect.logWarning(`actor ${options.name}: mailbox full (${policy._tag} ${capacity}), a message was dropped`)
    )

    const offer = (envelope: Envelope<Msg>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (stopped) {
          return envelope.reply === undefined
            ? Metric.update(deadLetters, 1)
            : Deferred.fail(envelope.reply, new ActorStopped({ actor: options.name })).pipe(Effect.asVoid)
        }
        const full = Queue.sizeUnsafe(queue) >= capacity
        // fast path: room in the mailbox, no fiber needs to wait
        if (!full && !ended && Queue.offerUnsafe(queue, envelope)) return Effect.void
        return Queue.offer(queue, envelope).pipe(Effect.flatMap((accepted) => {
          if (!accepted) {
            if (ended || stopped) {
              return envelope.reply === undefined
                ? Metric.update(deadLetters, 1)
                : Deferred.fail(envelope.reply, new ActorStopped({ actor: options.name }))
            }
            return reportDrop
          }
          return full && policy._tag === "sliding" ? reportDrop : Effect.void
        }))
      })

    const failPending = Effect.gen(function*() {
      if (stopped) return
      stopped = true
      ended = true
      const left = yield* Queue.clear(queue).pipe(Effect.orElseSucceed(() => [] as Array<Envelope<Msg>>))
      const current = mailbox.current
      const backlog = mailbox.backlog
      mailbox.current = undefined
      mailbox.backlog = []
      for (const envelope of current === undefined ? [...backlog, ...left] : [current, ...backlog, ...left]) {
        if (envelope.reply !== undefined) yield* Deferred.fail(envelope.reply, new ActorStopped({ actor: options.name }))
        else if (envelope !== current) yield* Metric.update(deadLetters, 1)
      }
      yield* Deferred.succeed(done, undefined)
    })

    const mailbox: Mailbox<Msg> = {
      name: options.name,
      queue,
      current: undefined,
      backlog: [],
      failPending,
      tell: (message) => offer({ message, reply: undefined }),
      tellUnsafe: (message) => {
        if (stopped) {
          Metric.update(deadLetters, 1).pipe(Effect.runSyncWith(context))
          return false
        }
        const full = Queue.sizeUnsafe(queue) >= capacity
        const accepted = Queue.offerUnsafe(queue, { message, reply: undefined })
        if ((!accepted && policy._tag === "dropping") || (full && policy._tag === "sliding")) {
          reportDrop.pipe(Effect.runSyncWith(context))
        }
        return accepted
      },
      ask: <A>(make: (reply: Reply<A>) => Msg, askOptions?: { readonly timeout?: Duration.Input }) =>
        Effect.gen(function*() {
          const deferred = yield* Deferred.make<A, ActorStopped | AskTimeout>()
          const reply: Reply<A> = { succeed: (value) => Deferred.succeed(deferred, value).pipe(Effect.asVoid) }
          yield* offer({ message: make(reply), reply: deferred as unknown as Deferred.Deferred<unknown, ActorStopped> })
          const timeout = askOptions?.timeout === undefined ? defaultAskTimeout : Duration.fromInputUnsafe(askOptions.timeout)
          const millis = Duration.toMillis(timeout)
          if (!Number.isFinite(millis)) return yield* Deferred.await(deferred)
          if (millis < 4 * askTimeouts.resolutionMillis) {
            // short timeouts need precision: a timer of their own
            return yield* Deferred.await(deferred).pipe(
              Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(new AskTimeout({ actor: options.name, timeout })) })
            )
          }
          // the rest share one sweep (fires at most 25 % late): no timer per ask
          const entry: Timeouts.Timed = {
            lastActive: 0,
            timeoutTicks: askTimeouts.ticksFor(millis),
            onTimeout: () => Deferred.doneUnsafe(deferred, Effect.fail(new AskTimeout({ actor: options.name, timeout })))
          }
          askTimeouts.add(entry)
          return yield* Deferred.await(deferred).pipe(Effect.ensuring(Effect.sync(() => askTimeouts.remove(entry))))
        }),
      stop: endMailbox.pipe(Effect.andThen(Deferred.await(done))),
      pending: Queue.size(queue)
    }
    yield* Effect.addFinalizer(() => endMailbox.pipe(Effect.andThen(failPending)))
    return mailbox
  })

/**
 * Processes the mailbox with `behavior` until it is stopped (ends normally)
 * or the behaviour fails (ends with that failure; the message being handled
 * then fails its ask with ActorStopped). Run it as a supervisor child to get
 * restarts with fresh state and the same ref.
 */
export const run = <Msg, S, E, R>(
  mailbox: Mailbox<Msg>,
  behavior: Behavior<Msg, S, E, R>
): Effect.Effect<void, E, R> => {
  const takeBatch = Queue.takeAll(mailbox.queue).pipe(Effect.catchIf(Cause.isDone, () => Effect.succeed(undefined)))
  // the batch being handled: if the behaviour fails, the rest of it waits for the next run
  let inBatch: ReadonlyArray<Envelope<Msg>> | undefined
  let at = 0
  return Effect.gen(function*() {
    let state = Effect.isEffect(behavior.initial) ? yield* behavior.initial : behavior.initial
    while (true) {
      let batch: ReadonlyArray<Envelope<Msg>> | undefined
      if (mailbox.backlog.length > 0) {
        batch = mailbox.backlog
        mailbox.backlog = []
      } else {
        batch = yield* takeBatch
      }
      if (batch === undefined) return
      for (let i = 0; i < batch.length; i++) {
        const envelope = batch[i]!
        mailbox.current = envelope
        inBatch = batch
        at = i
        state = yield* behavior.receive(state, envelope.message)
        inBatch = undefined
        if (envelope.reply !== undefined && !Deferred.isDoneUnsafe(envelope.reply)) {
          // the behaviour did not answer: the asker must not wait for its timeout
          yield* Deferred.fail(envelope.reply, new ActorStopped({ actor: mailbox.name }))
        }
        mailbox.current = undefined
      }
    }
  }).pipe(
    Effect.onExit((exit) =>
      Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => {
        if (inBatch !== undefined) mailbox.backlog = inBatch.slice(at + 1) as Array<Envelope<Msg>>
        inBatch = undefined
        const current = mailbox.current
        mailbox.current = undefined
        if (current?.reply !== undefined) Deferred.doneUnsafe(current.reply, Exit.fail(new ActorStopped({ actor: mailbox.name })))
      })
    )
  )
}

/**
 * An unsupervised actor: creates the ref and forks its processing fiber into
 * the current scope. If the behaviour fails, the actor ends: asks then fail
 * with ActorStopped and the failure is logged.
 *
 * @example
 * type Msg = { readonly _tag: "Add"; readonly n: number } | { readonly _tag: "Get"; readonly reply: Actor.Reply<number> }
 * const counter = yield* Actor.spawn<Msg, number, never, never>({
 *   initial: 0,
 *   receive: (total, msg) => msg._tag === "Add" ? Effect.succeed(total + msg.n) : Effect.as(msg.reply.succeed(total), total)
 * }, { name: "counter" })
 * yield* counter.tell({ _tag: "Add", n: 2 })
 * const n = yield* counter.ask<number>((reply) => ({ _tag: "Get", reply }))
 */
export const spawn = <Msg, S, E, R>(
  behavior: Behavior<Msg, S, E, R>,
  options: ActorOptions
): Effect.Effect<ActorRef<Msg>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const mailbox = yield* make<Msg>(options)
    yield* Effect.forkScoped(
      run(mailbox, behavior).pipe(
        Effect.tapCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError(`actor ${options.name} failed`, cause)
        ),
        Effect.ensuring(mailbox.failPending)
      ),
      { startImmediately: true }
    )
    return mailbox
  })

/**
 * A supervisor child that runs `behavior` on `mailbox`: restarted with fresh
 * state after a failure (messages wait in the mailbox meanwhile); a stopped
 * mailbox ends it normally (so use `transient` to stop for good).
 */
export const runSupervised = <Msg, S, E, R>(
  mailbox: Mailbox<Msg>,
  behavior: Behavior<Msg, S, E, R>
): Effect.Effect<void, E, R> =>
  run(mailbox, behavior).pipe(Effect.tap(() => mailbox.failPending))

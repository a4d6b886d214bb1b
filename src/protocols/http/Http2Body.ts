/**
 * An HTTP/2 request body, read from its stream only when the app asks: the
 * stream stays paused otherwise, so flow control holds the client back.
 * Bounded by `maxBody` (413), a read that makes no progress for the
 * request timeout fails with 408, a stream the client resets with 499.
 */
import { Effect, Option } from "effect"
import type * as NodeHttp2 from "node:http2"
import * as Req from "./Request.ts"

/** The request body, read from the stream when the app asks (paused otherwise, so flow control holds the client back). */
export class StreamBody implements Req.BodyChunks {
  done = false
  private started = false
  private readonly chunks: Array<Buffer> = []
  private held = 0
  private received = 0
  private ended = false
  private failure: Req.BodyError | undefined = undefined
  private waiter: ((effect: Effect.Effect<Option.Option<Uint8Array>, Req.BodyError>) => void) | undefined = undefined
  private readEffect: Effect.Effect<Option.Option<Uint8Array>, Req.BodyError> | undefined = undefined
  private readonly stream: NodeHttp2.ServerHttp2Stream
  private readonly maxBody: number
  private readonly timeoutMs: number

  constructor(stream: NodeHttp2.ServerHttp2Stream, maxBody: number, timeoutMs: number) {
    this.stream = stream
    this.maxBody = maxBody
    this.timeoutMs = timeoutMs
  }

  get read(): Effect.Effect<Option.Option<Uint8Array>, Req.BodyError> {
    return this.readEffect ??= Effect.callback((resume) => {
      if (!this.started) this.start()
      if (this.give(resume)) return
      this.waiter = resume
      return Effect.sync(() => {
        this.waiter = undefined
      })
    })
  }

  /** Answers a read now if it can: a chunk, the end, or why the body broke. */
  private give(resume: (effect: Effect.Effect<Option.Option<Uint8Array>, Req.BodyError>) => void): boolean {
    const chunk = this.chunks.shift()
    if (chunk !== undefined) {
      this.held -= chunk.byteLength
      if (this.held < HELD && this.stream.isPaused()) this.stream.resume()
      resume(Effect.succeed(Option.some(chunk)))
    } else if (this.failure !== undefined) resume(Effect.fail(this.failure))
    else if (this.ended) {
      this.done = true
      resume(NONE)
    } else return false
    return true
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    this.waiter = undefined
    if (!this.give(waiter)) this.waiter = waiter
  }

  /** Nobody will read the rest: what arrives is dropped, never held (the answer is out). */
  discard(): void {
    this.discarding = true
    this.chunks.length = 0
    this.held = 0
  }
  private discarding = false

  private fail(status: 408 | 413 | 499, reason: string): void {
    if (this.failure !== undefined || this.ended || this.discarding) return
    this.failure = new Req.BodyError({ status, reason })
    this.stream.pause()
    this.wake()
  }

  private start(): void {
    this.started = true
    const stream = this.stream
    stream.on("data", (chunk: Buffer) => {
      if (this.discarding) return
      this.received += chunk.byteLength
      if (this.received > this.maxBody) return this.fail(413, `request body larger than ${this.maxBody} bytes`)
      this.chunks.push(chunk)
      this.held += chunk.byteLength
      if (this.held >= HELD) stream.pause()
      this.wake()
    })
    stream.on("end", () => {
      this.ended = true
      stream.setTimeout(0)
      this.wake()
    })
    stream.on("close", () => this.fail(499, "the client reset the stream"))
    stream.setTimeout(this.timeoutMs, () => this.fail(408, "request body not received in time"))
  }

  /** Whether the client is still sending (the body was not read to its end). */
  get open(): boolean {
    return !this.ended && !this.stream.readableEnded
  }
}

/** Body bytes held for an app that reads slower than the client sends, before the stream is paused. */
const HELD = 64 * 1024
const NONE: Effect.Effect<Option.Option<Uint8Array>> = Effect.succeed(Option.none())


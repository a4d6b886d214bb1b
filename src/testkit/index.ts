/**
 * fiberd/testkit: property-test protocol handlers in memory with fast-check.
 *
 * - `MemoryConnection.makePair`: an in-memory Connection pair (same contract as a socket).
 * - `Script.run`: run a handler against a scripted client; get its output, ending and Exit.
 * - `Arbitraries`: chunkings (down to one byte at a time), interleavings, slow readers, resets.
 * - `Property.assert` / `Property.check` / `Property.modelRun`: fast-check inside Effect tests,
 *   with a fresh TestClock per run.
 * - `MemoryServer.make`: several in-memory clients of one handler.
 * - `Show`: readable bytes for messages.
 * - `Http2Memory.exchange`: an HTTP/2 connection in memory (node:http2's client), the client's bytes split at will.
 */
export * as Arbitraries from "./Arbitraries.ts"
export * as Http2Memory from "./Http2Memory.ts"
export * as MemoryConnection from "./MemoryConnection.ts"
export * as MemoryServer from "./MemoryServer.ts"
export * as Property from "./Property.ts"
export * as Script from "./Script.ts"
export * as Show from "./Show.ts"

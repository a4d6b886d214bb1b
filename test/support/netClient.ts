/**
 * Small node:net client helpers for end-to-end tests against real sockets.
 */
import * as Net from "node:net"
import type { BoundAddress } from "../../src/io/Listener.ts"

/** Connection options for a bound listener address. */
export const target = (address: BoundAddress): Net.NetConnectOpts =>
  address._tag === "unix" ? { path: address.path } : { host: address.host, port: address.port }

/** Opens a client connection; rejects on error. */
export const connect = (address: BoundAddress | Net.NetConnectOpts): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect("_tag" in address ? target(address) : address)
    socket.once("connect", () => {
      socket.removeListener("error", reject)
      resolve(socket)
    })
    socket.once("error", reject)
  })

/** Everything the peer sends until it closes; resolves on 'close' (errors are ignored, bytes kept). */
export const readAll = (socket: Net.Socket): Promise<Buffer> =>
  new Promise((resolve) => {
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", () => {})
    socket.once("close", () => resolve(Buffer.concat(chunks)))
  })

/** Resolves once `socket` has received at least `n` bytes, with those bytes. */
export const readBytes = (socket: Net.Socket, n: number): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let got = 0
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      got += chunk.byteLength
      if (got >= n) {
        socket.removeListener("data", onData)
        socket.removeListener("close", onClose)
        resolve(Buffer.concat(chunks))
      }
    }
    const onClose = () => reject(new Error(`closed after ${got} of ${n} bytes`))
    socket.on("data", onData)
    socket.once("close", onClose)
  })

/** Resolves when the socket closes; with whether it saw an error (e.g. a reset). */
export const closed = (socket: Net.Socket): Promise<{ readonly error: boolean }> =>
  new Promise((resolve) => {
    if (socket.destroyed) return resolve({ error: socket.errored !== null })
    let error = false
    socket.on("error", () => {
      error = true
    })
    socket.once("close", () => resolve({ error }))
  })

/** Writes chunks one by one, waiting for each to be handed to the kernel. */
export const writeChunks = async (socket: Net.Socket, chunks: ReadonlyArray<Uint8Array>): Promise<void> => {
  for (const chunk of chunks) {
    await new Promise<void>((resolve, reject) => socket.write(chunk, (e) => (e ? reject(e) : resolve())))
  }
}

/** Deterministic pseudo-random generator (mulberry32) so failures replay. */
export const prng = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Waits a little, in real time (for real sockets only). */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A TCP port free on loopback right now (for a process that must be told its port before it starts). */
export const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = Net.createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as Net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })

/**
 * The listening socket, one of a listener's three roles (Ranch's): it binds
 * (replacing a stale Unix socket file), accepts every connection paused, and
 * hands each to the listener that owns the socket now. It outlives one
 * listener: on a reload the new listener takes it over (no new bind, no
 * refused connection) while the old one drains what it has (nginx's reload).
 * Over TLS it holds the TLS side, which never listens itself: a connection
 * admitted by its listener is handed to it for the handshake, and the
 * handshake's end goes back to the listener that began it.
 */
import { Data, Effect } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import type * as NodeTls from "node:tls"
import * as Tls from "./Tls.ts"

/** The listener could not bind (address in use, permission denied, bad address...). */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly service: string
  readonly address: string
  readonly code: string
  readonly reason: string
}> {
  override get message() {
    return `${this.service}: cannot listen: ${this.reason} (${this.address})`
  }
}

/** Where to bind. */
export interface BindOptions {
  readonly name: string
  readonly host: string
  readonly port: number
  readonly path?: string | undefined
  readonly ipv6Only?: boolean | undefined
  readonly reusePort?: boolean | undefined
  readonly backlog: number
  /** A listening socket's descriptor handed to this process (socket activation): listened on, nothing bound. */
  readonly fd?: number | undefined
}

/** The listener that owns the socket: where accepted connections and accept errors go. */
export interface SocketOwner {
  readonly onConnection: (socket: Net.Socket) => void
  readonly onError: (error: NodeJS.ErrnoException) => void
}

/** The listener that began a TLS handshake, and what it does when the handshake ends. */
export interface HandshakeOwner {
  secure(raw: Net.Socket, socket: NodeTls.TLSSocket): void
  failed(raw: Net.Socket, error: Error): void
  closed(raw: Net.Socket): void
}

const kHandshake = Symbol.for("fiberd/handshake")
type HandshakingSocket = Net.Socket & { [kHandshake]?: HandshakeOwner | undefined }
/** The TCP socket under a TLS socket (node:tls keeps it as `_parent`). */
const rawOf = (socket: NodeTls.TLSSocket): HandshakingSocket | undefined => (socket as unknown as { _parent?: HandshakingSocket })._parent
function onHandshakeSocketClose(this: HandshakingSocket) {
  const owner = this[kHandshake]
  this[kHandshake] = undefined
  owner?.closed(this)
}

const describeListenError = (code: string | undefined, fallback: string): string => {
  switch (code) {
    case "EADDRINUSE":
      return "address already in use, EADDRINUSE"
    case "EACCES":
      return "permission denied, EACCES"
    case "EADDRNOTAVAIL":
      return "address not available on this machine, EADDRNOTAVAIL"
    default:
      return code === undefined ? fallback : `${fallback}, ${code}`
  }
}

const bindServer = (server: Net.Server, options: Net.ListenOptions): Promise<void> =>
  new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.removeListener("listening", onListening)
      reject(error)
    }
    const onListening = () => {
      server.removeListener("error", onError)
      resolve()
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(options)
  })

/** True when nothing answers on the Unix socket at `path` (a leftover of a dead process). */
const isStaleSocket = (path: string): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = Net.connect({ path })
    probe.once("connect", () => {
      probe.destroy()
      resolve(false)
    })
    probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
  })

/**
 * A listening socket that can outlive one listener. Pass the same
 * `ListenSocket` to the listeners of a service's successive configurations;
 * whoever took it last owns it, and the owner closes it when it stops.
 */
export class ListenSocket {
  private server: Net.Server | undefined = undefined
  private owner: SocketOwner | undefined = undefined
  private tlsServer: Tls.TlsServer | undefined = undefined

  /** Bound and listening (some listener has it, or had it and a successor may take it). */
  get listening(): boolean {
    return this.server?.listening === true
  }

  /** Serves TLS. */
  get isTls(): boolean {
    return this.tlsServer !== undefined
  }

  /** Whether `owner` owns the socket now. */
  isOwnedBy(owner: SocketOwner): boolean {
    return this.owner === owner
  }

  /** The bound server (for its address). */
  get address(): Net.AddressInfo | string | null {
    return this.server?.address() ?? null
  }

  /**
   * Binds, with a TLS side when `tls` is given, and accepts for `owner`.
   * Every connection arrives paused; `onServer` sees the server once it listens.
   */
  bind(options: BindOptions, owner: SocketOwner, tls: Tls.TlsServer | undefined, onServer?: (server: Net.Server) => void): Effect.Effect<void, ListenError> {
    const server = Net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true })
    // A prefork worker can be handed a connection (node:cluster) in the same turn as its listen answer,
    // before the bind below completes: such early connections wait for the owner rather than being reset.
    let early: Array<Net.Socket> | undefined = []
    server.on("connection", (socket: Net.Socket) => {
      if (this.owner !== undefined && this.server === server) this.owner.onConnection(socket)
      else if (early !== undefined) early.push(socket)
      else socket.destroy()
    })
    if (tls !== undefined) this.routeHandshakes(tls)
    const display = options.fd !== undefined ? `inherited descriptor ${options.fd}` : options.path ?? `${options.host}:${options.port}`
    return Effect.tryPromise({
      try: async () => {
        const path = options.path
        if (options.fd !== undefined) {
          // node:net listens on a descriptor given as a handle object `{ fd }`
          await bindServer(server, { fd: options.fd, backlog: options.backlog } as Net.ListenOptions)
        } else if (path !== undefined) {
          try {
            await bindServer(server, { path, backlog: options.backlog })
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || !(await isStaleSocket(path))) throw error
            await Fs.promises.unlink(path)
            await bindServer(server, { path, backlog: options.backlog })
          }
        } else {
          await bindServer(server, {
            host: options.host,
            port: options.port,
            backlog: options.backlog,
            ipv6Only: options.ipv6Only === true,
            ...(options.reusePort === true ? { reusePort: true, exclusive: true } : {})
          })
        }
      },
      catch: (error) => {
        const e = error as NodeJS.ErrnoException
        return new ListenError({ service: options.name, address: display, code: e.code ?? "EUNKNOWN", reason: describeListenError(e.code, e.message) })
      }
    }).pipe(Effect.andThen(Effect.sync(() => {
      this.server = server
      this.tlsServer = tls
      this.owner = owner
      server.on("error", (error: NodeJS.ErrnoException) => this.owner?.onError(error))
      onServer?.(server)
      const waiting = early!
      early = undefined
      for (const socket of waiting) owner.onConnection(socket)
    })))
  }

  /** A successor takes the bound socket over (new TLS certificates, when given, for connections from now on). */
  takeOver(owner: SocketOwner, contexts: Tls.Contexts | undefined): void {
    this.owner = owner
    if (contexts !== undefined) this.tlsServer?.replace(contexts)
  }

  /** Uses new TLS certificates for new connections (open ones keep theirs). */
  replaceCertificates(contexts: Tls.Contexts): void {
    this.tlsServer?.replace(contexts)
  }

  /**
   * `owner` stops: when it still owns the socket, it stops accepting now and the effect completes once
   * every connection of the server is gone; otherwise a successor has it and nothing closes.
   */
  release(owner: SocketOwner): Effect.Effect<void> {
    if (this.owner !== owner || this.server === undefined) return Effect.void
    const server = this.server
    this.server = undefined
    this.owner = undefined
    this.tlsServer = undefined
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    return Effect.promise(() => closed)
  }

  /** Hands a connection to whoever owns the socket now (a TLS socket whose handshake a predecessor began). */
  forward(socket: Net.Socket): boolean {
    if (this.owner === undefined) return false
    this.owner.onConnection(socket)
    return true
  }

  /** Begins the TLS handshake of an admitted TCP socket; `owner` hears how it ends. */
  beginHandshake(raw: Net.Socket, owner: HandshakeOwner): void {
    const socket = raw as HandshakingSocket
    socket[kHandshake] = owner
    socket.once("close", onHandshakeSocketClose)
    // during the handshake a peer that sends FIN is gone: close at once rather than at the handshake timeout
    socket.allowHalfOpen = false
    this.tlsServer!.server.emit("connection", socket)
  }

  /** A handshake's end was handled (its socket goes on as a connection, or is gone): its owner hears no more. */
  static handshakeOver(raw: Net.Socket): void {
    ;(raw as HandshakingSocket)[kHandshake] = undefined
  }

  /** Routes the TLS side's handshake results to the listener that began each handshake. */
  private routeHandshakes(tls: Tls.TlsServer): void {
    tls.server.on("secureConnection", (socket: NodeTls.TLSSocket) => {
      const raw = rawOf(socket)
      const owner = raw?.[kHandshake]
      if (owner === undefined) socket.destroy()
      else owner.secure(raw!, socket)
    })
    tls.server.on("tlsClientError", (error: Error, socket: NodeTls.TLSSocket) => {
      const raw = rawOf(socket)
      raw?.[kHandshake]?.failed(raw, error)
    })
  }
}

/**
 * TLS for listeners: certificates read from files into secure contexts (a
 * default one and one per SNI host name), ALPN, a handshake timeout, and
 * reload in place: new connections get the new certificates, open ones keep
 * theirs, and session tickets stay valid (the ticket keys are made once per
 * process and reused by every context).
 */
import { Data, Effect } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as NodeTls from "node:tls"

/** A certificate and its key, as file paths (PEM). */
export interface CertFiles {
  readonly cert: string
  readonly key: string
}

/**
 * TLS options of a listener (paths are read at start and again on `reloadTls`).
 *
 * @example
 * const tls: Tls.TlsOptions = { cert: "certs/site.crt", key: "certs/site.key", sni: { "api.example.org": { cert: "certs/api.crt", key: "certs/api.key" } } }
 * const listener = yield* Listener.make({ name: "secure-echo", port: 7443, tls }, Echo.handler)
 * yield* listener.reloadTls // after renewing the files: new connections get the new certificates
 */
export interface TlsOptions extends CertFiles {
  /** CA certificates (PEM file) to verify client certificates with; setting it asks clients for one. */
  readonly ca?: string
  /** Refuse clients without a valid certificate (only with `ca`). Default false: the certificate is optional. */
  readonly requireClientCert?: boolean
  /** Oldest protocol accepted. Default `"TLSv1.2"`. */
  readonly minVersion?: NodeTls.SecureVersion
  /** Certificates per host name (SNI); a client asking for another name gets the default one. */
  readonly sni?: Readonly<Record<string, CertFiles>>
  /** ALPN protocols offered, in preference order (HTTP services offer `http/1.1`). */
  readonly alpn?: ReadonlyArray<string>
  /** A handshake not finished in this many milliseconds is dropped. Default 10,000. */
  readonly handshakeTimeoutMillis?: number
  /**
   * Handshakes one peer address may have in progress at once; more are refused (closed) and counted.
   * (Every handshake also holds one of the listener's `maxConnections` slots.) Default a quarter of
   * `maxConnections`, at most 128.
   */
  readonly maxHandshakesPerAddress?: number
}

/** What a protocol may want to know about a TLS connection. */
export interface TlsInfo {
  /** `TLSv1.3`, `TLSv1.2`... */
  readonly protocol: string | null
  /** The ALPN protocol agreed on, or false. */
  readonly alpnProtocol: string | false
  /** The host name the client asked for (SNI), if any. */
  readonly servername: string | undefined
  /** The client's certificate, when one was asked for (`ca`) and sent. */
  readonly peerCertificate: NodeTls.PeerCertificate | undefined
}

/** A certificate or key that cannot be used: unreadable file, bad PEM, or a key that does not match. */
export class TlsConfigError extends Data.TaggedError("TlsConfigError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message() {
    return `TLS: ${this.reason} (${this.file})`
  }
}

/** Session ticket keys: made once per process, so tickets survive certificate reloads. */
const ticketKeys = Crypto.randomBytes(48)

const readPem = (file: string): Effect.Effect<Buffer, TlsConfigError> =>
  Effect.tryPromise({
    try: () => Fs.promises.readFile(file),
    catch: (e) => new TlsConfigError({ file, reason: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` })
  })

/** The secure-context options of one certificate and key, checked: each parses, and the key matches the certificate. */
const loadPair = (files: CertFiles, common: NodeTls.SecureContextOptions): Effect.Effect<NodeTls.SecureContextOptions, TlsConfigError> =>
  Effect.gen(function*() {
    const cert = yield* readPem(files.cert)
    const key = yield* readPem(files.key)
    const check = <A>(file: string, reason: string, f: () => A) =>
      Effect.try({ try: f, catch: (e) => new TlsConfigError({ file, reason: `${reason}: ${e instanceof Error ? e.message : String(e)}` }) })
    const x509 = yield* check(files.cert, "not a PEM certificate", () => new Crypto.X509Certificate(cert))
    const privateKey = yield* check(files.key, "not a PEM private key", () => Crypto.createPrivateKey(key))
    if (!x509.checkPrivateKey(privateKey)) {
      return yield* new TlsConfigError({ file: files.key, reason: `the key does not match the certificate ${files.cert}` })
    }
    const options: NodeTls.SecureContextOptions = { ...common, cert, key }
    yield* check(files.cert, "unusable certificate", () => NodeTls.createSecureContext(options))
    return options
  })

/** The loaded contexts of a listener: the default one, and one per SNI name. */
export interface Contexts {
  readonly base: NodeTls.SecureContextOptions
  readonly sni: ReadonlyMap<string, NodeTls.SecureContext>
}

/** Reads every certificate and key of `options`; fails naming the first file that cannot be used. */
export const load = (options: TlsOptions): Effect.Effect<Contexts, TlsConfigError> =>
  Effect.gen(function*() {
    const common: NodeTls.SecureContextOptions = {
      minVersion: options.minVersion ?? "TLSv1.2",
      ...(options.ca !== undefined ? { ca: yield* readPem(options.ca) } : {})
    }
    const base = yield* loadPair(options, common)
    const sni = new Map<string, NodeTls.SecureContext>()
    for (const [name, files] of Object.entries(options.sni ?? {})) {
      sni.set(name.toLowerCase(), NodeTls.createSecureContext(yield* loadPair(files, common)))
    }
    return { base, sni }
  })

/**
 * A TLS server for a listener, with its contexts swappable in place: the
 * SNI callback looks names up in the current map, `setSecureContext`
 * replaces the default.
 */
export class TlsServer {
  private contexts: Contexts
  readonly server: NodeTls.Server
  constructor(options: TlsOptions, contexts: Contexts) {
    this.contexts = contexts
    this.server = NodeTls.createServer({
      ...contexts.base,
      ticketKeys,
      allowHalfOpen: true,
      noDelay: true,
      handshakeTimeout: options.handshakeTimeoutMillis ?? 10_000,
      ...(options.alpn !== undefined ? { ALPNProtocols: [...options.alpn] } : {}),
      ...(options.ca !== undefined ? { requestCert: true, rejectUnauthorized: options.requireClientCert ?? false } : {}),
      SNICallback: (name, done) => done(null, this.contexts.sni.get(name.toLowerCase()))
    })
    // a failed or timed-out handshake ends its socket (the listener counts it)
    this.server.on("tlsClientError", (_error: Error, socket: NodeTls.TLSSocket) => socket.destroy())
  }

  /** Uses new contexts for connections from now on (open ones keep theirs). */
  replace(contexts: Contexts): void {
    this.contexts = contexts
    this.server.setSecureContext({ ...contexts.base, ticketKeys })
  }
}

/** TLS details of a socket, or undefined for a plain one. */
export const infoOf = (socket: Net.Socket): TlsInfo | undefined => {
  if (!(socket instanceof NodeTls.TLSSocket)) return undefined
  const peer = socket.getPeerCertificate()
  return {
    protocol: socket.getProtocol(),
    alpnProtocol: socket.alpnProtocol ?? false,
    servername: (socket as NodeTls.TLSSocket & { servername?: string | false }).servername || undefined,
    peerCertificate: peer !== undefined && Object.keys(peer).length > 0 ? peer : undefined
  }
}

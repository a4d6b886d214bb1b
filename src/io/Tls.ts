/**
 * TLS for listeners: certificates read from files into secure contexts (a
 * default one and one per SNI host name), ALPN, a handshake timeout, and
 * reload in place: new connections get the new certificates, open ones keep
 * theirs, and session tickets stay valid (the ticket keys are made once per
 * process and reused by every context).
 */
import { Data, Effect, Schema } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as NodeTls from "node:tls"
import * as Options from "../core/Options.ts"

/** A certificate and its key, as file paths (PEM). */
export const CertFiles = Schema.Struct({
  cert: Schema.String.annotate({ description: "the certificate (PEM file)" }),
  key: Schema.String.annotate({ description: "its private key (PEM file)" })
})
export type CertFiles = typeof CertFiles.Type

/**
 * Mozilla's "intermediate" server profile (ssl-config.mozilla.org, v5.7) for TLS 1.2, ECDHE only:
 * forward secrecy and AEAD (GCM, ChaCha20-Poly1305), no CBC suites (LUCKY13), no RSA key exchange.
 */
export const INTERMEDIATE_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305"
].join(":")

/**
 * TLS options of a listener, declared once (the service table's `tls` key is the same schema).
 * Paths are read at start and again on `reloadTls`.
 */
export const options = Options.declare({
  ...CertFiles.fields,
  ca: Options.option(Schema.String, "CA certificates (PEM file) to verify client certificates with; setting it asks clients for one"),
  requireClientCert: Options.option(Schema.Boolean, "refuse clients without a valid certificate (only with `ca`)", false),
  minVersion: Options.option(Schema.Literals(["TLSv1.2", "TLSv1.3"]), "the oldest protocol accepted", "TLSv1.2"),
  ciphers: Options.option(
    Schema.String,
    "TLS 1.2 cipher suites offered, OpenSSL syntax (default: Mozilla's \"intermediate\" profile, ECDHE with AEAD only; TLS 1.3 suites are all AEAD)",
    INTERMEDIATE_CIPHERS
  ),
  sni: Options.option(Schema.Record(Schema.String, CertFiles), "certificates per host name (SNI); a client asking for another name gets the default one"),
  alpn: Options.option(Schema.Array(Schema.String), "ALPN protocols offered, in preference order (HTTP services offer `h2` and `http/1.1`, or only `http/1.1` with `http2: off`)"),
  ocsp: Options.option(
    Schema.String,
    "an OCSP response for the default certificate (DER file, as `openssl ocsp -respout` writes it), stapled to handshakes of clients that ask (nginx's `ssl_stapling_file`); read again with the certificates"
  ),
  handshakeTimeout: Options.option(Options.Duration, "a handshake not finished in this time is dropped", "10 seconds"),
  maxHandshakesPerAddress: Options.option(
    Options.PositiveInt,
    "handshakes one client address may have in progress at once; more are closed and counted (default: a quarter of `maxConnections`, at most 128)"
  )
})

/**
 * TLS options of a listener (see `options`).
 *
 * @example
 * const tls: Tls.TlsOptions = { cert: "certs/site.crt", key: "certs/site.key", sni: { "api.example.org": { cert: "certs/api.crt", key: "certs/api.key" } } }
 * const listener = yield* Listener.make({ name: "secure-echo", port: 7443, tls }, Echo.handler)
 * yield* listener.reloadTls // after renewing the files: new connections get the new certificates
 */
export type TlsOptions = typeof options.schema.Type

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

const Tls = options

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
  /** The stapled OCSP response and the certificate (DER) it is for. */
  readonly ocsp?: { readonly response: Buffer; readonly certificate: Buffer }
}

/** Reads an OCSP response file: a DER SEQUENCE, checked no further (the client judges it). */
const readOcsp = (file: string): Effect.Effect<Buffer, TlsConfigError> =>
  Effect.flatMap(
    Effect.tryPromise({
      try: () => Fs.promises.readFile(file),
      catch: (e) => new TlsConfigError({ file, reason: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` })
    }),
    (der) => der.byteLength > 2 && der[0] === 0x30 ? Effect.succeed(der) : Effect.fail(new TlsConfigError({ file, reason: "not a DER OCSP response" }))
  )

/** Reads every certificate and key of `options`; fails naming the first file that cannot be used. */
export const load = (given: TlsOptions): Effect.Effect<Contexts, TlsConfigError> =>
  Effect.gen(function*() {
    const options = Tls.resolve(given)
    const common: NodeTls.SecureContextOptions = {
      minVersion: options.minVersion,
      ciphers: options.ciphers,
      ...(options.ca !== undefined ? { ca: yield* readPem(options.ca) } : {})
    }
    yield* Effect.try({
      try: () => NodeTls.createSecureContext({ ciphers: options.ciphers }),
      catch: (e) => new TlsConfigError({ file: "ciphers", reason: `unusable cipher list ${JSON.stringify(options.ciphers)}: ${e instanceof Error ? e.message : String(e)}` })
    })
    const base = yield* loadPair(options, common)
    const sni = new Map<string, NodeTls.SecureContext>()
    for (const [name, files] of Object.entries(options.sni ?? {})) {
      sni.set(name.toLowerCase(), NodeTls.createSecureContext(yield* loadPair(files, common)))
    }
    if (options.ocsp === undefined) return { base, sni }
    const response = yield* readOcsp(options.ocsp)
    return { base, sni, ocsp: { response, certificate: new Crypto.X509Certificate(base.cert as Buffer).raw } }
  })

/**
 * A TLS server for a listener, with its contexts swappable in place: the
 * SNI callback looks names up in the current map, `setSecureContext`
 * replaces the default.
 */
export class TlsServer {
  private contexts: Contexts
  readonly server: NodeTls.Server
  constructor(given: TlsOptions, contexts: Contexts) {
    const options = Tls.resolve(given)
    this.contexts = contexts
    this.server = NodeTls.createServer({
      ...contexts.base,
      ticketKeys,
      allowHalfOpen: true,
      noDelay: true,
      handshakeTimeout: Options.millis(options.handshakeTimeout),
      ...(options.alpn !== undefined ? { ALPNProtocols: [...options.alpn] } : {}),
      ...(options.ca !== undefined ? { requestCert: true, rejectUnauthorized: options.requireClientCert } : {}),
      SNICallback: (name, done) => done(null, this.contexts.sni.get(name.toLowerCase()))
    })
    // a failed or timed-out handshake ends its socket (the listener counts it)
    this.server.on("tlsClientError", (_error: Error, socket: NodeTls.TLSSocket) => socket.destroy())
    // OCSP stapling: the response file's bytes for the default certificate (not for the SNI ones)
    this.server.on("OCSPRequest", (certificate: Buffer, _issuer: Buffer, done: (error: Error | null, response: Buffer) => void) => {
      const ocsp = this.contexts.ocsp
      done(null, (ocsp !== undefined && ocsp.certificate.equals(certificate) ? ocsp.response : undefined) as Buffer)
    })
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

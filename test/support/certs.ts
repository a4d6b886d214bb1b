/**
 * Throwaway TLS certificates for tests, made with the `openssl` CLI in a
 * temporary directory (never committed): self-signed, with the host names
 * and IP addresses given as subjectAltName.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export interface TestCert {
  readonly cert: string
  readonly key: string
  /** The certificate's PEM text (a client trusts it as its CA). */
  readonly pem: string
}

/** A temporary directory for certificates (removed when the process exits). */
export const certDir = (): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-tls-"))
  process.once("exit", () => Fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Makes a self-signed certificate for `names` (DNS names; `127.0.0.1` is added as an IP SAN) as `dir/base.{crt,key}`. */
export const makeCert = (dir: string, base: string, names: ReadonlyArray<string>): TestCert => {
  const cert = Path.join(dir, `${base}.crt`)
  const key = Path.join(dir, `${base}.key`)
  const san = [...names.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",")
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${san}`
  ], { stdio: "pipe" })
  return { cert, key, pem: Fs.readFileSync(cert, "utf8") }
}

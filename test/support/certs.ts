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

/** A throwaway certificate authority and a leaf certificate it signed, for tests that need a chain (OCSP). */
export interface TestChain {
  readonly ca: { readonly cert: string; readonly key: string }
  readonly leaf: TestCert
}

const openssl = (args: ReadonlyArray<string>, cwd: string) => execFileSync("openssl", args, { cwd, stdio: "pipe" })

/** Makes a CA and a leaf for `names` (plus IP 127.0.0.1) signed by it, under `dir/base-*`. */
export const makeChain = (dir: string, base: string, names: ReadonlyArray<string>): TestChain => {
  const p = (name: string) => Path.join(dir, `${base}-${name}`)
  openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.crt"),
    "-days", "2", "-subj", `/CN=${base} test CA`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  ], dir)
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("leaf.key"), "-out", p("leaf.csr"), "-subj", `/CN=${names[0]}`], dir)
  Fs.writeFileSync(p("ext.cnf"), `subjectAltName=${[...names.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",")}\n`)
  openssl(["x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-set_serial", "0x1234", "-out", p("leaf.crt"), "-days", "2", "-extfile", p("ext.cnf")], dir)
  return { ca: { cert: p("ca.crt"), key: p("ca.key") }, leaf: { cert: p("leaf.crt"), key: p("leaf.key"), pem: Fs.readFileSync(p("leaf.crt"), "utf8") } }
}

/** Writes an OCSP response for the chain's leaf saying `status`, signed by its CA (`openssl ocsp` as a responder), to `out`. */
export const writeOcspResponse = (dir: string, chain: TestChain, status: "good" | "revoked", out: string): void => {
  const end = new Date(openssl(["x509", "-in", chain.leaf.cert, "-noout", "-enddate"], dir).toString().trim().split("=")[1]!)
  const stamp = (d: Date) => d.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z"
  const index = Path.join(dir, `ocsp-index-${status}.txt`)
  Fs.writeFileSync(index, `${status === "good" ? "V" : "R"}\t${stamp(end)}\t${status === "good" ? "" : stamp(new Date())}\t1234\tunknown\t/CN=localhost\n`)
  const request = Path.join(dir, "ocsp-request.der")
  openssl(["ocsp", "-issuer", chain.ca.cert, "-cert", chain.leaf.cert, "-reqout", request, "-no_nonce"], dir)
  openssl(["ocsp", "-index", index, "-rsigner", chain.ca.cert, "-rkey", chain.ca.key, "-CA", chain.ca.cert, "-reqin", request, "-respout", out, "-ndays", "1"], dir)
}

/**
 * A throwaway self-signed certificate for the TLS benchmarks (openssl CLI,
 * temporary directory, never committed): its paths go to the servers in
 * FIBERD_BENCH_CERT / FIBERD_BENCH_KEY.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export const makeBenchCert = (): { readonly cert: string; readonly key: string } => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-bench-tls-"))
  const cert = Path.join(dir, "bench.crt")
  const key = Path.join(dir, "bench.key")
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"
  ], { stdio: "pipe" })
  process.once("exit", () => Fs.rmSync(dir, { recursive: true, force: true }))
  return { cert, key }
}

/** The certificate a benchmark server was given. */
export const benchCertFiles = (): { readonly cert: string; readonly key: string } => {
  const cert = process.env.FIBERD_BENCH_CERT
  const key = process.env.FIBERD_BENCH_KEY
  if (cert === undefined || key === undefined) throw new Error("FIBERD_BENCH_CERT and FIBERD_BENCH_KEY must be set")
  return { cert, key }
}

/**
 * Content codings, one set of rules for the compression middleware and the
 * static files' precompressed siblings: which types are worth compressing,
 * which codings a client accepts (`Accept-Encoding`, q=0 refused), and the
 * `Vary` field every answer whose coding depends on it carries.
 */

/** A coding fiberd produces or serves: brotli or gzip. */
export type Coding = "br" | "gzip"

/** Types worth compressing (text, JSON, JavaScript, XML, SVG, WebAssembly, manifests). */
export const compressible = (type: string): boolean => compressibleTypes.test(type)
const compressibleTypes = /^(text\/|application\/(json|javascript|xml|wasm|manifest\+json|ld\+json)|image\/svg\+xml)/i

/** The codings the client accepts (q > 0), from `Accept-Encoding`. */
export const accepted = (header: string | undefined): Set<string> => {
  const out = new Set<string>()
  if (header === undefined) return out
  for (const part of header.split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";")
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="))
    if (q !== undefined && Number(q.slice(2)) === 0) continue
    if (name !== undefined && name !== "") out.add(name)
  }
  return out
}

/** The first of `offered` the client accepts, if any. */
export const choose = (header: string | undefined, offered: ReadonlyArray<Coding>): Coding | undefined => {
  if (header === undefined) return undefined
  const wants = accepted(header)
  return offered.find((c) => wants.has(c))
}

/** The field an answer whose coding depends on Accept-Encoding carries (shared caches keep one copy per coding). */
export const VARY: readonly [string, string] = ["Vary", "Accept-Encoding"]

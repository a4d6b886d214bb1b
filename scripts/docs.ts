/**
 * The README's option tables, generated from the components' declarations
 * (`Options.declare`): `node scripts/docs.ts` rewrites every block between
 * `<!-- options:NAME -->` and `<!-- /options -->`; `--check` only says which
 * are out of date (the docs test runs it).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as AccessLog from "../src/actors/AccessLog.ts"
import * as ErrorLog from "../src/actors/ErrorLog.ts"
import * as Offload from "../src/actors/Offload.ts"
import * as Options from "../src/core/Options.ts"
import * as Listener from "../src/io/Listener.ts"
import * as Tls from "../src/io/Tls.ts"
import * as Chat from "../src/protocols/chat/Chat.ts"
import * as Exec from "../src/protocols/exec.ts"
import * as Serve from "../src/protocols/http/Serve.ts"
import * as WebSocket from "../src/protocols/websocket/WebSocket.ts"
import * as BundledSite from "../src/runtime/BundledSite.ts"
import * as ClusterMode from "../src/runtime/ClusterMode.ts"
import * as ServiceTable from "../src/runtime/ServiceTable.ts"

/** Every declared option set the README documents, by block name. */
export const blocks: Record<string, Options.Declared<any>> = {
  "listener-address": Listener.address,
  "listener-limits": Listener.limits,
  tls: Tls.options,
  http: Serve.options,
  site: BundledSite.options,
  websocket: WebSocket.options,
  chat: Chat.options,
  exec: Exec.options,
  server: ServiceTable.server,
  "access-log": AccessLog.options,
  "error-log": ErrorLog.options,
  offload: Offload.options,
  cluster: ClusterMode.options
}

const readme = Path.resolve(import.meta.dirname, "../README.md")

/** The README with every options block regenerated, and the names of the blocks that changed. */
export const regenerate = (text: string): { readonly text: string; readonly changed: ReadonlyArray<string>; readonly missing: ReadonlyArray<string> } => {
  const changed: Array<string> = []
  const seen = new Set<string>()
  const out = text.replace(/<!-- options:([a-z-]+) -->\n[\s\S]*?<!-- \/options -->/g, (whole, name: string) => {
    seen.add(name)
    const declared = blocks[name]
    if (declared === undefined) return whole
    const block = `<!-- options:${name} -->\n${Options.markdown(declared)}\n<!-- /options -->`
    if (block !== whole) changed.push(name)
    return block
  })
  return { text: out, changed, missing: Object.keys(blocks).filter((n) => !seen.has(n)) }
}

if (import.meta.filename === process.argv[1]) {
  const result = regenerate(Fs.readFileSync(readme, "utf8"))
  if (process.argv.includes("--check")) {
    if (result.changed.length + result.missing.length > 0) {
      console.error(`README options tables out of date: ${[...result.changed, ...result.missing.map((m) => `${m} (missing)`)].join(", ")}; run node scripts/docs.ts`)
      process.exit(1)
    }
  } else {
    Fs.writeFileSync(readme, result.text)
    console.log(result.changed.length > 0 ? `regenerated: ${result.changed.join(", ")}` : "up to date")
    if (result.missing.length > 0) console.log(`no block in the README for: ${result.missing.join(", ")}`)
  }
}

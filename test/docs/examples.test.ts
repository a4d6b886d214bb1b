/**
 * Every `@example` in the TSDoc of `src/` compiles: each is extracted,
 * wrapped in an `Effect.gen` body with the public API in scope (fiberd,
 * fiberd/testkit, effect, fast-check, @effect/vitest), and type-checked with
 * the project's TypeScript and compiler options. An example that names
 * something undefined, or uses an API wrongly, fails this test.
 */
import { assert, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "../..")
const out = Path.join(root, "node_modules", ".cache", "fiberd-doc-examples")

/** `{ file, line, code }` for every @example block under `dir`. */
const extract = (dir: string): Array<{ file: string; line: number; code: string }> => {
  const found: Array<{ file: string; line: number; code: string }> = []
  for (const entry of Fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".ts")) continue
    const file = Path.join(entry.parentPath, entry.name)
    const lines = Fs.readFileSync(file, "utf8").split("\n")
    lines.forEach((text, i) => {
      if (!/^\s*\* @example\s*$/.test(text)) return
      const body: Array<string> = []
      for (let j = i + 1; j < lines.length; j++) {
        const l = lines[j]!
        if (/^\s*\*\//.test(l) || /^\s*\* @\w+/.test(l)) break
        body.push(l.replace(/^\s*\* ?/, ""))
      }
      found.push({ file: Path.relative(root, file), line: i + 1, code: body.join("\n").trim() })
    })
  }
  return found
}

const prelude = `import { Context, Effect, Layer, Option, Queue, Schema, Stream } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"
import * as fc from "fast-check"
import { assert, it } from "@effect/vitest"
import {
  AccessLog, Actor, Chat, Codec, type Connection, Daytime, Delimited, Echo, ErrorLog, Exec, Http, HttpServer, LengthPrefixed,
  Lines, Listener, LogWriter, Middleware, Offload, Request, Response, Router, Serve, StaticFiles, Supervisor, Tls, Udp, WebSocketFrame
} from "../../../src/index.ts"
import { Arbitraries, Http2Memory, MemoryConnection, MemoryServer, Property, Script, Show } from "../../../src/testkit/index.ts"
`

it("every @example in src/ type-checks against the public API", { timeout: 120_000 }, async () => {
  const examples = extract(Path.join(root, "src"))
  assert.isAtLeast(examples.length, 15)
  Fs.rmSync(out, { recursive: true, force: true })
  Fs.mkdirSync(out, { recursive: true })
  examples.forEach((e, i) => {
    Fs.writeFileSync(
      Path.join(out, `example${i}.ts`),
      `// ${e.file}:${e.line}\n${prelude}\nexport const example${i} = () => Effect.gen(function*() {\n${e.code}\n})\n`
    )
  })
  const base = JSON.parse(Fs.readFileSync(Path.join(root, "tsconfig.json"), "utf8")) as { compilerOptions: object }
  Fs.writeFileSync(Path.join(out, "tsconfig.json"), JSON.stringify({ compilerOptions: base.compilerOptions, include: ["*.ts"] }))
  const result = await new Promise<{ code: number; output: string }>((resolve) =>
    execFile(Path.join(root, "node_modules/.bin/tsc"), ["-p", out], (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error.code as number) ?? 1, output: stdout + stderr })
    )
  )
  // name the source of each error: the generated file's first line says where the example lives
  const explained = result.output.replace(/example(\d+)\.ts/g, (m, i: string) => `${m} (${examples[Number(i)]!.file}:${examples[Number(i)]!.line})`)
  assert.strictEqual(result.code, 0, explained)
})

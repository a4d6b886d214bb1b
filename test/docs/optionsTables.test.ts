/**
 * The README's option tables are generated from the components' declared
 * options (scripts/docs.ts): this fails when a key was added, renamed or
 * given another default without the README following (run
 * `node scripts/docs.ts`), and when a declared option set has no table.
 */
import { assert, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { regenerate } from "../../scripts/docs.ts"

it("every declared option is in the README's tables, with its default and meaning", () => {
  const readme = Fs.readFileSync(Path.resolve(import.meta.dirname, "../../README.md"), "utf8")
  const result = regenerate(readme)
  assert.deepStrictEqual(result.missing, [], "option sets with no table in the README")
  assert.deepStrictEqual(result.changed, [], "tables out of date: run node scripts/docs.ts")
})

/**
 * The OTP model that fiberd's Supervisor is tested against
 * (`SupervisorStart.test.ts`), checked against real Erlang/OTP supervisors:
 * random scenarios of static children with planned start failures and
 * ignores, crashes and normal exits, startChild, terminateChild, restartChild
 * and deleteChild, on every strategy with significant children, run by
 * `otp_supervisor.escript` (Debian's erlang-base, installed by pretest). The
 * trace of starts, failed starts, ignores and exits, every answer, the
 * children listing and how the supervisor ended must be the same.
 * Time does not pass in OTP here (the window is an hour), so the intensity's
 * window is left to the fiberd-vs-model tests on TestClock time.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as fc from "fast-check"
import { model, type Scenario, staticScenario } from "./SupervisorModel.ts"

const atom = (s: string) => s.replaceAll("-", "_")
/** A scenario as an Erlang term, the model's picks standing in for "which child". */
const toTerm = (s: Scenario, picks: ReadonlyArray<string | undefined>): string => {
  let serial = 0
  const children = s.children.map((c, i) => `{c${i}, ${c.restart}, ${c.significant}, [${c.plan.join(", ")}]}`)
  const commands = s.commands.map((c, i) => {
    const id = picks[i] ?? "none"
    switch (c._tag) {
      case "exit":
        return `{exit, '${id}', ${c.crash ? "crash" : "normal"}}`
      case "plan":
        return `{plan, '${id}', [${c.outcomes.join(", ")}]}`
      case "start":
        return `{start, d${++serial}, ${c.restart}, ${c.significant}, ${c.outcome}}`
      case "advance":
        return "advance"
      default:
        return `{${c._tag}, '${id}'}`
    }
  })
  return `{${atom(s.strategy)}, ${atom(s.autoShutdown)}, ${s.maxRestarts}, 3600, [${children.join(", ")}], [${commands.join(", ")}]}.\n`
}

describe("the supervisor model against real OTP", () => {
  it("matches OTP 25's supervisors trace by trace on random scenarios", () => {
    const scenarios = fc.sample(staticScenario.map((s) => ({ ...s, period: 3_600_000 })), { numRuns: 300, seed: 29 })
    const expected = scenarios.map((s) => model(s))
    const dir = mkdtempSync(join(tmpdir(), "fiberd-otp-"))
    try {
      const file = join(dir, "scenarios.terms")
      writeFileSync(file, scenarios.map((s, i) => toTerm(s, expected[i]!.picks)).join(""))
      const output = execFileSync("escript", [join(import.meta.dirname, "otp_supervisor.escript"), file], { encoding: "utf8" })
      const blocks = output.split("---\n").slice(0, -1)
      expect(blocks.length).toBe(scenarios.length)
      blocks.forEach((block, i) => {
        const lines = block.split("\n").filter((l) => l.length > 0)
        const field = (prefix: string) => lines.filter((l) => l.startsWith(`${prefix} `)).map((l) => l.slice(prefix.length + 1))
        const want = expected[i]!
        const otp = { log: field("log"), answers: field("answer"), children: field("child"), end: field("end")[0] }
        const context = `scenario ${i}: ${toTerm(scenarios[i]!, want.picks)}`
        expect(otp.log, context).toEqual(want.log)
        expect(otp.end, context).toBe(want.end)
        // OTP's supervisor is gone once it ended: the model's later answers have no counterpart
        expect(otp.answers, context).toEqual(want.answers.slice(0, otp.answers.length))
        if (want.end === "running") {
          expect(otp.answers.length, context).toBe(want.answers.length)
          expect(otp.children, context).toEqual(want.children.map((c) => c.split(":").slice(0, 2).join(":")))
        }
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})

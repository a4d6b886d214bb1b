/**
 * `fiberd top` in a terminal (tmux: new-session, capture-pane): it shows the
 * running server's services and supervisor, and the request rate moves
 * while traffic flows; against a server that is not there, one line and
 * exit 1.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile, execFileSync } from "node:child_process"
import { mainScript, runOnce, start } from "../support/serverProcess.ts"

const tmux = (args: ReadonlyArray<string>) => execFileSync("tmux", args, { encoding: "utf8" })

describe("fiberd top", () => {
  it("under tmux: the services and the supervisor, and the request rate moving with traffic", { timeout: 60_000 }, async () => {
    const server = await start({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }, { name: "echo", protocol: "echo", listen: "127.0.0.1:0" }] })
    const session = `fiberd-top-${process.pid}`
    try {
      const url = `http://127.0.0.1:${server.port("web")}/_status/stream`
      tmux(["new-session", "-d", "-s", session, "-x", "140", "-y", "30", `${process.execPath} ${mainScript} top --url ${url}`])
      const screen = () => tmux(["capture-pane", "-p", "-t", session])
      /** The screen once it passes `test` (the test's timeout bounds the wait); traffic flows meanwhile. */
      const until = async (test: (text: string) => boolean) => {
        for (;;) {
          const text = screen()
          if (test(text)) return text
          await Promise.all(Array.from({ length: 10 }, () => new Promise((r) => execFile("curl", ["-s", "-o", "/dev/null", url.replace("/_status/stream", "/")], r))))
        }
      }
      const first = await until((t) => /^web\s/m.test(t) && /^echo\s/m.test(t))
      assert.match(first, /fiberd top — http:\/\/127\.0\.0\.1:\d+\/_status\/stream/)
      assert.match(first, /supervisor: web running · echo running/)
      const moving = await until((t) => {
        const row = /^web\s+([\d.]+)/m.exec(t)
        return row !== null && Number(row[1]) > 0
      })
      assert.match(moving, /^web\s+[1-9][\d.]*/m)
    } finally {
      try {
        tmux(["kill-session", "-t", session])
      } catch {
        // already gone
      }
      await server.stop()
    }
  })

  it("no server there: one line naming the URL, exit 1", async () => {
    const result = await runOnce(["top", "--url", "http://127.0.0.1:9/_status/stream"])
    assert.strictEqual(result.code, 1)
    assert.match(result.stderr, /^fiberd top: cannot reach the server: .* \(http:\/\/127\.0\.0\.1:9\/_status\/stream\)\n$/)
  })
})

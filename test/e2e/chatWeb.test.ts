/**
 * Chat across transports in the running server: a member on TCP (as with
 * `nc`) and a member over WebSocket (Node's built-in client, as a browser
 * tab would connect from /chat.html) share one room and see each other's
 * lines, nick changes and /who; the page itself is served.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import { start } from "../support/serverProcess.ts"

/** Collects lines from a source; `until` resolves when a line matching `pattern` arrived. */
const lineLog = () => {
  const lines: Array<string> = []
  const waiters: Array<() => void> = []
  return {
    lines,
    push: (line: string) => {
      lines.push(line)
      waiters.splice(0).forEach((w) => w())
    },
    until: (pattern: RegExp) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${pattern}; got:\n${lines.join("\n")}`)), 10_000)
        const check = () => {
          const found = lines.find((l) => pattern.test(l))
          if (found !== undefined) {
            clearTimeout(timer)
            resolve(found)
          } else waiters.push(check)
        }
        check()
      })
  }
}

describe("chat in the browser", () => {
  it("a TCP member and a WebSocket member share a room: lines, nicks and /who cross both ways", async () => {
    const server = await start({
      services: [
        { name: "web", protocol: "http", listen: "127.0.0.1:0", chat: "chat" },
        { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }
      ]
    })
    try {
      const page = await fetch(`http://127.0.0.1:${server.port("web")}/chat.html`)
      assert.strictEqual(page.status, 200)
      assert.include(await page.text(), "new WebSocket(")

      const tcp = lineLog()
      const socket = Net.connect({ host: "127.0.0.1", port: server.port("chat") })
      let pending = ""
      socket.on("data", (d: Buffer) => {
        pending += d.toString("utf8")
        const parts = pending.split("\r\n")
        pending = parts.pop()!
        parts.forEach(tcp.push)
      })
      await tcp.until(/welcome/)
      socket.write("/nick alice\r\n/join lobby\r\n")
      await tcp.until(/alice joined #lobby/)

      const ws = lineLog()
      const browser = new WebSocket(`ws://127.0.0.1:${server.port("web")}/chat`)
      browser.onmessage = (e) => ws.push(String(e.data))
      await ws.until(/welcome/)
      browser.send("/nick bob")
      browser.send("/join lobby")
      await tcp.until(/bob joined #lobby/)
      browser.send("hello from the browser ✓")
      assert.strictEqual(await tcp.until(/browser/), "<bob> hello from the browser ✓")
      socket.write("hello from nc\r\n")
      assert.strictEqual(await ws.until(/from nc/), "<alice> hello from nc")
      browser.send("/who")
      assert.match(await ws.until(/in #lobby/), /alice bob|bob alice/)
      const closed = new Promise<number>((resolve) => (browser.onclose = (e) => resolve(e.code)))
      browser.send("/quit")
      await tcp.until(/bob quit/)
      assert.strictEqual(await closed, 1000)
      socket.destroy()
    } finally {
      await server.stop()
    }
  })
})

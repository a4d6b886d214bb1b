/**
 * The live status feed in the running server: `curl -N /_status/stream`
 * (Server-Sent Events) gets a frame a second and sees the request rate of
 * traffic sent meanwhile; a viewer left open does not hold the shutdown (the
 * feed ends first, well inside a long drainTimeout).
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile, spawn } from "node:child_process"
import { start } from "../support/serverProcess.ts"

const curl = (args: ReadonlyArray<string>) =>
  new Promise<string>((resolve) => execFile("curl", ["-sS", ...args], { timeout: 15_000 }, (_e, out, err) => resolve(out + err)))

describe("live status", () => {
  it("curl -N /_status/stream: a frame a second, the request rate of the traffic; an open viewer does not hold the shutdown", { timeout: 60_000 }, async () => {
    const server = await start({ drainTimeout: "5 minutes", services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }] })
    const base = `http://127.0.0.1:${server.port("web")}`
    const viewer = spawn("curl", ["-sN", `${base}/_status/stream`])
    let events = ""
    const frames: Array<{ services: Array<{ name: string; requestsPerSecond: number }> }> = []
    let wake = () => {}
    viewer.stdout.on("data", (d: Buffer) => {
      events += d.toString()
      for (const block of events.split("\n\n").slice(0, -1)) {
        if (block.startsWith("data: ")) frames.push(JSON.parse(block.slice(6)))
      }
      events = events.slice(events.lastIndexOf("\n\n") + 2)
      wake()
    })
    const viewerDone = new Promise<void>((resolve) => viewer.once("exit", () => resolve()))
    try {
      // traffic until a frame shows it
      let busy: typeof frames[number] | undefined
      while (busy === undefined) {
        await Promise.all(Array.from({ length: 20 }, () => curl(["-o", "/dev/null", `${base}/`])))
        await new Promise<void>((resolve) => (wake = resolve))
        busy = frames.find((f) => (f.services.find((s) => s.name === "web")?.requestsPerSecond ?? 0) > 0)
      }
      assert.isAbove(frames.length, 0)
      // SIGTERM with the viewer still connected: the feed ends, the server exits 0 (not after the 5 minutes of drainTimeout: the test would time out)
      server.child.kill("SIGTERM")
      assert.strictEqual(await server.exited, 0)
      await viewerDone
    } finally {
      viewer.kill("SIGKILL")
      await server.stop()
    }
  })
})

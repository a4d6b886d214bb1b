/**
 * Bench server control: prints `listening PORT`, then answers `mem` lines on
 * stdin with a JSON line of memory use after a full GC (run with --expose-gc),
 * and `profile-start` / `profile-stop PATH` with `ok` once V8's CPU profiler
 * runs / its profile is written to PATH (so a profile covers the load only,
 * not start-up).
 */
import * as Fs from "node:fs"
import * as Inspector from "node:inspector/promises"
import * as Readline from "node:readline"

let session: Inspector.Session | undefined
const profileCommand = async (line: string): Promise<void> => {
  if (line === "profile-start") {
    session = new Inspector.Session()
    session.connect()
    await session.post("Profiler.enable")
    await session.post("Profiler.setSamplingInterval", { interval: 100 })
    await session.post("Profiler.start")
  } else {
    const { profile } = await session!.post("Profiler.stop")
    Fs.writeFileSync(line.slice("profile-stop ".length), JSON.stringify(profile))
    session!.disconnect()
  }
  process.stdout.write("ok\n")
}

export const announce = (port: number): void => {
  process.stdout.write(`listening ${port}\n`)
  const rl = Readline.createInterface({ input: process.stdin })
  rl.on("line", (line) => {
    if (line.startsWith("profile-")) return void profileCommand(line.trim())
    if (line.trim() !== "mem") return
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    gc?.()
    const m = process.memoryUsage()
    process.stdout.write(`${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed })}\n`)
  })
  rl.on("close", () => process.exit(0))
}

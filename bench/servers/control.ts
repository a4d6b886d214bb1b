/**
 * Bench server control: prints `listening PORT`, then answers `mem` lines on
 * stdin with a JSON line of memory use after a full GC (run with --expose-gc).
 */
import * as Readline from "node:readline"

export const announce = (port: number): void => {
  process.stdout.write(`listening ${port}\n`)
  const rl = Readline.createInterface({ input: process.stdin })
  rl.on("line", (line) => {
    if (line.trim() !== "mem") return
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    gc?.()
    const m = process.memoryUsage()
    process.stdout.write(`${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed })}\n`)
  })
  rl.on("close", () => process.exit(0))
}

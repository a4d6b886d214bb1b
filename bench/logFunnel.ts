/**
 * Access log with prefork workers (issue 13): each worker appending its own
 * batches to the shared file (one O_APPEND write per 64 KiB batch, what
 * fiberd does) vs funnelling the batches to the primary over IPC (the
 * primary appends). Two workers, each writing `lines` access-log-sized lines;
 * figures: lines/s and CPU µs per line summed over every process.
 */
import { fork } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const LINE = "127.0.0.1 - - [24/Nov/2026:03:00:00 +0000] \"GET /hello.txt HTTP/1.1\" 200 12 \"-\" \"wrk\"\n"

if (process.argv[2] === "child") {
  const [, , , mode, file, count] = process.argv
  const lines = Number(count)
  const perBatch = Math.floor(65536 / LINE.length)
  const batch = Buffer.from(LINE.repeat(perBatch))
  const fd = mode === "append" ? Fs.openSync(file!, "a") : -1
  let sent = 0
  const step = () => {
    while (sent < lines) {
      sent += perBatch
      if (mode === "append") Fs.writeSync(fd, batch)
      else if (!process.send!(batch)) return setImmediate(step) // backpressure on the channel
    }
    const usage = process.cpuUsage()
    process.send!({ done: usage.user + usage.system }, () => process.exit(0))
  }
  step()
} else {
  // run by bench/run.ts
}

/** Runs both variants; returns lines/s and CPU µs per line for each. */
export const run = async (lines: number) => {
  const results: Array<{ mode: string; perSecond: number; cpuPerLine: number; written: number }> = []
  for (const mode of ["append", "funnel"]) {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-logfunnel-"))
    const file = Path.join(dir, "access.log")
    const fd = Fs.openSync(file, "a")
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    const childCpu = await Promise.all([0, 1].map(() =>
      new Promise<number>((resolve) => {
        const child = fork(import.meta.filename, ["child", mode, file, String(lines)], { serialization: "advanced" })
        child.on("message", (m: unknown) => {
          if (m instanceof Uint8Array) Fs.writeSync(fd, m)
          else resolve((m as { done: number }).done)
        })
      })
    ))
    const elapsed = (performance.now() - started) / 1000
    const own = process.cpuUsage(cpu0)
    const written = Fs.readFileSync(file, "utf8").split("\n").length - 1
    const cpu = childCpu.reduce((a, b) => a + b, 0) + (mode === "funnel" ? own.user + own.system : 0)
    results.push({ mode, perSecond: written / elapsed, cpuPerLine: cpu / written, written })
    Fs.closeSync(fd)
    Fs.rmSync(dir, { recursive: true })
  }
  return results
}

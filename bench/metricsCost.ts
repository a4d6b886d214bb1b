/**
 * What the HTTP metrics cost on the hot path (issue 11): fiberd static 12 B
 * at c=100 with metrics on (http-fiberd) and off (http-fiberd-nometrics),
 * alternating rounds, wrk on CPU 1; medians and the on/off ratio.
 */
import { execFile } from "node:child_process"
import { median, startServer } from "./harness.ts"

const wrk = (port: number, seconds: number) =>
  new Promise<number>((resolve, reject) =>
    execFile("taskset", ["-c", "1", "wrk", "-t1", "-c100", `-d${seconds}s`, `http://127.0.0.1:${port}/hello.txt`], (e, out) =>
      e ? reject(e) : resolve(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN)))
  )

export const run = async (rounds: number, seconds: number) => {
  const on: Array<number> = []
  const off: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    for (const name of ["http-fiberd", "http-fiberd-nometrics"] as const) {
      const server = await startServer(name)
      await wrk(server.port, 1)
      const rps = await wrk(server.port, seconds)
      await server.stop()
      ;(name === "http-fiberd" ? on : off).push(rps)
    }
  }
  return { on: median(on), off: median(off), ratio: median(on) / median(off) }
}

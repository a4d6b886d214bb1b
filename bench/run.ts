/**
 * `npm run bench [-- SUITE...]`: runs the benchmarks (default: all) and prints
 * each figure with its ratio to the baseline measured in the same run.
 * Suites: echo timeouts idle actors http http2 https websocket livestatus metrics slowloris prefork startup offload killworker roll logfunnel cluster soak.
 * Options: --rounds N (default 3), --seconds S (default 10), --rows TEXT (HTTP rows whose name
 * contains TEXT, e.g. "c=100" or "pipeline").
 */
import * as Os from "node:os"
import * as Actors from "./actors.ts"
import * as Echo from "./echo.ts"
import * as Http from "./http.ts"
import * as Http2 from "./http2.ts"
import * as Cluster from "./cluster.ts"
import * as LogFunnel from "./logFunnel.ts"
import * as MetricsCost from "./metricsCost.ts"
import * as Prefork from "./prefork.ts"
import * as Slowloris from "./slowloris.ts"
import * as Soak from "./soak.ts"
import { pinnedNote } from "./harness.ts"
import { makeBenchCert } from "./tlsCert.ts"

const args = process.argv.slice(2)
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const rounds = flag("rounds", 3)
const seconds = flag("seconds", 10)
const rowFilter = (() => {
  const i = args.indexOf("--rows")
  return i >= 0 ? args[i + 1] : undefined
})()
const suites = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"))
// soak runs only when asked for (it takes minutes)
const wanted = (s: string) => (suites.length === 0 && s !== "soak") || suites.includes(s)

console.log(`fiberd benchmarks — ${new Date().toISOString()} — Node ${process.version}, ${Os.cpus().length}× ${Os.cpus()[0]?.model}`)
console.log(`(${pinnedNote})`)

if (wanted("echo")) {
  console.log(`\necho throughput: 100 connections × 64-byte ping-pong, ${seconds} s, ${rounds} alternating rounds (median)`)
  const r = await Echo.throughput(rounds, seconds)
  console.log(`  node:net ${Math.round(r.base)} msg/s | fiberd ${Math.round(r.ours)} msg/s | ratio ${r.ratio.toFixed(2)}× (target ≥ 0.90)`)
  if (r.ratio < 0.9) await Echo.profileOurs(Echo.variants, "echoClient.ts", `${r.ratio.toFixed(2)}× node:net, target ≥ 0.9×`)
}
if (wanted("timeouts")) {
  console.log(`\nshared idle-timeout manager: fiberd echo with vs without an idle timeout (same load)`)
  const r = await Echo.throughput(rounds, seconds, 100, Echo.timeoutVariants)
  console.log(`  with ${Math.round(r.base)} msg/s | without ${Math.round(r.ours)} msg/s | without/with ${r.ratio.toFixed(2)}×`)
}
if (wanted("idle")) {
  console.log(`\nidle connections: 10,000 held open to each server`)
  const r = await Echo.idle(10_000)
  console.log(`  rss/conn node:net ${(r.base / 1024).toFixed(2)} KiB | fiberd ${(r.ours / 1024).toFixed(2)} KiB | ratio ${r.ratio.toFixed(2)}× (target ≤ 1.5); heap ratio ${r.heapRatio.toFixed(2)}× (issue 22: ≤ 1.0)`)
  console.log(`idle HTTP keep-alive connections: 10,000, one request answered on each`)
  const h = await Echo.idle(10_000, Echo.httpIdleVariants, "http")
  console.log(`  rss/conn node:http ${(h.base / 1024).toFixed(2)} KiB | fiberd ${(h.ours / 1024).toFixed(2)} KiB | ratio ${h.ratio.toFixed(2)}× (issue 22: ≤ 1.0); heap ratio ${h.heapRatio.toFixed(2)}×`)
}
if (wanted("actors")) {
  console.log(`\nactor ping-pong vs bare Queue ping-pong (200,000 round trips, median of ${rounds})`)
  const r = await Actors.pingPong(200_000, rounds)
  console.log(`  Queue ${Math.round(r.queue)} rt/s | actor tell↔tell ${Math.round(r.tell)} rt/s (${(r.tell / r.queue).toFixed(2)}×) | actor ask ${Math.round(r.ask)} rt/s (${(r.ask / r.queue).toFixed(2)}×) (target ≥ 0.8)`)
  const log = await Actors.accessLog(1_000_000)
  console.log(`  access log: ${log.lines} entries in a file at ${Math.round(log.perSecond)} entries/s (target ≥ 500,000); tell costs ${log.tellNs.toFixed(0)} ns`)
}
if (wanted("http")) {
  console.log(`\nHTTP: node:http (Buffers), the ceiling server, fiberd hello and fiberd static (access log on); wrk -t1, ${seconds} s, median of ${rounds}`)
  console.log(`  issue 15 targets at c=100: hello ≥ 1.35× node:http and ≥ 0.8× the ceiling, CPU/req ≤ 0.75× node:http's; pipelined ≥ 8×`)
  await Http.run(rounds, seconds, rowFilter === undefined ? undefined : (row) => row.name.includes(rowFilter))
}
if (wanted("http2")) {
  console.log(`\nHTTP/2 (issue 23), cleartext by prior knowledge: h2load -c100 on CPU 1, ${seconds} s after 1 s of warm-up, median of ${rounds}`)
  console.log(`  targets: fiberd ≥ 1.2× node:http2 (compat) and ≥ 1.0× node:http2's core API`)
  await Http2.run(rounds, seconds, rowFilter === undefined ? undefined : (name) => name.includes(rowFilter))
}
if (wanted("livestatus")) {
  console.log(`\nlive status feed (issue 28): the program's hello at c=100, nobody watching vs a viewer on /_status/stream; wrk -t1, ${seconds} s, median of ${rounds}`)
  await Prefork.liveStatus(rounds, seconds)
}
if (wanted("https")) {
  console.log(`\nHTTPS (issue 12): node:https vs fiberd hello over TLS, keep-alive, wrk -t1, ${seconds} s, median of ${rounds} (target ≥ 1.0×)`)
  const cert = makeBenchCert()
  process.env.FIBERD_BENCH_CERT = cert.cert
  process.env.FIBERD_BENCH_KEY = cert.key
  await Http.run(rounds, seconds, undefined, {
    rows: [
      { name: "12 B over TLS, c=100", path: "/hello.txt", connections: 100, https: true },
      { name: "12 B over TLS, 16-deep pipeline", path: "/hello.txt", connections: 100, https: true, pipeline: true }
    ],
    servers: [
      { name: "node:https", script: "https-node", serves: () => true },
      { name: "fiberd hello", script: "http-hello", args: ["--tls"], serves: () => true }
    ]
  })
}
if (wanted("websocket")) {
  console.log(`\nWebSocket echo (issue 12): 100 connections × 64-byte messages, ws's server vs fiberd, ${seconds} s, ${rounds} alternating rounds (median; target ≥ 1.0×)`)
  const r = await Echo.throughput(rounds, seconds, 100, Echo.wsVariants, "wsClient.ts")
  console.log(`  ws ${Math.round(r.base)} msg/s | fiberd ${Math.round(r.ours)} msg/s | ratio ${r.ratio.toFixed(2)}× (issue 22: ≥ 1.1×)`)
  if (r.ratio < 1.1) await Echo.profileOurs(Echo.wsVariants, "wsClient.ts", `${r.ratio.toFixed(2)}× ws, target ≥ 1.1×`)
}
if (wanted("metrics")) {
  console.log(`\nHTTP metrics on vs off: fiberd static 12 B, c=100, ${seconds} s, median of ${rounds}`)
  const r = await MetricsCost.run(rounds, seconds)
  console.log(`  on ${Math.round(r.on)} req/s | off ${Math.round(r.off)} req/s | on/off ${r.ratio.toFixed(3)}× (target ≥ 0.98)`)
}
if (wanted("slowloris")) {
  console.log(`\nbyte-at-a-time heads: normal-request latency, quiet vs 1,000 connections each holding 15 KB of head and adding a byte every 14 ms`)
  const r = await Slowloris.run()
  const mib = (m: { rss: number; heapUsed: number }) => `RSS ${(m.rss / 1048576).toFixed(0)} MiB, heap ${(m.heapUsed / 1048576).toFixed(0)} MiB`
  const f = (x: { median: number; p99: number; max: number }) => `median ${x.median.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms, max ${x.max.toFixed(1)} ms`
  console.log(`  quiet: ${f(r.quiet)}`)
  console.log(`  under attack: ${f(r.underAttack)} → median ${(r.underAttack.median / r.quiet.median).toFixed(2)}× (target ≤ 2×)`)
  console.log(`\nWebSocket dribble: echo round trips, quiet vs 400 connections each holding a 900 KB partial frame and adding a byte every 14 ms`)
  const ws = await Slowloris.websocketDribble()
  console.log(`  quiet: ${f(ws.quiet)}`)
  console.log(`  under attack: ${f(ws.underAttack)} → median ${(ws.underAttack.median / ws.quiet.median).toFixed(2)}× (target ≤ 2×)`)
  console.log(`  server memory quiet → under attack: ${mib(ws.quietMem)} → ${mib(ws.attackMem)}`)
  console.log(`\nTLS half-open: HTTPS requests on new connections, quiet vs 1,000 connections silent or stopped half-way through a ClientHello`)
  const tls = await Slowloris.tlsHalfOpen()
  console.log(`  quiet: ${f(tls.quiet)}`)
  console.log(`  under attack: ${f(tls.underAttack)} → median ${(tls.underAttack.median / tls.quiet.median).toFixed(2)}× (target ≤ 2×)`)
  console.log(`  server memory quiet → under attack: ${mib(tls.quietMem)} → ${mib(tls.attackMem)}`)
}
if (wanted("prefork")) {
  console.log(`\nprefork (issue 13): the fiberd program serving 12 B at c=100, 1 process vs 2 workers, wrk -t1 on CPU 1, ${seconds} s, median of ${rounds}`)
  await Prefork.hello(rounds, seconds)
}
if (wanted("startup")) {
  console.log(`\nstart-up (issue 22): spawn → every service listening, median of ${rounds}`)
  await Prefork.startup(Math.max(rounds, 3))
}
if (wanted("offload")) {
  console.log(`\nhead-of-line blocking (issue 13): light 12 B requests at c=50, alone and beside 4 clients looping on /api/pbkdf2?rounds=200000, ${seconds} s, median of ${rounds}`)
  await Prefork.headOfLine(rounds, seconds)
}
if (wanted("killworker")) {
  console.log(`\nkill -9 of a worker under wrk -c100 (issue 13), 2 workers round-robin`)
  await Prefork.killUnderLoad(Math.max(seconds, 6))
}
if (wanted("logfunnel")) {
  console.log(`\naccess log with 2 workers (issue 13): each appends its batches (O_APPEND) vs batches funnelled to the primary over IPC`)
  for (const r of await LogFunnel.run(2_000_000)) {
    console.log(`  ${r.mode.padEnd(8)} ${Math.round(r.perSecond)} lines/s, ${r.cpuPerLine.toFixed(3)} µs CPU per line (all processes), ${r.written} lines written`)
  }
}
if (wanted("roll")) {
  console.log(`\nSIGHUP roll of 2 workers under wrk -c100 (issue 13): target zero failed requests`)
  await Prefork.rollUnderLoad(Math.max(seconds, 10))
}
if (wanted("cluster")) {
  console.log(`\ncluster chat (issue 14): the fiberd program, 3 nodes on loopback sharing a throwaway PostgreSQL`)
  await Cluster.run()
}
if (wanted("soak")) {
  const minutes = flag("minutes", 10)
  console.log(`\nsoak: ${minutes} min at c=500 (wrk c=300 on the site, 100 echo ping-pong, 100 chat members in 10 rooms)`)
  const r = await Soak.run(minutes)
  console.log(`  RSS ${r.rssAtWarmMiB.toFixed(1)} MiB after warm-up → ${r.rssEndMiB.toFixed(1)} MiB at the end (max ${r.rssMaxMiB.toFixed(1)}): growth ${r.growthPercent.toFixed(1)} % (target < 10 %)`)
  console.log(`  event-loop delay: per-second p99 median ${r.loopDelayMedianP99Ms.toFixed(1)} ms, p99 of those ${r.loopDelayP99OfP99Ms.toFixed(1)} ms, max ${r.loopDelayMaxMs.toFixed(1)} ms`)
  console.log(`  load: HTTP ${Math.round(r.httpRps)} req/s (p99 ${r.httpP99}, socket errors ${r.wrkErrors}, non-2xx ${r.non2xx}); echo ${r.echoRoundTrips} round trips; chat ${r.chatSent} lines sent, ${r.chatReceived} received; client errors ${r.clientErrors}`)
}

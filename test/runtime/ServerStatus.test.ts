/**
 * The whole-server status of a prefork fiberd: per-service sums, and the
 * merged Prometheus text (property-tested: every sample of every process is
 * kept, labelled with its worker, under one HELP/TYPE per family, and each
 * family's samples stay together as the text format requires).
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as ServerStatus from "../../src/runtime/ServerStatus.ts"
import type { ProcessView, ServerView } from "../../src/runtime/WorkerProtocol.ts"

const proc = (name: string, services: Array<Record<string, unknown>>, metrics = "", extra: Record<string, unknown> = {}): ProcessView => ({
  name,
  pid: 100 + name.length,
  uptimeSeconds: 5,
  restarts: name === "2" ? 1 : 0,
  snapshot: { status: { services, logs: { access: { written: 3, dropped: 0 } }, ...extra }, metrics }
})

describe("ServerStatus.document", () => {
  it("sums each service over the processes and lists every process", () => {
    const view: ServerView = {
      portSharing: "round-robin",
      processes: [
        proc("primary", [{ name: "chat", protocol: "chat", activeConnections: 2 }]),
        proc("1", [{ name: "web", protocol: "http", address: "127.0.0.1:80", requests: 10, activeConnections: 1 }], "", { offload: { threads: 1, inFlight: 1 } }),
        proc("2", [{ name: "web", protocol: "http", address: "127.0.0.1:80", requests: 5, activeConnections: 0 }], "", { offload: { threads: 1, inFlight: 0 } }),
        { name: "3", pid: 7, uptimeSeconds: 1, restarts: 0, snapshot: undefined }
      ]
    }
    const doc = ServerStatus.document(view)
    assert.strictEqual(doc.workers, 3)
    assert.deepStrictEqual(doc.services, [
      { name: "chat", protocol: "chat", activeConnections: 2 },
      { name: "web", protocol: "http", address: "127.0.0.1:80", requests: 15, activeConnections: 1 }
    ])
    assert.deepStrictEqual(doc.logs, { access: { written: 9, dropped: 0 } })
    assert.deepStrictEqual(doc.offload, { threads: 2, inFlight: 1 })
    assert.deepStrictEqual(doc.processes.map((p) => [p.name, p.restarts, p.answered]), [["primary", 0, true], ["1", 0, true], ["2", 1, true], ["3", 0, false]])
    assert.include(ServerStatus.tables(doc), "<td>web</td>")
  })
})

const metricName = fc.stringMatching(/^[a-z][a-z_]{0,8}$/)
const family = fc.record({
  name: metricName,
  type: fc.constantFrom("counter", "gauge"),
  samples: fc.array(fc.tuple(fc.option(fc.stringMatching(/^[a-z]{1,5}$/), { nil: undefined }), fc.nat()), { minLength: 1, maxLength: 3 })
})
const text = (families: ReadonlyArray<typeof family extends fc.Arbitrary<infer F> ? F : never>) =>
  families.map((f) =>
    [`# HELP ${f.name} about ${f.name}`, `# TYPE ${f.name} ${f.type}`, ...f.samples.map(([svc, v]) => (svc === undefined ? `${f.name} ${v}` : `${f.name}{service="${svc}"} ${v}`))].join("\n")
  ).join("\n") + "\n"

describe("ServerStatus.mergeMetrics", () => {
  it("keeps every sample with its worker label, one HELP/TYPE per family, each family's samples together", () => {
    fc.assert(fc.property(
      fc.array(fc.uniqueArray(family, { selector: (f) => f.name, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
      (perProcess) => {
        // one name means one type across processes (as in a real server)
        const typeOf = new Map<string, "counter" | "gauge">()
        const consistent = perProcess.map((fams) => fams.map((f) => ({ ...f, type: typeOf.get(f.name) ?? (typeOf.set(f.name, f.type), f.type) })))
        const view: ServerView = {
          portSharing: "reuse-port",
          processes: consistent.map((fams, i) => ({ name: String(i + 1), pid: i, uptimeSeconds: 0, restarts: 0, snapshot: { status: {}, metrics: text(fams) } }))
        }
        const merged = ServerStatus.mergeMetrics(view).split("\n").filter((l) => l.length > 0)
        const types = merged.filter((l) => l.startsWith("# TYPE "))
        assert.strictEqual(new Set(types).size, types.length)
        // every sample, labelled
        consistent.forEach((fams, i) => {
          for (const f of fams) {
            for (const [svc, v] of f.samples) {
              const expected = svc === undefined ? `${f.name}{worker="${i + 1}"} ${v}` : `${f.name}{worker="${i + 1}",service="${svc}"} ${v}`
              assert.include(merged, expected)
            }
          }
        })
        // a family's samples follow its TYPE line, before the next family's
        let current = ""
        const seen = new Set<string>()
        for (const line of merged) {
          const m = /^# TYPE (\S+)/.exec(line)
          if (m !== null) {
            assert.isFalse(seen.has(m[1]!), `${m[1]} appears in two places`)
            seen.add(m[1]!)
            current = m[1]!
          } else if (!line.startsWith("#")) assert.isTrue(line.startsWith(`${current}{`) || line.startsWith("fiberd_worker_"), line)
        }
      }
    ))
  })
})

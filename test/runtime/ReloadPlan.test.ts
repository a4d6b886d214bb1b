/**
 * The reload plan on its own (no sockets, no processes): for any pair of
 * tables, every service of the new table is launched or kept exactly once,
 * every service of the old table that is gone is stopped, an unchanged
 * service is kept (never restarted) and has its certificates re-read when it
 * has TLS, a changed service on the same TCP or Unix address is handed over
 * (never stopped first), one that moved is stopped and then started fresh;
 * a table-wide key that shapes services changes them all. And the keys a
 * reload does not apply are named.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { addressKey, plan, restartOnly } from "../../src/runtime/ReloadPlan.ts"
import type { Service, Table } from "../../src/runtime/ServiceTable.ts"

const service: fc.Arbitrary<Service> = fc.record({
  name: fc.constantFrom("a", "b", "c", "d", "e"),
  protocol: fc.constantFrom("http" as const, "echo" as const, "chat" as const),
  transport: fc.constantFrom(undefined, "tcp" as const, "udp" as const, "unix" as const),
  listen: fc.constantFrom("127.0.0.1:1", "127.0.0.1:2", "/tmp/x.sock"),
  idleTimeout: fc.constantFrom(undefined, "1 second", "2 seconds"),
  tls: fc.constantFrom(undefined, { cert: "c.pem", key: "k.pem" })
}).map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as unknown as Service)

const table: fc.Arbitrary<Table> = fc.record({
  services: fc.uniqueArray(service, { selector: (s) => s.name, maxLength: 5 }),
  drainTimeout: fc.constantFrom(undefined, "5 seconds"),
  accessLog: fc.constantFrom(undefined, { path: "a.log" }, { path: "b.log" })
}).map((t) => Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined)) as unknown as Table)

/** A next table made from a previous one: some services changed, removed, added, reordered. */
const pair: fc.Arbitrary<[Table, Table]> = fc.tuple(table, table, fc.boolean()).map(([a, b, mix]) => {
  if (!mix) return [a, b]
  const merged = new Map(a.services.map((s) => [s.name, s]))
  for (const s of b.services.slice(0, 2)) merged.set(s.name, s)
  return [a, { ...a, services: [...merged.values()].reverse() }]
})

describe("ReloadPlan", () => {
  it("for any two tables: launched and kept partition the new table; removed and moved services are stopped; unchanged ones are kept; same-address changes are handed over", () => {
    fc.assert(fc.property(pair, ([previous, next]) => {
      const p = plan(previous, next)
      const before = new Map(previous.services.map((s) => [s.name, s]))
      const launched = p.launch.map((l) => l.service.name)
      // every service of the new table exactly once, in table order
      assert.deepStrictEqual([...launched, ...p.keep].sort(), next.services.map((s) => s.name).sort())
      assert.deepStrictEqual(launched, next.services.map((s) => s.name).filter((n) => launched.includes(n)))
      const sameWide = previous.drainTimeout === next.drainTimeout
      for (const s of next.services) {
        const old = before.get(s.name)
        const unchanged = old !== undefined && JSON.stringify(old) === JSON.stringify(s) && sameWide
        assert.strictEqual(p.keep.includes(s.name), unchanged, `${s.name} kept iff unchanged`)
        assert.strictEqual(p.reloadTls.includes(s.name), unchanged && s.tls !== undefined)
        const launch = p.launch.find((l) => l.service.name === s.name)
        if (launch !== undefined) {
          const handOver = old !== undefined && addressKey(old) === addressKey(s) && (s.transport ?? "tcp") !== "udp" && old.protocol === s.protocol
          assert.strictEqual(launch.handOver, handOver, `${s.name} handed over iff it keeps its address`)
          // a handed-over service is never stopped first; a changed one that is not handed over is
          assert.strictEqual(p.stop.some((o) => o.name === s.name), old !== undefined && !handOver)
        }
      }
      for (const old of previous.services) {
        if (!next.services.some((s) => s.name === old.name)) assert.isTrue(p.stop.includes(old), `${old.name} removed: stopped`)
      }
      assert.strictEqual(p.switchAccessLog, JSON.stringify(previous.accessLog ?? null) !== JSON.stringify(next.accessLog ?? null))
    }), { numRuns: 1000 })
  })

  it("the same table: everything kept, nothing stopped or launched", () => {
    fc.assert(fc.property(table, (t) => {
      const p = plan(t, t)
      assert.deepStrictEqual(p.stop, [])
      assert.deepStrictEqual(p.launch, [])
      assert.deepStrictEqual(p.keep, t.services.map((s) => s.name))
    }))
  })

  it("the keys a reload does not apply are named, per mode", () => {
    const base: Table = { services: [] }
    assert.deepStrictEqual(restartOnly(base, { services: [], errorLog: { path: "x.log" }, workers: 2, offload: { threads: 2 } }, "single"), ["errorLog", "workers", "offload"])
    assert.deepStrictEqual(restartOnly(base, { services: [], portSharing: "reuse-port", offload: { threads: 2 } }, "prefork"), ["portSharing"])
    assert.deepStrictEqual(restartOnly(base, { services: [], drainTimeout: "1 second" }, "single"), [])
  })
})

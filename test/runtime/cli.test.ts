/**
 * The service table and the CLI: validation messages name the file, the key
 * and what was expected (exit 2); a port in use names the service (exit 1);
 * check, --help, --version; CLI overrides.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Cli from "../../src/runtime/Cli.ts"
import * as ServiceTable from "../../src/runtime/ServiceTable.ts"
import { runOnce, start } from "../support/serverProcess.ts"
import { freePort } from "../support/netClient.ts"

const write = (table: unknown) => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-cli-"))
  const file = Path.join(dir, "fiberd.json")
  Fs.writeFileSync(file, typeof table === "string" ? table : JSON.stringify(table))
  return file
}
const problems = (json: unknown) =>
  Effect.runSync(Effect.exit(ServiceTable.decode("t.json", json))).pipe((exit) =>
    Exit.isFailure(exit) ? String(exit.cause.reasons[0] && (exit.cause.reasons[0] as { error: Error }).error.message) : "ok"
  )

describe("service table validation", () => {
  it("the defaults are a valid table", () => {
    assert.strictEqual(problems(ServiceTable.defaults), "ok")
  })
  it("each problem names the JSON path and what was expected", () => {
    const text = problems({ services: [{ name: "web", protocol: "htp", listen: 8080, extra: true }], drainTimeout: "soon" })
    assert.include(text, "t.json: $.services[0].protocol: Expected \"http\" | \"echo\" | \"daytime\" | \"chat\" | \"exec\"")
    assert.include(text, "t.json: $.services[0].listen: Expected string")
    assert.include(problems({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:1", extra: true }] }), "t.json: $.services[0].extra: Expected no excess property")
    assert.include(text, "t.json: $.drainTimeout:")
  })
  it("cross-field checks: unique names, UDP only for echo/daytime, exec needs a command, listen syntax", () => {
    const text = problems({
      services: [
        { name: "a", protocol: "echo", listen: "127.0.0.1:1" },
        { name: "a", protocol: "chat", transport: "udp", listen: "127.0.0.1:2" },
        { name: "x", protocol: "exec", listen: "nowhere" }
      ]
    })
    assert.include(text, "$.services[1].name: Expected a unique name")
    assert.include(text, "$.services[1].transport: Expected \"tcp\" or \"unix\"")
    assert.include(text, "$.services[2].listen: Expected \"host:port\"")
    assert.include(text, "$.services[2].command: Expected an argv array")
  })
  it("every problem at once: a schema error does not hide a cross-field one (unknown protocol, bad listen, bad duration)", () => {
    const text = problems({
      services: [
        { name: "a", protocol: "gopher", listen: "127.0.0.1:1" },
        { name: "b", protocol: "echo", listen: "nowhere" },
        { name: "c", protocol: "http", listen: "127.0.0.1:3", keepAliveTimeout: "soon" }
      ]
    })
    assert.include(text, "$.services[0].protocol: Expected")
    assert.include(text, "$.services[1].listen: Expected \"host:port\"")
    assert.include(text, "$.services[2].keepAliveTimeout:")
    assert.strictEqual(text.split("\n").length, 3, text)
  })
  it("listen addresses: v4, [v6], port range", () => {
    assert.deepStrictEqual(ServiceTable.parseListen("[::1]:80", "tcp"), { _tag: "inet", host: "::1", port: 80 })
    assert.deepStrictEqual(ServiceTable.parseListen("0.0.0.0:8080", "tcp"), { _tag: "inet", host: "0.0.0.0", port: 8080 })
    assert.isString(ServiceTable.parseListen("a:70000", "tcp"))
    assert.deepStrictEqual(ServiceTable.parseListen("/tmp/x.sock", "unix"), { _tag: "unix", path: "/tmp/x.sock" })
  })
})

describe("CLI", () => {
  it("applies --port, --root and --access-log to a table", () => {
    const args = Cli.toArgs({ config: Option.none(), port: Option.some(9000), root: Option.some("site"), accessLog: Option.some("-") }, "/nonexistent")
    const table = Cli.override(ServiceTable.defaults, args)
    assert.strictEqual(table.services[0]!.listen, "127.0.0.1:9000")
    const web = table.services[0]!
    assert.strictEqual(web.protocol === "http" ? web.root : undefined, Path.resolve("site"))
    assert.strictEqual(table.accessLog?.path, "-")
    assert.isUndefined(args.config, "no ./fiberd.json there: the built-in defaults")
  })

  for (const form of ["--port=N", "--port N"]) {
    it.live(`${form} works (effect/cli)`, () =>
      Effect.promise(async () => {
        const port = await freePort()
        const args = form === "--port=N" ? [`--port=${port}`] : ["--port", String(port)]
        const server = await start({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }] }, args)
        try {
          assert.strictEqual(server.port("web"), port)
        } finally {
          await server.stop()
        }
      }))
  }

  it.live("bad arguments get effect/cli's message and usage: exit 2", () =>
    Effect.promise(async () => {
      const bogus = await runOnce(["--bogus"])
      assert.strictEqual(bogus.code, 2)
      assert.include(bogus.stdout + bogus.stderr, "Unrecognized flag: --bogus")
      const port = await runOnce(["--port", "x"])
      assert.strictEqual(port.code, 2)
      assert.include(port.stdout + port.stderr, "--port")
      const range = await runOnce(["--port", "70000"])
      assert.strictEqual(range.code, 2)
      assert.include(range.stdout + range.stderr, "expected a port number from 0 to 65535")
    }))

  it.live("a root that does not exist exits 1 at once, naming the service, the problem and the path", () =>
    Effect.promise(async () => {
      const missing = Path.join(Os.tmpdir(), "fiberd-no-such-root")
      const run = await runOnce(["--config", write({ services: [{ name: "site", protocol: "http", listen: "127.0.0.1:0", root: missing }] })])
      assert.strictEqual(run.code, 1)
      assert.include(run.stderr, `fiberd: site: root directory is not readable: ENOENT (${missing})`)
      const file = write({ services: [] })
      const notDir = await runOnce(["--config", write({ services: [{ name: "site", protocol: "http", listen: "127.0.0.1:0", root: file }] })])
      assert.strictEqual(notDir.code, 1)
      assert.include(notDir.stderr, `fiberd: site: root directory is not readable: ENOTDIR (${file})`)
    }))

  it("tls only on TCP/Unix services; an http service's chat key must name a chat service of the table", () => {
    assert.include(
      problems({ services: [{ name: "e", protocol: "echo", transport: "udp", listen: "127.0.0.1:0", tls: { cert: "c", key: "k" } }] }),
      "$.services[0].tls"
    )
    assert.include(problems({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0", chat: "nope" }] }), "$.services[0].chat")
    assert.strictEqual(
      problems({
        services: [
          { name: "web", protocol: "http", listen: "127.0.0.1:0", chat: "talk", tls: { cert: "c", key: "k", sni: { "a.test": { cert: "c2", key: "k2" } } } },
          { name: "talk", protocol: "chat", listen: "127.0.0.1:0" }
        ]
      }),
      "ok"
    )
  })

  it("workers, portSharing, workerRestarts and offload: checked keys; --workers and --port-sharing override them", () => {
    assert.strictEqual(problems({ ...ServiceTable.defaults, workers: "auto", portSharing: "reuse-port", workerRestarts: { maxRestarts: 3, period: "10 seconds" }, offload: { threads: 0 } }), "ok")
    const text = problems({ services: [], workers: 0, portSharing: "hash", offload: { threads: -1 } })
    assert.include(text, "t.json: $.workers:")
    assert.include(text, "t.json: $.portSharing: Expected \"round-robin\" | \"reuse-port\"")
    assert.include(text, "t.json: $.offload.threads:")
    const args = Cli.toArgs({ config: Option.none(), workers: Option.some("auto"), portSharing: Option.some("reuse-port") }, Os.tmpdir())
    const table = Cli.override(ServiceTable.defaults, args)
    assert.strictEqual(table.workers, "auto")
    assert.strictEqual(table.portSharing, "reuse-port")
    assert.strictEqual(Cli.override(ServiceTable.defaults, Cli.toArgs({ config: Option.none(), workers: Option.some("3") }, Os.tmpdir())).workers, 3)
  })

  it("cluster: runnerAddress must be host:port (not 0), postgres a PostgreSQL URL; an unreachable PostgreSQL exits 1 naming it", async () => {
    assert.strictEqual(problems({ ...ServiceTable.defaults, cluster: { runnerAddress: "127.0.0.1:7400", postgres: "postgres://u@127.0.0.1:5432/db", shardLockExpiration: "5 seconds" } }), "ok")
    const text = problems({ services: [], cluster: { runnerAddress: "127.0.0.1:0", postgres: "mysql://x" } })
    assert.include(text, "t.json: $.cluster.runnerAddress: Expected the host:port other nodes reach this one at (not port 0)")
    assert.include(text, "t.json: $.cluster.postgres: Expected a PostgreSQL URL")
    const closed = await freePort()
    const file = write({ services: [{ name: "chat", protocol: "chat", listen: "127.0.0.1:0" }], cluster: { runnerAddress: `127.0.0.1:${await freePort()}`, postgres: `postgres://fiberd@127.0.0.1:${closed}/x` } })
    const result = await runOnce(["--config", file])
    assert.strictEqual(result.code, 1)
    assert.include(result.stderr, `fiberd: cluster: cannot join the cluster at 127.0.0.1:`)
    assert.include(result.stderr, `ECONNREFUSED 127.0.0.1:${closed}`)
  })

  it("bad --workers and --port-sharing values exit 2 with a message", async () => {
    const zero = await runOnce(["--workers", "0"])
    assert.strictEqual(zero.code, 2)
    assert.include(zero.stderr + zero.stdout, "expected a number of worker processes")
    const sharing = await runOnce(["--port-sharing", "hash"])
    assert.strictEqual(sharing.code, 2)
  })

  it("durations go through Effect's parser: every unit users write", () => {
    for (const d of ["1 second", "2 hours", "500 millis", "1.5 minutes", "3 days", "250 micros"]) {
      assert.strictEqual(problems({ services: [], drainTimeout: d }), "ok", d)
    }
    for (const d of ["soon", "1second", "-1 seconds", "Infinity", "1 sec"]) {
      assert.include(problems({ services: [], drainTimeout: d }), "$.drainTimeout", d)
    }
  })

  it.live("a bad table is rejected before anything listens: exit 2, file, key and expectation named", () =>
    Effect.promise(async () => {
      const file = write({ services: [{ name: "web", protocol: "http", listen: "127.0.0.1:notaport" }] })
      const run = await runOnce(["--config", file])
      assert.strictEqual(run.code, 2)
      assert.include(run.stderr, `${file}: $.services[0].listen: Expected "host:port"`)
      const broken = await runOnce(["--config", write("{ nope")])
      assert.strictEqual(broken.code, 2)
      assert.include(broken.stderr, "$: Expected valid JSON")
    }))

  it.live("check validates without starting: 0 for a good table, 2 for a bad one", () =>
    Effect.promise(async () => {
      const good = await runOnce(["check", "--config", write({ services: [{ name: "e", protocol: "echo", listen: "127.0.0.1:0" }] })])
      assert.strictEqual(good.code, 0)
      assert.include(good.stdout, "ok, 1 services")
      const bad = await runOnce(["check", "--config", write({ services: [{ name: "e", protocol: "echo" }] })])
      assert.strictEqual(bad.code, 2)
      assert.include(bad.stderr, "$.services[0].listen: Expected a value: this key is required")
    }))

  it.live("a port already in use names the service and the address: exit 1", () =>
    Effect.promise(async () => {
      const blocker = Net.createServer()
      await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()))
      const port = (blocker.address() as Net.AddressInfo).port
      const run = await runOnce(["--config", write({ services: [{ name: "web", protocol: "http", listen: `127.0.0.1:${port}` }] })])
      blocker.close()
      assert.strictEqual(run.code, 1)
      assert.include(run.stderr, `fiberd: web: cannot listen: address already in use, EADDRINUSE (127.0.0.1:${port})`)
    }))

  it.live("--help and --version", () =>
    Effect.promise(async () => {
      const help = await runOnce(["--help"])
      assert.strictEqual(help.code, 0)
      assert.include(help.stdout, "USAGE")
      assert.include(help.stdout, "--port N")
      assert.include(help.stdout, "SIGHUP")
      assert.include(help.stdout, "check")
      const version = await runOnce(["--version"])
      assert.match(version.stdout, /^fiberd v\d+\.\d+\.\d+/)
    }))
})

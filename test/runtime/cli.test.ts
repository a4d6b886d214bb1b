/**
 * The service table and the CLI: validation messages name the file, the key
 * and what was expected (exit 2); a port in use names the service (exit 1);
 * check, --help, --version; CLI overrides.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Cli from "../../src/runtime/Cli.ts"
import * as ServiceTable from "../../src/runtime/ServiceTable.ts"
import { runOnce } from "../support/serverProcess.ts"

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
    assert.include(text, "t.json: $.services[0].extra: Expected no excess property")
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
  it("listen addresses: v4, [v6], port range", () => {
    assert.deepStrictEqual(ServiceTable.parseListen("[::1]:80", "tcp"), { _tag: "inet", host: "::1", port: 80 })
    assert.deepStrictEqual(ServiceTable.parseListen("0.0.0.0:8080", "tcp"), { _tag: "inet", host: "0.0.0.0", port: 8080 })
    assert.isString(ServiceTable.parseListen("a:70000", "tcp"))
    assert.deepStrictEqual(ServiceTable.parseListen("/tmp/x.sock", "unix"), { _tag: "unix", path: "/tmp/x.sock" })
  })
})

describe("CLI", () => {
  it("parses options and applies --port, --root, --access-log", () => {
    const args = Cli.parse(["--port", "9000", "--root", "site", "--access-log", "-"], "/nonexistent")
    const table = Cli.override(ServiceTable.defaults, args)
    assert.strictEqual(table.services[0]!.listen, "127.0.0.1:9000")
    assert.strictEqual(table.services[0]!.root, Path.resolve("site"))
    assert.strictEqual(table.accessLog?.path, "-")
    assert.throws(() => Cli.parse(["--port", "x"]), /--port/)
    assert.throws(() => Cli.parse(["--bogus"]), /unknown argument/)
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
      assert.include(run.stderr, `web: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`)
    }))

  it.live("--help and --version", () =>
    Effect.promise(async () => {
      const help = await runOnce(["--help"])
      assert.strictEqual(help.code, 0)
      assert.include(help.stdout, "Usage: fiberd")
      const version = await runOnce(["--version"])
      assert.match(version.stdout, /^fiberd \d+\.\d+\.\d+/)
    }))
})

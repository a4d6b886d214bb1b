/**
 * Chat in a real browser: two headless Chromium pages open /chat.html and
 * chat with each other and with a TCP member (as `nc` would). The pages are
 * read through the DevTools protocol (Chromium's own remote debugging,
 * driven with Node's WebSocket client). Chromium comes from Debian's
 * package; `npm test`'s pretest installs it when missing.
 */
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { certDir, makeCert } from "../support/certs.ts"
import { start } from "../support/serverProcess.ts"

const chromiumPath = (() => {
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      return execFileSync("which", [name]).toString().trim()
    } catch {
      // try the next name
    }
  }
  throw new Error("Chromium is missing: install it (Debian: apt-get install -y chromium); npm test's pretest does")
})()

const artifacts = Path.resolve(import.meta.dirname, "../artifacts")

const until = async <A>(what: string, probe: () => Promise<A | undefined> | A | undefined, ms = 20_000): Promise<A> => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** A headless Chromium on `url`, with the text of its page readable through the DevTools protocol. */
const openPage = async (url: string, extraFlags: ReadonlyArray<string> = []) => {
  const profile = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-chromium-"))
  const child: ChildProcess = spawn(chromiumPath, [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-dev-shm-usage", `--user-data-dir=${profile}`, "--remote-debugging-port=0", ...extraFlags, url
  ], { stdio: "ignore" })
  const portFile = Path.join(profile, "DevToolsActivePort")
  const port = await until("Chromium's DevTools port", () => (Fs.existsSync(portFile) ? Fs.readFileSync(portFile, "utf8").split("\n")[0] || undefined : undefined))
  const target = await until("the page target", async () => {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ type: string; url: string; webSocketDebuggerUrl: string }>
    return targets.find((t) => t.type === "page" && t.url.startsWith(url.split("?")[0]!))
  })
  const devtools = new WebSocket(target.webSocketDebuggerUrl)
  await new Promise((resolve, reject) => {
    devtools.onopen = resolve
    devtools.onerror = reject
  })
  let nextId = 0
  const pending = new Map<number, (result: Record<string, any> | undefined) => void>()
  devtools.onmessage = (e) => {
    const message = JSON.parse(String(e.data)) as { id?: number; result?: Record<string, any> }
    if (message.id !== undefined) pending.get(message.id)?.(message.result)
  }
  /** Calls a DevTools protocol method; resolves with its result. */
  const call = (method: string, params: Record<string, unknown>) =>
    new Promise<Record<string, any> | undefined>((resolve) => {
      const id = ++nextId
      pending.set(id, resolve)
      devtools.send(JSON.stringify({ id, method, params }))
    })
  const evaluate = (expression: string): Promise<unknown> =>
    call("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }).then((r) => r?.["result"]?.value)
  return {
    /** Evaluates `expression` in the page. */
    evaluate,
    /** Saves a PNG of the page as `test/artifacts/<name>.png` (kept for people reading a failed run; not committed). */
    screenshot: async (name: string) => {
      const shot = await call("Page.captureScreenshot", { format: "png" })
      Fs.mkdirSync(artifacts, { recursive: true })
      Fs.writeFileSync(Path.join(artifacts, `${name}.png`), Buffer.from(String(shot?.["data"] ?? ""), "base64"))
    },
    /** Waits until the chat log shows a line matching `pattern`. */
    sees: (pattern: RegExp) =>
      until(`the page ${url} to show ${pattern}`, async () => {
        const text = String(await evaluate(`document.getElementById("log")?.innerText ?? ""`))
        return text.split("\n").find((l) => pattern.test(l))
      }),
    close: () => {
      devtools.close()
      child.kill("SIGKILL")
      Fs.rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }) // a killed Chromium may still be writing its profile
    }
  }
}

/** A TCP chat member (as `nc` would be), nick carol, in #lobby; `tcpSees` waits for a line it received. */
const carolInLobby = async (port: number) => {
  const tcp = Net.connect({ host: "127.0.0.1", port })
  const lines: Array<string> = []
  let pending = ""
  tcp.on("data", (d: Buffer) => {
    pending += d.toString("utf8")
    const parts = pending.split("\r\n")
    pending = parts.pop()!
    lines.push(...parts)
  })
  const tcpSees = (pattern: RegExp) => until(`the TCP member to see ${pattern}`, () => lines.find((l) => pattern.test(l)))
  await tcpSees(/welcome/)
  tcp.write("/nick carol\r\n/join lobby\r\n")
  await tcpSees(/carol joined #lobby/)
  return { tcp, tcpSees }
}

describe("chat in headless Chromium", () => {
  it("two browser pages and a TCP member chat in one room (WebSocket compression agreed)", { timeout: 90_000 }, async () => {
    const server = await start({
      services: [
        { name: "web", protocol: "http", listen: "127.0.0.1:0", chat: "chat" },
        { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }
      ]
    })
    const pages: Array<{ close: () => void }> = []
    const { tcp, tcpSees } = await carolInLobby(server.port("chat"))
    try {

      const page = (nick: string) => `http://127.0.0.1:${server.port("web")}/chat.html?nick=${nick}&room=lobby&say=hi+from+${nick}`
      const ann = await openPage(page("ann"))
      pages.push(ann)
      assert.strictEqual(await tcpSees(/hi from ann/), "<ann> hi from ann")
      const ben = await openPage(page("ben"))
      pages.push(ben)
      assert.strictEqual(await tcpSees(/hi from ben/), "<ben> hi from ben")
      assert.strictEqual(await ann.sees(/hi from ben/), "<ben> hi from ben", "page to page")
      // Chromium offers permessage-deflate on every WebSocket, and fiberd agrees (without context takeover)
      assert.strictEqual(await ann.evaluate("socket.extensions"), "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
      tcp.write("hello browsers\r\n")
      assert.strictEqual(await ann.sees(/hello browsers/), "<carol> hello browsers")
      assert.strictEqual(await ben.sees(/hello browsers/), "<carol> hello browsers")
      assert.match(await ben.sees(/joined #lobby/), /joined #lobby/)
    } finally {
      for (const p of pages) p.close()
      tcp.destroy()
      await server.stop()
    }
  })

  it("over HTTPS: Chromium trusts the test certificate (by its key's hash, nothing else), loads /chat.html and / over HTTP/2 and chats over wss (HTTP/1.1)", { timeout: 90_000 }, async () => {
    const cert = makeCert(certDir(), "browser", ["localhost"])
    // the certificate's public key hash: Chromium trusts exactly this key, not any certificate
    const spki = execFileSync("bash", ["-c", `openssl x509 -in '${cert.cert}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`]).toString().trim()
    const server = await start({
      services: [
        { name: "web", protocol: "http", listen: "127.0.0.1:0", chat: "chat", tls: { cert: cert.cert, key: cert.key } },
        { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }
      ]
    })
    const { tcp, tcpSees } = await carolInLobby(server.port("chat"))
    let page: { close: () => void } | undefined
    try {
      const secure = await openPage(`https://127.0.0.1:${server.port("web")}/chat.html?nick=dora&room=lobby&say=over+wss`, [
        `--ignore-certificate-errors-spki-list=${spki}`
      ])
      page = secure
      assert.strictEqual(await tcpSees(/over wss/), "<dora> over wss")
      // the page and its files came over HTTP/2 (ALPN h2); the WebSocket on its own HTTP/1.1 connection
      const protocols = await secure.evaluate(`JSON.stringify(performance.getEntries().filter((e) => e.nextHopProtocol).map((e) => e.nextHopProtocol))`)
      const seen = JSON.parse(String(protocols)) as Array<string>
      assert.isAbove(seen.length, 1)
      assert.deepStrictEqual([...new Set(seen)], ["h2"])
      // and the site's front page, loaded by the page
      const front = await secure.evaluate(`fetch("/").then((r) => r.text()).then(() => performance.getEntriesByName(location.origin + "/")[0]?.nextHopProtocol)`)
      assert.strictEqual(front, "h2")
      tcp.write("hello secure page\r\n")
      assert.strictEqual(await secure.sees(/hello secure page/), "<carol> hello secure page")
    } finally {
      page?.close()
      tcp.destroy()
      await server.stop()
    }
  })

  it("the live status page: services and the supervision tree appear, and the request rate rises with traffic, without a reload", { timeout: 90_000 }, async () => {
    const server = await start({
      services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }, { name: "echo", protocol: "echo", listen: "127.0.0.1:0" }, { name: "chat", protocol: "chat", listen: "127.0.0.1:0" }]
    })
    let page: Awaited<ReturnType<typeof openPage>> | undefined
    try {
      const base = `http://127.0.0.1:${server.port("web")}`
      page = await openPage(`${base}/_status`)
      const live = page
      const read = async (expression: string) => String(await live.evaluate(expression))
      await until("the live view", async () => ((await read("document.body?.className")) === "live" ? true : undefined))
      // the loaded page is marked; a reload would lose the mark
      await live.evaluate("window.loadedOnce ??= Date.now()")
      const mark = await read("window.loadedOnce")
      assert.deepStrictEqual(JSON.parse(await read(`JSON.stringify([...document.querySelectorAll("#services .card h3")].map((h) => h.firstChild.textContent.trim()))`)), ["web", "echo", "chat"])
      // the root's children (the services), then the process's other long-lived parts
      assert.deepStrictEqual(JSON.parse(await read(`JSON.stringify([...document.querySelectorAll("#tree > li")].map((li) => li.dataset.child))`)), ["web", "echo", "chat", "access log", "error log", "offload"])
      // a chat room is a child of the chat's own supervisor: it appears below the chat service once opened
      const { tcp } = await carolInLobby(server.port("chat"))
      await until("the room below chat in the tree", async () => ((await read(`document.querySelector('#tree li[data-child^="chat/lobby"]')?.textContent ?? ""`)).includes("running") ? true : undefined))
      tcp.destroy()
      // traffic: the card's requests/s rises, on the same page
      let stop = false
      const load = (async () => {
        while (!stop) await Promise.all(Array.from({ length: 10 }, () => fetch(`${base}/`).then((r) => r.arrayBuffer())))
      })()
      const rate = await until("the request rate to rise", async () => {
        const value = Number(await read(`document.querySelector('[data-service="web"] .rps')?.textContent ?? "0"`))
        return value > 0 ? value : undefined
      })
      stop = true
      await load
      // a connection held open on echo shows among its oldest
      const held = Net.connect({ host: "127.0.0.1", port: server.port("echo") })
      await new Promise((resolve) => held.once("connect", resolve))
      const local = `${held.localAddress}:${held.localPort}`
      const oldest = await until("the held connection among echo's oldest", async () => {
        const text = await read(`document.querySelector('[data-service="echo"] .oldest')?.textContent ?? ""`)
        return text.includes(local) ? text : undefined
      })
      assert.match(oldest, /^oldest: /)
      await live.screenshot("live-status-traffic")
      held.destroy()
      assert.isAbove(rate, 0)
      assert.strictEqual(await read("window.loadedOnce"), mark, "no reload")
    } finally {
      page?.close()
      await server.stop()
    }
  })

  it("prefork: the live page shows every worker and their request rates; a worker killed with -9 comes back and its restart shows, without a reload", { timeout: 90_000 }, async () => {
    const server = await start({ workers: 2, services: [{ name: "web", protocol: "http", listen: "127.0.0.1:0" }] })
    let page: Awaited<ReturnType<typeof openPage>> | undefined
    try {
      page = await openPage(`http://127.0.0.1:${server.port("web")}/_status`)
      const live = page
      const read = async (expression: string) => String(await live.evaluate(expression))
      const tree = async () => JSON.parse(await read(`JSON.stringify([...document.querySelectorAll("#tree > li")].map((li) => li.dataset.child + " " + li.querySelector(".restarts").textContent))`)) as Array<string>
      assert.deepStrictEqual(await until("both workers in the tree", async () => {
        const t = await tree()
        return t.length === 2 ? t : undefined
      }), ["worker 1 0", "worker 2 0"])
      await live.evaluate("window.loadedOnce ??= Date.now()") // the loaded page is marked; a reload would lose the mark
      const mark = await read("window.loadedOnce")
      // traffic: the workers' request rates rise (the server's whole view, whichever worker serves the page)
      const base = `http://127.0.0.1:${server.port("web")}`
      await until("a worker's request rate to rise", async () => {
        await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/`).then((r) => r.arrayBuffer())))
        const rates = JSON.parse(await read(`JSON.stringify([...document.querySelectorAll("#processes .rps")].map((b) => Number(b.textContent)))`)) as Array<number>
        return rates.some((r) => r > 0) ? rates : undefined
      })
      const pid = Number(await read(`document.querySelector('[data-process="1"] small').textContent.replace("pid ", "")`))
      assert.isAbove(pid, 0)
      process.kill(pid, "SIGKILL")
      // the page goes on (its stream may move to the other worker); worker 1's slot shows its restart
      assert.deepStrictEqual((await until("worker 1's restart", async () => {
        const t = await tree().catch(() => [] as Array<string>)
        return t.includes("worker 1 1") ? t : undefined
      })).sort(), ["worker 1 1", "worker 2 0"])
      await live.screenshot("live-status-prefork-restart")
      assert.strictEqual(await read("window.loadedOnce"), mark, "no reload")
    } finally {
      page?.close()
      await server.stop()
    }
  })
})

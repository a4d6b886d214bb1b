/**
 * The `/_status` page for browsers: the status table rendered on the server
 * (it is the whole page without JavaScript), and a small dependency-free
 * script that follows `/_status/stream` (EventSource) and draws, without a
 * reload: per service requests/s, bytes/s and p50/p99 latency as inline-SVG
 * sparklines over the last three minutes, connections and errors; the
 * the connections open longest; the supervisor's children with their state
 * and restarts (a restart flashes); in prefork mode a card per process;
 * event-loop delay and heap; the logs (queued, written, dropped); in
 * cluster mode the node's runner, shards and rooms. The browser keeps at most 180 points a series.
 */

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;" })[c]!)

/** What the page shows before the first frame (the status document's parts it reads). */
export interface PageDoc {
  readonly uptimeSeconds: number
  readonly memory: { readonly rssBytes: number; readonly heapUsedBytes: number }
  readonly services: ReadonlyArray<Record<string, unknown> & { readonly name: string }>
  readonly supervisor: ReadonlyArray<{ readonly id: string; readonly status: string; readonly restarts: number }>
  readonly logs: { readonly access: { readonly written: number; readonly dropped: number }; readonly error: { readonly written: number; readonly dropped: number } }
}

const COLUMNS = ["name", "protocol", "transport", "address", "activeConnections", "totalConnections", "requests", "bytesIn", "bytesOut", "handlerFailures", "supervisorRestarts"]

/** This process's status as HTML tables: the status page without JavaScript. */
export const tables = (doc: PageDoc): string => {
  const rows = doc.services.map((s) => `<tr>${COLUMNS.map((k) => `<td>${escapeHtml(String(s[k] ?? "–"))}</td>`).join("")}</tr>`).join("\n")
  const tree = doc.supervisor.map((c) => `<li>${escapeHtml(c.id)} ${escapeHtml(c.status)}, ${c.restarts} restarts</li>`).join("")
  return `<p>Up ${doc.uptimeSeconds} s. Memory: ${(doc.memory.rssBytes / 1048576).toFixed(1)} MiB resident, ${(doc.memory.heapUsedBytes / 1048576).toFixed(1)} MiB heap in use. Access log: ${doc.logs.access.written} written, ${doc.logs.access.dropped} dropped. Error log: ${doc.logs.error.written} written, ${doc.logs.error.dropped} dropped.</p>
<table><tr><th>service</th><th>protocol</th><th>transport</th><th>address</th><th>active</th><th>total</th><th>requests</th><th>bytes in</th><th>bytes out</th><th>handler failures</th><th>restarts</th></tr>
${rows}</table><h2>Supervisor</h2><ul>${tree}</ul>`
}

/** The live page around `tables` (shown as they are without JavaScript). */
export const page = (tables: string): string =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fiberd status</title>
<style>
body{font:15px system-ui,sans-serif;margin:2rem;color:#1d2330}table{border-collapse:collapse;margin-bottom:1.5rem}td,th{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left}th{background:#e8f3ef}
#live{display:none}.live #live{display:block}.live #static{display:none}.card{display:inline-block;vertical-align:top;margin:.5rem 1rem .5rem 0;padding:.6rem .8rem;border:1px solid #ddd;border-radius:6px;min-width:17rem}
.card h3{margin:0 0 .3rem;font-size:1rem}.num{font-variant-numeric:tabular-nums}svg{display:block}polyline{fill:none;stroke:#2a7a5f;stroke-width:1.5}
.flash{animation:flash 2s}@keyframes flash{from{background:#ffd27a}to{background:transparent}}ul{padding-left:1.2rem}
</style></head>
<body><h1>fiberd status</h1>
<div id="static">${tables}</div>
<div id="live"><p id="process" class="num"></p><div id="services"></div><div id="processes"></div><h2>Supervisor</h2><ul id="tree"></ul><p id="logs" class="num"></p></div>
<p><a href="/_status?format=json">JSON</a> · <a href="/_status/stream">stream</a> · <a href="/metrics">metrics</a></p>
<script>${script}</script></body></html>`

// the page's script: plain JavaScript, no build step; every series bounded
const script = `(() => {
  if (!window.EventSource) return
  const MAX = 180, series = new Map(), restarts = new Map()
  const push = (key, value) => { const s = series.get(key) ?? []; s.push(value ?? 0); if (s.length > MAX) s.shift(); series.set(key, s); return s }
  const spark = (values) => {
    const top = Math.max(1, ...values), w = 160, h = 28
    const points = values.map((v, i) => (i * w / (MAX - 1)).toFixed(1) + "," + (h - v / top * (h - 2) - 1).toFixed(1)).join(" ")
    return '<svg width="' + w + '" height="' + h + '"><polyline points="' + points + '"/></svg>'
  }
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c])
  const fmt = (n, digits = 0) => n === null || n === undefined ? "–" : Number(n).toFixed(digits)
  const bytes = (n) => n >= 1048576 ? (n / 1048576).toFixed(1) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : fmt(n) + " B"
  const feed = new EventSource("/_status/stream")
  feed.onmessage = (event) => {
    const f = JSON.parse(event.data)
    document.body.classList.add("live")
    document.getElementById("process").textContent = "Up " + f.uptimeSeconds + " s · event-loop delay p50 " + fmt(f.loop.delayP50Ms, 2) + " ms, p99 " + fmt(f.loop.delayP99Ms, 2) + " ms · heap " + bytes(f.memory.heapUsedBytes) + " · resident " + bytes(f.memory.rssBytes)
    push("loop", f.loop.delayP99Ms); push("heap", f.memory.heapUsedBytes)
    document.getElementById("services").innerHTML = f.services.map((s) => {
      const rps = push(s.name + "/rps", s.requestsPerSecond), io = push(s.name + "/io", s.bytesInPerSecond + s.bytesOutPerSecond), p99 = push(s.name + "/p99", s.p99Ms)
      return '<div class="card" data-service="' + esc(s.name) + '"><h3>' + esc(s.name) + ' <small>' + esc(s.protocol) + '</small></h3>' +
        '<div class="num">requests/s <b class="rps">' + fmt(s.requestsPerSecond, 1) + '</b></div>' + spark(rps) +
        '<div class="num">bytes/s in ' + bytes(s.bytesInPerSecond) + ', out ' + bytes(s.bytesOutPerSecond) + '</div>' + spark(io) +
        '<div class="num">latency p50 ' + fmt(s.p50Ms, 1) + ' ms, p99 ' + fmt(s.p99Ms, 1) + ' ms</div>' + spark(p99) +
        '<div class="num">connections <b class="connections">' + s.activeConnections + '</b> · 4xx ' + s.clientErrors + ' · 5xx ' + s.serverErrors + ' · handler failures ' + s.handlerFailures + ' · restarts ' + s.restarts + '</div>' +
        (s.oldest.length > 0 ? '<div class="num oldest">oldest: ' + s.oldest.map((o) => esc(o.peer) + " " + o.seconds + " s").join(", ") + '</div>' : "") + '</div>'
    }).join("")
    // prefork: one card per process (the primary and each worker)
    document.getElementById("processes").innerHTML = (f.processes ?? []).map((p) => {
      const rps = push("process " + p.name + "/rps", p.requestsPerSecond)
      return '<div class="card" data-process="' + esc(p.name) + '"><h3>' + (p.name === "primary" ? "primary" : "worker " + esc(p.name)) + ' <small>pid ' + p.pid + '</small></h3>' +
        '<div class="num">requests/s <b class="rps">' + fmt(p.requestsPerSecond, 1) + '</b> · restarts <b class="restarts">' + p.restarts + '</b></div>' + spark(rps) + '</div>'
    }).join("")
    const tree = document.getElementById("tree")
    for (const c of f.supervisor) {
      let item = tree.querySelector('[data-child="' + CSS.escape(c.id) + '"]')
      if (!item) { item = document.createElement("li"); item.dataset.child = c.id; tree.appendChild(item) }
      // below a service that supervises its own children (a chat's rooms): their list, a restart flashing too
      const below = (c.children ?? []).map((k) => {
        const key = c.id + "/" + k.id, changed = restarts.has(key) && restarts.get(key) !== k.restarts
        restarts.set(key, k.restarts)
        return '<li data-child="' + esc(key) + '"' + (changed ? ' class="flash"' : '') + '>' + esc(k.id) + ' <span class="state">' + esc(k.status) + '</span>, <span class="restarts">' + k.restarts + '</span> restarts</li>'
      }).join("")
      item.innerHTML = esc(c.id) + ' <span class="state">' + esc(c.status) + '</span>, <span class="restarts">' + c.restarts + '</span> restarts' + (below ? '<ul>' + below + '</ul>' : '')
      if (restarts.has(c.id) && restarts.get(c.id) !== c.restarts) { item.classList.remove("flash"); void item.offsetWidth; item.classList.add("flash") }
      restarts.set(c.id, c.restarts)
    }
    for (const item of [...tree.children]) if (!f.supervisor.some((c) => c.id === item.dataset.child)) item.remove()
    const logs = f.logs
    document.getElementById("logs").textContent = "Access log: " + logs.access.written + " written, " + logs.access.dropped + " dropped, " + f.logsQueued.access + " queued · error log: " + logs.error.written + " written, " + logs.error.dropped + " dropped, " + f.logsQueued.error + " queued" +
      (f.cluster ? " · cluster: " + JSON.stringify(f.cluster) : "")
  }
})()`

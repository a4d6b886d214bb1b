#!/usr/bin/env node
// The fiberd command. It needs Node >= 22.19 (Effect 4); on an older Node it says so in one line.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`fiberd: needs Node.js 22.19 or newer (this is Node.js ${process.versions.node})\n`)
  process.exit(1)
}
// the bundled program in dist/bin (an installed package, or a checkout after npm install: it starts in
// about a third of the time the modules take), else tsc's build in dist/, else the TypeScript sources
const programs = ["dist/bin/main.js", "dist/runtime/main.js", "src/runtime/main.ts"]
for (const [i, path] of programs.entries()) {
  try {
    await import(`../${path}`)
    break
  } catch (error) {
    const missing = error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes(path)
    if (!missing || i === programs.length - 1) throw error
  }
}

#!/usr/bin/env node
// The fiberd command. It needs Node >= 22.19 (Effect 4); on an older Node it says so in one line.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`fiberd: needs Node.js 22.19 or newer (this is Node.js ${process.versions.node})\n`)
  process.exit(1)
}
// the bundled program in dist/bin (an installed package, or a checkout after npm install: it starts in
// about a third of the time the modules take), else tsc's build in dist/, else the TypeScript sources
const notFound = (error, path) => error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes(path)
try {
  await import("../dist/bin/main.js")
} catch (error) {
  if (!notFound(error, "dist/bin/main.js")) throw error
  try {
    await import("../dist/runtime/main.js")
  } catch (error) {
    if (!notFound(error, "dist/runtime/main.js")) throw error
    await import("../src/runtime/main.ts")
  }
}

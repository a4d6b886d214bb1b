#!/usr/bin/env node
// The fiberd command. It needs Node >= 22.19 (Effect 4); on an older Node it says so in one line.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`fiberd: needs Node.js 22.19 or newer (this is Node.js ${process.versions.node})\n`)
  process.exit(1)
}
// the build in dist/ (an installed package, or a checkout after npm install); the TypeScript sources otherwise
try {
  await import("../dist/runtime/main.js")
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("dist/runtime/main.js")) throw error
  await import("../src/runtime/main.ts")
}

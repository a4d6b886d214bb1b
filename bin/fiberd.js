#!/usr/bin/env node
// The fiberd command. The sources are TypeScript that Node >= 22.19 runs directly (type stripping).
import "../src/runtime/main.ts"

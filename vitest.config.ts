import { defineConfig } from "vitest/config"

export default defineConfig({
  // "source": resolve `fiberd` (the package itself, as the examples import it) to src/, not to the build in dist/
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})

/** A throwaway PostgreSQL for a test file of cluster nodes (vitest hooks; `postgres.ts` stays free of them for the benches). */
import { afterAll, beforeAll } from "vitest"
import { type Postgres, startPostgres } from "./postgres.ts"

/**
 * For a test file of fiberd nodes on one throwaway PostgreSQL: starts the server before the file's tests,
 * and after them stops every node pushed to `nodes`, then the server.
 */
export const postgresForNodes = () => {
  const fixture: { pg: Postgres; readonly nodes: Array<{ readonly stop: () => Promise<unknown> }> } = { pg: undefined as unknown as Postgres, nodes: [] }
  beforeAll(async () => {
    fixture.pg = await startPostgres()
  }, 60_000)
  afterAll(async () => {
    for (const n of fixture.nodes) await n.stop()
    fixture.pg?.stop()
  })
  return fixture
}

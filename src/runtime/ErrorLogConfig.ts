/**
 * The error log a process runs, as the table's `errorLog` key describes it
 * (stderr in text by default; the key is ErrorLog's own options). Shared by
 * the single process, the prefork primary and its workers: every process
 * appends to the same file.
 */
import * as ErrorLog from "../actors/ErrorLog.ts"
import type * as ServiceTable from "./ServiceTable.ts"

/** The error-log layer for a table. */
export const layer = (table: ServiceTable.Table) => ErrorLog.layer(table.errorLog ?? {})

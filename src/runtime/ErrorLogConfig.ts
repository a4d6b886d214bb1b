/**
 * The error log a process runs, as the table's `errorLog` key describes it
 * (stderr in text by default). Shared by the single process, the prefork
 * primary and its workers: every process appends to the same file.
 */
import * as ErrorLog from "../actors/ErrorLog.ts"
import * as ServiceTable from "./ServiceTable.ts"

/** The error-log layer for a table. */
export const layer = (table: ServiceTable.Table) =>
  ErrorLog.layer({
    destination: table.errorLog?.path ?? "stderr",
    format: table.errorLog?.format ?? "text",
    ...(table.errorLog?.writeStallTimeout !== undefined ? { writeStallTimeout: ServiceTable.toDuration(table.errorLog.writeStallTimeout)! } : {}),
    ...(table.errorLog?.maxQueued !== undefined ? { maxQueued: table.errorLog.maxQueued } : {}),
    ...(table.errorLog?.allowNonRegular !== undefined ? { allowNonRegular: table.errorLog.allowNonRegular } : {}),
    ...(table.errorLog?.syslog !== undefined ? { syslog: { host: table.errorLog.syslog.host, ...(table.errorLog.syslog.port !== undefined ? { port: table.errorLog.syslog.port } : {}) } } : {})
  })

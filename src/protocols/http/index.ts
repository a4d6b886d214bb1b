/**
 * HTTP/1.1 on connection fibers: parser, connection loop, responses, static
 * files and a thin router.
 */
export * as Body from "./Body.ts"
export { Headers } from "./Headers.ts"
export * as Parser from "./Parser.ts"
export * as Request from "./Request.ts"
export * as Response from "./Response.ts"
export * as Router from "./Router.ts"
export * as Serve from "./Serve.ts"
export * as StaticFiles from "./StaticFiles.ts"
export * as Server from "./Server.ts"

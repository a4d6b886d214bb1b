/**
 * The HTTP types an application names, in one place: `Http.App<E, R>` (a
 * request in, an Effect of a response out), the request and response, the
 * header fields and the server options.
 */
export type { App, ServeOptions } from "./Serve.ts"
export type { Headers } from "./Headers.ts"
export type { Request } from "./Request.ts"
export type { Body, Response } from "./Response.ts"

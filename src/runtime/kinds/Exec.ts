/** The exec kind (inetd's nowait): a command per connection, its stdin and stdout wired to it. */
import { Schema } from "effect"
import * as ExecProtocol from "../../protocols/exec.ts"
import { common, kind, listen } from "./Kind.ts"

export const exec = kind({
  schema: Schema.Struct({ ...common, protocol: Schema.Literal("exec"), ...ExecProtocol.options.schema.fields }),
  start: (service, deps) => listen(service, deps, ExecProtocol.make(service).handler)
})

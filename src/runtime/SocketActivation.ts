/**
 * systemd socket activation (sd_listen_fds(3)): the listening sockets this
 * process was handed — descriptors from 3 on, `LISTEN_FDS` of them, when
 * `LISTEN_PID` is this process — matched to the table's services by
 * `LISTEN_FDNAMES` (a socket unit's `FileDescriptorName=`, the service's
 * name) or, without names, by the order of the services in the table (TCP
 * and Unix stream sockets, UDP datagram sockets alike).
 * Read once at start-up; the variables are then removed, so no child
 * process believes the sockets are its own.
 */

/** Which service listens on which inherited descriptor. */
export type Inherited = ReadonlyMap<string, number>

/** The first descriptor systemd passes (SD_LISTEN_FDS_START). */
const FIRST = 3

/**
 * The descriptors for `services` (their names, in table order) according to
 * `env`, for the process `pid`; empty when nothing was handed to this process.
 */
export const inherited = (env: NodeJS.ProcessEnv, pid: number, services: ReadonlyArray<string>): Inherited => {
  const out = new Map<string, number>()
  if (env["LISTEN_PID"] !== String(pid)) return out
  const count = Number(env["LISTEN_FDS"] ?? 0)
  if (!Number.isInteger(count) || count <= 0) return out
  const names = env["LISTEN_FDNAMES"]?.split(":")
  const named = names !== undefined && names.some((n) => services.includes(n))
  for (let i = 0; i < count; i++) {
    const service = named ? names![i] : services[i]
    if (service !== undefined && services.includes(service) && !out.has(service)) out.set(service, FIRST + i)
  }
  return out
}

/** Reads this process's inherited sockets for `services` and removes the variables (sd_listen_fds' unset_environment). */
export const takeInherited = (services: ReadonlyArray<string>): Inherited => {
  const found = inherited(process.env, process.pid, services)
  delete process.env["LISTEN_PID"]
  delete process.env["LISTEN_FDS"]
  delete process.env["LISTEN_FDNAMES"]
  return found
}

/**
 * The file behind a log writer: opened at start and asynchronously (a FIFO
 * without a reader cannot block an open), appended to with one write per
 * batch, reopened by path after errors, on demand (rotation), and when the
 * file at the path is no longer the one open — the new file is opened before
 * the old one is let go, so a shortage of descriptors never leaves the log
 * with no file at all.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

/** Where a log goes: a file path (appended, created with its directory), `-` for stdout, `stderr` for stderr. */
export type Destination = string

const appendAll = (fd: number, data: Buffer): Promise<void> =>
  new Promise((resolve, reject) => {
    const step = (offset: number) =>
      Fs.write(fd, data, offset, data.byteLength - offset, null, (error, written) => {
        if (error) return reject(error)
        if (offset + written < data.byteLength) return step(offset + written)
        resolve()
      })
    step(0)
  })

export const errno = (code: string, message: string) => Object.assign(new Error(message), { code })

/**
 * Creates `dir` and its missing parents, one `mkdir` at a time (asynchronously).
 * Node's own recursive mkdir spins forever on some paths (under /proc).
 */
const ensureDir = async (dir: string): Promise<void> => {
  const stat = await Fs.promises.stat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined
    throw e
  })
  if (stat !== undefined) {
    if (!stat.isDirectory()) throw errno("ENOTDIR", `${dir} is not a directory`)
    return
  }
  const parent = Path.dirname(dir)
  if (parent === dir) throw errno("ENOENT", `${dir} does not exist`)
  await ensureDir(parent)
  await Fs.promises.mkdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e
  })
}

/** Append, create, and never block in open(): a FIFO without a reader fails (ENXIO) instead of hanging a thread. */
const OPEN_FLAGS = Fs.constants.O_WRONLY | Fs.constants.O_APPEND | Fs.constants.O_CREAT | Fs.constants.O_NONBLOCK

/**
 * The file behind a log: opened lazily (asynchronously), reopened on demand,
 * after errors, and when the file at the path is no longer the one open
 * (deleted or replaced: checked at most once a second).
 */
export class Sink {
  private fd: number | undefined = undefined
  private inode = 0
  private device = 0
  private checkedAt = 0
  private failing = false
  private readonly options: { readonly name: string; readonly destination: Destination; readonly allowNonRegular: boolean }
  /** Milliseconds now, from Effect's Clock (tests move it with TestClock). */
  private readonly now: () => number
  constructor(
    options: { readonly name: string; readonly destination: Destination; readonly allowNonRegular: boolean },
    now: () => number
  ) {
    this.options = options
    this.now = now
  }

  private get standard(): number | undefined {
    return this.options.destination === "-" ? 1 : this.options.destination === "stderr" ? 2 : undefined
  }

  /** The path should be opened afresh (rotation, an error, the file replaced); until that succeeds the open file is kept. */
  private stale = false

  private async open(): Promise<number> {
    const standard = this.standard
    if (standard !== undefined) return standard
    if (this.fd !== undefined) {
      await this.checkStillThere()
      if (!this.stale) return this.fd
      // open the path afresh; if that fails (no descriptor left: EMFILE), go on writing to the file we have
      const fresh = await this.openPath().catch(() => undefined)
      if (fresh !== undefined) this.use(fresh)
      return this.fd
    }
    this.use(await this.openPath())
    return this.fd!
  }

  private async openPath(): Promise<{ readonly fd: number; readonly stat: Fs.Stats }> {
    const path = this.options.destination
    await ensureDir(Path.dirname(path))
    const fd = await new Promise<number>((resolve, reject) =>
      Fs.open(path, OPEN_FLAGS, 0o644, (error, fd) => (error ? reject(error) : resolve(fd)))
    )
    const stat = await new Promise<Fs.Stats>((resolve, reject) => Fs.fstat(fd, (error, st) => (error ? reject(error) : resolve(st))))
    if (!stat.isFile() && !this.options.allowNonRegular) {
      Fs.close(fd, () => {})
      throw errno("ENOTREG", "not a regular file (allowNonRegular is off)")
    }
    return { fd, stat }
  }

  private use(opened: { readonly fd: number; readonly stat: Fs.Stats }): void {
    this.close()
    this.fd = opened.fd
    this.inode = opened.stat.ino
    this.device = opened.stat.dev
    this.checkedAt = this.now()
    this.stale = false
  }

  /**
   * Opens the file now, at start while descriptors are free, so that a later shortage of them
   * (EMFILE under a connection flood) cannot keep the log from being written; a failure is left
   * for the first append to report.
   */
  async warm(): Promise<void> {
    await this.open().catch(() => {})
  }

  /** The next append opens the path afresh (rotation, or after an error), keeping the open file if that fails. */
  markStale(): void {
    this.stale = true
  }

  /** At most once a second: if the path no longer names the open file (deleted, rotated away), close it. */
  private async checkStillThere(): Promise<void> {
    const now = this.now()
    if (now - this.checkedAt < 1000) return
    this.checkedAt = now
    const stat = await Fs.promises.stat(this.options.destination).catch(() => undefined)
    if (stat === undefined || stat.ino !== this.inode || stat.dev !== this.device) this.stale = true
  }

  /** Closes the file (asynchronously); the next append opens it again by path. */
  close(): void {
    const fd = this.fd
    this.fd = undefined
    if (fd !== undefined) Fs.close(fd, () => {})
  }

  /**
   * Forgets the file without closing it yet: a write to it is still in flight
   * (stalled). It is closed when that write ends, so its descriptor number
   * cannot be reused under the stalled write.
   */
  abandon(inFlight: Promise<unknown>): void {
    const fd = this.fd
    this.fd = undefined
    if (fd !== undefined) inFlight.finally(() => Fs.close(fd, () => {})).catch(() => {})
  }

  /** Appends everything; rejects on an error (the caller drops the batch). */
  async append(data: Buffer): Promise<void> {
    await appendAll(await this.open(), data)
  }

  /** Reports the start (once) and the end of a failure streak on stderr. */
  report(ok: boolean, entries: number, reason?: string): void {
    if (ok && this.failing) {
      this.failing = false
      process.stderr.write(`fiberd: ${this.options.name} ${this.options.destination}: writing again\n`)
    } else if (!ok && !this.failing) {
      this.failing = true
      process.stderr.write(
        `fiberd: ${this.options.name} ${this.options.destination}: cannot write (${reason}); ` +
          `dropping ${entries} entries and every batch until it can be written again\n`
      )
    }
  }
}

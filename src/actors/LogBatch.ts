/**
 * Log lines collected as UTF-8 bytes, written into reusable chunks as they
 * are told: a batch is one contiguous buffer, ready for one append, with no
 * string concatenation to flatten and nothing of the entries kept alive.
 */

/** Bytes of one chunk; a line longer than a chunk gets a buffer of its own. */
const CHUNK = 64 * 1024
/** Node's encoders without `Buffer.write`'s argument juggling (on every Buffer; not in @types/node). */
interface Encoders {
  latin1Write(string: string, offset: number): number
  utf8Write(string: string, offset: number): number
}

/** Chunks kept for reuse once their batch was written. */
const SPARES = 2

/** A sealed batch: its bytes, how many lines, and the chunk to give back once written. */
export interface Sealed {
  readonly bytes: Buffer
  readonly count: number
  readonly chunk: Buffer
}

/** The batch being filled. */
export class LogBatch {
  private chunk: Buffer | undefined = undefined
  private used = 0
  /** Lines in the batch. */
  count = 0
  private readonly spares: Array<Buffer> = []
  /** Lines are ASCII: one byte per character (else UTF-8, up to three). */
  private readonly ascii: boolean

  constructor(ascii: boolean) {
    this.ascii = ascii
  }

  /** Whether `line` fits after what the batch holds (an empty batch takes any line). */
  fits(line: string): boolean {
    return this.count === 0 || this.used + line.length * (this.ascii ? 1 : 3) <= this.chunk!.byteLength
  }

  /** Appends a line (call `fits` first; seal when it says false). */
  add(line: string): void {
    let chunk = this.chunk
    const most = line.length * (this.ascii ? 1 : 3)
    if (chunk === undefined || (this.count === 0 && most > chunk.byteLength)) {
      chunk = this.chunk = most > CHUNK ? Buffer.allocUnsafe(most) : (this.spares.pop() ?? Buffer.allocUnsafe(CHUNK))
      this.used = 0
    }
    const encoders = chunk as unknown as Encoders
    this.used += this.ascii ? encoders.latin1Write(line, this.used) : encoders.utf8Write(line, this.used)
    this.count++
  }

  /** Takes the batch (undefined when empty); the next line starts a new one. */
  take(): Sealed | undefined {
    if (this.count === 0) return undefined
    const chunk = this.chunk!
    const sealed: Sealed = { bytes: chunk.subarray(0, this.used), count: this.count, chunk }
    this.chunk = undefined
    this.used = 0
    this.count = 0
    return sealed
  }

  /** Gives back a written batch's chunk for reuse (not one that may still be in flight). */
  release(sealed: Sealed): void {
    if (sealed.chunk.byteLength === CHUNK && this.spares.length < SPARES) this.spares.push(sealed.chunk)
  }
}

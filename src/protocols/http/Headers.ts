/**
 * Request headers: field names (lower-cased) and values in arrival order,
 * looked up case-insensitively. A linear scan beats a map for the dozen
 * fields a request usually carries, and costs nothing to build.
 */
export class Headers {
  /** Lower-cased field names, in order. */
  readonly names: ReadonlyArray<string>
  /** Values (OWS trimmed), parallel to `names`. */
  readonly values: ReadonlyArray<string>

  constructor(names: ReadonlyArray<string>, values: ReadonlyArray<string>) {
    this.names = names
    this.values = values
  }

  /** The first value of a field, or undefined. `name` in any case. */
  get(name: string): string | undefined {
    const key = name.toLowerCase()
    for (let i = 0; i < this.names.length; i++) if (this.names[i] === key) return this.values[i]
    return undefined
  }

  /** Every value of a field, in order. */
  getAll(name: string): Array<string> {
    const key = name.toLowerCase()
    const out: Array<string> = []
    for (let i = 0; i < this.names.length; i++) if (this.names[i] === key) out.push(this.values[i]!)
    return out
  }

  has(name: string): boolean {
    return this.get(name) !== undefined
  }

  /** Number of fields. */
  get size(): number {
    return this.names.length
  }

  /** `[name, value]` pairs in order. */
  *[Symbol.iterator](): IterableIterator<[string, string]> {
    for (let i = 0; i < this.names.length; i++) yield [this.names[i]!, this.values[i]!]
  }


  static readonly empty = new Headers([], [])
}

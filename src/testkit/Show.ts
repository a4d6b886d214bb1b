/**
 * Readable renderings of bytes for counterexamples and assertion messages:
 * printable ASCII as is, `\r` `\n` `\t` `\\` `"` escaped, other bytes as `\xNN`,
 * each chunk quoted and chunk boundaries marked with ` | `.
 */

/** One byte string, quoted and escaped. */
export const bytes = (data: Uint8Array): string => {
  let out = "\""
  for (const b of data) {
    if (b === 0x0d) out += "\\r"
    else if (b === 0x0a) out += "\\n"
    else if (b === 0x09) out += "\\t"
    else if (b === 0x5c) out += "\\\\"
    else if (b === 0x22) out += "\\\""
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b)
    else out += `\\x${b.toString(16).padStart(2, "0")}`
  }
  return out + "\""
}

/** Several chunks, boundaries marked: `"GET / HT" | "TP/1.1\r\n"`. */
export const chunks = (parts: ReadonlyArray<Uint8Array>): string =>
  parts.length === 0 ? "(no bytes)" : parts.map(bytes).join(" | ")

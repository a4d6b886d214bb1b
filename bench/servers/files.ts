/** The files both HTTP bench servers serve: 12 bytes, 16 KiB, 1 MiB. */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export const makeSite = (): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "fiberd-site-"))
  Fs.writeFileSync(Path.join(dir, "hello.txt"), "Hello world\n")
  Fs.writeFileSync(Path.join(dir, "16k.bin"), Buffer.alloc(16 * 1024, 0x61))
  Fs.writeFileSync(Path.join(dir, "1m.bin"), Buffer.alloc(1024 * 1024, 0x62))
  return dir
}

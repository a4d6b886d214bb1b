/**
 * Waiting on files without sleeping: resolves when a file's content matches,
 * woken by inotify (fs.watch) rather than by polling.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

/** Resolves with the file's text once it matches `pattern` (a test predicate on the text is allowed too); rejects after `ms`. */
export const fileMatches = (file: string, pattern: RegExp | { test: (text: string) => boolean }, ms = 5000) =>
  new Promise<string>((resolve, reject) => {
    const read = () => {
      try {
        return Fs.readFileSync(file, "utf8")
      } catch {
        return ""
      }
    }
    // watch (inotify, not recursive: a recursive watch starts late and can miss the first writes) the
    // nearest directory that exists, moving down as the log's own directories appear; every event, and
    // every move, checks the file again
    const target = Path.dirname(file)
    let watched = ""
    let watcher: Fs.FSWatcher | undefined
    const nearest = () => {
      let dir = target
      while (!Fs.existsSync(dir)) dir = Path.dirname(dir)
      return dir
    }
    const arm = () => {
      const dir = nearest()
      if (dir === watched) return
      watcher?.close()
      watched = dir
      watcher = Fs.watch(dir, () => check())
    }
    const timer = setTimeout(() => {
      watcher?.close()
      reject(new Error(`${file} never matched ${pattern}: ${read()}`))
    }, ms)
    const check = () => {
      arm()
      const text = read()
      if (!pattern.test(text)) return
      clearTimeout(timer)
      watcher?.close()
      resolve(text)
    }
    check()
  })


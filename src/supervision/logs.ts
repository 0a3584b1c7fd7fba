// The app's logs on disk: the node's console (run_erl's erlang.log.N, rotated by run_erl itself) and berth's
// own per-app lines (berth.log, rotated here by size with a total cap). Tail and follow read them back.

import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'

export type LogSource = 'console' | 'berth'

/** berth's per-app log: one line per event, rotated at maxBytes, at most `generations` old files. */
export class AppLog {
  constructor(
    private readonly dir: (app: string) => string,
    private readonly maxBytes = 1024 * 1024,
    private readonly generations = 4,
  ) {}

  write(app: string, line: string): void {
    const dir = this.dir(app)
    const file = path.join(dir, 'berth.log')
    // Only for apps that exist on disk: a refused upload to a made-up app name must not create directories.
    if (!fs.existsSync(path.dirname(dir))) return
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o750 })
      const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0
      if (size + line.length + 1 > this.maxBytes) this.rotate(file)
      fs.appendFileSync(file, `${line.replace(/\n/g, ' ')}\n`, { mode: 0o640 })
    } catch {
      // A full disk must not take the agent down with it; the event is still in the database.
    }
  }

  private rotate(file: string): void {
    fs.rmSync(`${file}.${this.generations}`, { force: true })
    for (let i = this.generations - 1; i >= 1; i--) {
      if (fs.existsSync(`${file}.${i}`)) fs.renameSync(`${file}.${i}`, `${file}.${i + 1}`)
    }
    fs.renameSync(file, `${file}.1`)
  }
}

/** The files of a source, oldest first (by modification time: run_erl reuses erlang.log.N round-robin). */
export function logFiles(dir: string, source: LogSource): string[] {
  const re = source === 'console' ? /^erlang\.log\.\d+$/ : /^berth\.log(\.\d+)?$/
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => re.test(f)) : []
  return names
    .map((f) => ({ f: path.join(dir, f), m: fs.statSync(path.join(dir, f)).mtimeMs }))
    .sort((a, b) => a.m - b.m || b.f.localeCompare(a.f))
    .map((x) => x.f)
}

const TAIL_READ = 1024 * 1024

/** The last `lines` lines across the source's files, newest last. */
export function tail(dir: string, source: LogSource, lines: number): string[] {
  // slice(-0) would be the whole window: no lines asked for is no lines.
  if (lines <= 0) return []
  const out: string[] = []
  for (const file of logFiles(dir, source).reverse()) {
    const fd = fs.openSync(file, 'r')
    try {
      const size = fs.fstatSync(fd).size
      const len = Math.min(size, TAIL_READ)
      const buf = Buffer.alloc(len)
      fs.readSync(fd, buf, 0, len, size - len)
      const got = buf.toString('utf8').split('\n')
      if (got.at(-1) === '') got.pop()
      if (len < size) got.shift() // first line is partial
      out.unshift(...got.slice(-(lines - out.length)))
    } finally {
      fs.closeSync(fd)
    }
    if (out.length >= lines) break
  }
  return out.slice(-lines)
}

/**
 * A stream of what is appended to the source from now on, across rotations and node restarts (the newest
 * file is re-checked on each poll). Pull-based: it only reads when the consumer wants more.
 */
export function follow(dir: string, source: LogSource, signal: AbortSignal, pollMs = 250): Readable {
  const offsets = new Map<string, number>()
  for (const f of logFiles(dir, source)) offsets.set(f, fs.statSync(f).size)
  let timer: NodeJS.Timeout | null = null
  const stream = new Readable({
    read() {
      if (timer) return
      const poll = () => {
        timer = null
        if (signal.aborted) return void stream.push(null)
        let pushed = false
        for (const f of logFiles(dir, source)) {
          const size = fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0
          let from = offsets.get(f) ?? 0
          if (size < from) from = 0 // truncated or reused by rotation
          if (size > from) {
            const len = Math.min(size - from, 256 * 1024)
            const buf = Buffer.alloc(len)
            const fd = fs.openSync(f, 'r')
            try {
              fs.readSync(fd, buf, 0, len, from)
            } finally {
              fs.closeSync(fd)
            }
            offsets.set(f, from + len)
            pushed = true
            if (!stream.push(buf)) return
          } else offsets.set(f, size)
        }
        if (!pushed) timer = setTimeout(poll, pollMs)
      }
      poll()
    },
    destroy(err, cb) {
      if (timer) clearTimeout(timer)
      cb(err)
    },
  })
  signal.addEventListener('abort', () => {
    if (timer) clearTimeout(timer)
    stream.push(null)
  }, { once: true })
  return stream
}

// The app's logs on disk: the node's console (run_erl's erlang.log.N, rotated by run_erl itself) and berth's
// own per-app lines (berth.log, rotated here by size with a total cap), and the edge's access lines (access.log,
// written by edge/access-log.ts). Tail and follow read them back, as the app's clean lines (text), JSON lines
// with timestamps (json), or the bytes as written (raw).

import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { headMarker, LineReader, type LogEntry, type LogSource } from './log-lines.js'
import { openUnlinked } from '../fsutil.js'

export type { LogEntry, LogSource } from './log-lines.js'

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
  const re = source === 'console' ? /^erlang\.log\.\d+$/ : source === 'access' ? /^access\.log(\.\d+)?$/ : /^berth\.log(\.\d+)?$/
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => re.test(f)) : []
  // lstat, and regular files only: the console log dir is the app's, and a link it plants there must be
  // left out (openUnlinked refuses it too, also one swapped in after this look).
  return names
    .map((f) => ({ f: path.join(dir, f), st: fs.lstatSync(path.join(dir, f), { throwIfNoEntry: false }) }))
    .filter((x) => x.st?.isFile())
    .map((x) => ({ f: x.f, m: x.st!.mtimeMs }))
    .sort((a, b) => a.m - b.m || b.f.localeCompare(a.f))
    .map((x) => x.f)
}

/**
 * `text`: the app's own lines (console lines cleaned, see log-lines.ts; berth.log as it is); `json`: one
 * LogEntry per line (newline-delimited JSON); `raw`: the files' bytes, prompts and run_erl markers included.
 * The files on disk are never rewritten: the raw form stays there for forensics.
 */
export type LogFormat = 'text' | 'json' | 'raw'

export const LOG_CONTENT_TYPES: Record<LogFormat, string> = {
  text: 'text/plain; charset=utf-8',
  json: 'application/x-ndjson; charset=utf-8',
  raw: 'text/plain; charset=utf-8',
}

export interface LogQuery {
  app: string
  source: LogSource
  format: LogFormat
  /** How many lines of the past come first (at most; fewer when the files hold fewer). */
  lines: number
}

const TAIL_READ = 1024 * 1024
/** Enough for run_erl's `\n=====\n===== LOGGING STARTED <time>\n=====\n` with a long custom time format. */
const HEAD_READ = 512

/** Whether a format is the file's lines as they are: raw always, and text of berth.log and access.log, which are clean. */
function verbatim(q: LogQuery): boolean {
  return q.format === 'raw' || (q.format === 'text' && q.source !== 'console')
}

function formatEntry(e: LogEntry, format: LogFormat): string {
  return format === 'json' ? `${JSON.stringify(e)}\n` : `${e.line}\n`
}

interface Window {
  /** Complete lines of the file's last TAIL_READ bytes (a cut first line is dropped), the last one maybe unfinished. */
  lines: string[]
  /** The file's first bytes when the window does not reach them. */
  head: string | null
  mtime: Date
}

function readWindow(file: string): Window {
  const fd = openUnlinked(file)
  if (fd === null) return { lines: [], head: null, mtime: new Date(0) }
  try {
    const st = fs.fstatSync(fd)
    const len = Math.min(st.size, TAIL_READ)
    const buf = Buffer.alloc(len)
    fs.readSync(fd, buf, 0, len, st.size - len)
    const lines = buf.toString('utf8').split('\n')
    if (lines.at(-1) === '') lines.pop()
    let head: string | null = null
    if (len < st.size) {
      lines.shift()
      const h = Buffer.alloc(Math.min(HEAD_READ, st.size))
      fs.readSync(fd, h, 0, h.length, 0)
      head = h.toString('utf8')
    }
    return { lines, head, mtime: st.mtime }
  } finally {
    fs.closeSync(fd)
  }
}

/** The last `lines` lines across the source's files as written, newest last. */
export function tailRaw(dir: string, source: LogSource, lines: number): string[] {
  // slice(-0) would be the whole window: no lines asked for is no lines.
  if (lines <= 0) return []
  const out: string[] = []
  for (const file of logFiles(dir, source).reverse()) {
    out.unshift(...readWindow(file).lines.slice(-(lines - out.length)))
    if (out.length >= lines) break
  }
  return out.slice(-lines)
}

/**
 * The app's last `lines` lines across the source's files, newest last. A console line is stamped with run_erl's
 * latest marker before it (the window's own, else the LOGGING STARTED at the top of its file).
 */
export function tailEntries(dir: string, app: string, source: LogSource, lines: number): LogEntry[] {
  if (lines <= 0) return []
  const out: LogEntry[] = []
  for (const file of logFiles(dir, source).reverse()) {
    const w = readWindow(file)
    const reader = new LineReader(app, source, 'marker', w.mtime, w.head === null ? null : headMarker(w.head))
    const got = w.lines.map((raw) => reader.entry(raw)).filter((e): e is LogEntry => e !== null)
    out.unshift(...got.slice(-(lines - out.length)))
    if (out.length >= lines) break
  }
  return out.slice(-lines)
}

/** How far back bootEntries looks for a boot's mark, in lines. */
const BOOT_SCAN_LINES = 5000

/**
 * The console lines one boot wrote (those after its mark, see log-lines.ts), the last `lines` of them, and how
 * many came before those; null when its mark is not among the last BOOT_SCAN_LINES lines (rotated away, or a
 * node berth did not start), so that a caller can say it shows the plain tail instead.
 */
export function bootEntries(dir: string, app: string, bootId: string, lines: number): { entries: LogEntry[]; skipped: number } | null {
  const all = tailEntries(dir, app, 'console', BOOT_SCAN_LINES)
  let at = all.length - 1
  while (at >= 0 && all[at]!.boot !== bootId) at--
  if (at < 0) return null
  const since = all.slice(at + 1)
  return { entries: since.slice(-lines), skipped: Math.max(0, since.length - lines) }
}

/**
 * What a boot that failed wrote to the console log, for its step output: the lines since its mark, or, when
 * the mark is not found, the plain tail said to be so; '' without a log (run_erl never started).
 */
export function bootLogText(dir: string, app: string, bootId: string | null, lines: number): string {
  try {
    const own = bootId ? bootEntries(dir, app, bootId, lines) : null
    if (own) {
      if (!own.entries.length) return `\n\nthis boot (${bootId}) wrote nothing to the node's console log`
      const left = own.skipped ? `, ${own.skipped} earlier lines left out` : ''
      return `\n\nthis boot's output (boot ${bootId}${left}), last ${own.entries.length} lines of the node's console log:\n${own.entries.map((e) => e.line).join('\n')}`
    }
    const tail = tailEntries(dir, app, 'console', lines).map((e) => e.line)
    // Said, not hidden: without the mark these may be an earlier boot's lines.
    return tail.length ? `\n\nthis boot's mark was not found in the node's console log, so these may include earlier boots' lines; last ${tail.length} lines of the node's console log:\n${tail.join('\n')}` : ''
  } catch {
    return ''
  }
}

/** The last lines of a source in the query's format, as one answer. */
export function readLog(dir: string, q: LogQuery): string {
  if (verbatim(q)) {
    const got = tailRaw(dir, q.source, q.lines)
    return got.length ? `${got.join('\n')}\n` : ''
  }
  return tailEntries(dir, q.app, q.source, q.lines)
    .map((e) => formatEntry(e, q.format))
    .join('')
}

/** Turns the bytes a follower reads into what it sends. `idle` is called after a poll that found nothing new. */
interface Converter {
  chunk(file: string, buf: Buffer, restarted: boolean): Buffer
  idle(): Buffer
}

const EMPTY = Buffer.alloc(0)

/**
 * Lines, stamped with the time they were read. Each file keeps its unfinished last line until the newline
 * comes; a quiet poll (or output moving on to the next file at rotation) lets it out as it is, so that
 * text without a newline is not held back forever.
 */
function entryConverter(q: LogQuery): Converter {
  const reader = new LineReader(q.app, q.source, 'read', new Date())
  const files = new Map<string, { decoder: StringDecoder; pending: string }>()
  let last: string | null = null
  const flush = (name: string | null): string => {
    const f = name === null ? undefined : files.get(name)
    if (!f?.pending) return ''
    const e = reader.entry(f.pending)
    f.pending = ''
    return e ? formatEntry(e, q.format) : ''
  }
  return {
    chunk(file, buf, restarted) {
      let out = last !== file ? flush(last) : ''
      last = file
      let f = files.get(file)
      if (!f || restarted) files.set(file, (f = { decoder: new StringDecoder('utf8'), pending: '' }))
      const parts = (f.pending + f.decoder.write(buf)).split('\n')
      f.pending = parts.pop()!
      for (const raw of parts) {
        const e = reader.entry(raw)
        if (e) out += formatEntry(e, q.format)
      }
      return out ? Buffer.from(out) : EMPTY
    },
    idle() {
      const out = [...files.keys()].map(flush).join('')
      return out ? Buffer.from(out) : EMPTY
    },
  }
}

const rawConverter: Converter = { chunk: (_file, buf) => buf, idle: () => EMPTY }

/**
 * Where a source's files are, for a follower: the directory to read now, and every one it may move to. With
 * the proxy on, the console is the live instance's, and a deploy moves that to the other slot's directory.
 */
export interface LogDirs {
  current(): string
  all: string[]
}

/**
 * The last `q.lines` lines, then what is appended from now on, across rotations and node restarts (the
 * newest file is re-checked on each poll), in the query's format. Pull-based: it only reads when the
 * consumer wants more. Given LogDirs, it goes on in the new directory when current() changes (a proxied
 * deploy switched the live instance), with what the new instance wrote since the follow began: a stream
 * that ended there would have the client reconnect and be sent its `lines` of history again.
 */
export function followLog(dir: string | LogDirs, q: LogQuery, signal: AbortSignal, pollMs = 250): Readable {
  const dirs = typeof dir === 'string' ? { current: () => dir, all: [dir] } : dir
  const head = readLog(dirs.current(), q)
  const stream = poller(dirs, q.source, signal, pollMs, verbatim(q) ? rawConverter : entryConverter(q))
  if (head) stream.unshift(Buffer.from(head))
  return stream
}

function poller(dirs: LogDirs, source: LogSource, signal: AbortSignal, pollMs: number, convert: Converter): Readable {
  const offsets = new Map<string, number>()
  // Every directory's files as they are now: after a switch, only what came later is sent, not the slot's
  // output from the deploys before.
  for (const d of new Set([...dirs.all, dirs.current()])) for (const f of logFiles(d, source)) offsets.set(f, fs.statSync(f).size)
  let dir = dirs.current()
  let timer: NodeJS.Timeout | null = null
  const stream = new Readable({
    read() {
      if (timer) return
      const poll = () => {
        timer = null
        if (signal.aborted) return void stream.push(null)
        let read = false
        let pushed = false
        const send = (out: Buffer) => {
          if (!out.length) return true
          pushed = true
          return stream.push(out)
        }
        // The old directory is read to its end once more, so the old instance's last lines before the switch
        // are not lost; from then on only the new one is followed.
        const next = dirs.current()
        const files = next === dir ? logFiles(dir, source) : [...logFiles(dir, source), ...logFiles(next, source)]
        dir = next
        for (const f of files) {
          const size = fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0
          let from = offsets.get(f) ?? 0
          const restarted = size < from // truncated or reused by rotation
          if (restarted) from = 0
          if (size > from) {
            const len = Math.min(size - from, 256 * 1024)
            const buf = Buffer.alloc(len)
            const fd = openUnlinked(f)
            if (fd === null) {
              offsets.set(f, size)
              continue
            }
            try {
              fs.readSync(fd, buf, 0, len, from)
            } finally {
              fs.closeSync(fd)
            }
            offsets.set(f, from + len)
            read = true
            if (!send(convert.chunk(f, buf, restarted))) return
          } else offsets.set(f, size)
        }
        if (!read && !send(convert.idle())) return
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

// What one raw log line means: a console line as the terminal showed it, without IEx/Eshell prompts, escapes
// or carriage returns; run_erl's own `=====` markers read as timestamps; berth.log's leading ISO time; the
// `at` of an edge access line.

export type LogSource = 'console' | 'berth' | 'access'

/**
 * How `at` of an entry was found, from most to least precise:
 * `line`   the line carries its own time (berth.log, access.log);
 * `read`   berth read the line while following, within a poll interval (0.25 s) of its being written;
 * `marker` run_erl's latest timestamp before the line (at boot, at rotation, and before output that follows
 *          a minute of silence): the line was written at or after `at`;
 * `file`   no marker was found: the file's modification time, so the line was written at or before `at`.
 */
export type LogClock = 'line' | 'read' | 'marker' | 'file'

export interface LogEntry {
  at: string
  source: LogSource
  app: string
  line: string
  clock: LogClock
  /**
   * Only on the entry of berth's boot mark, the line berth has the node's start command print before the
   * node itself: the boot's id. Every console entry after it, up to the next one, is that boot's output.
   */
  boot?: string
}

/** A node name as prompts show it: `hello@vm`, `relx_hello@host.example`. */
const NODE = String.raw`[\w.+-]+@[\w.+-]+`
/** IEx `iex(hello@vm)3`, `...(hello@vm)3`, `iex(3)`, `...(3)`; Eshell `(hello@vm)3`; then `>`. */
const PROMPT = String.raw`(?:(?:iex|\.\.\.)?\(${NODE}\)\d+|(?:iex|\.\.\.)\(\d+\))>`
const LEADING_PROMPTS = new RegExp(`^(?:${PROMPT} )+`)
// A prompt that ends a line is the shell waiting after output that had no newline ("text" + prompt).
const TRAILING_PROMPT = new RegExp(`${PROMPT}$`)

/**
 * The text a terminal would show for one line of console bytes: `\r`, backspace and cursor moves are applied
 * (to_erl's ^L is echoed and rubbed out with backspaces; newer shells redraw with `\r` and ESC[K), colours
 * and other escape sequences dropped, and other control characters (C0, DEL, C1) removed.
 */
export function renderLine(raw: string): string {
  const cells: string[] = []
  let col = 0
  const chars = Array.from(raw)
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!
    if (c === '\x1b') {
      const kind = chars[i + 1]
      if (kind === '[') {
        let j = i + 2
        while (j < chars.length && /[0-?]/.test(chars[j]!)) j++
        while (j < chars.length && /[ -/]/.test(chars[j]!)) j++
        const param = chars.slice(i + 2, j).join('')
        const n = Number.parseInt(param, 10)
        switch (chars[j]) {
          case 'C':
            col += n || 1
            break
          case 'D':
            col = Math.max(0, col - (n || 1))
            break
          case 'G':
            col = Math.max(0, (n || 1) - 1)
            break
          case 'K':
            if (!param || n === 0) cells.length = Math.min(cells.length, col)
            else if (n === 1) cells.fill(' ', 0, Math.min(cells.length, col + 1))
            else cells.length = 0
            break
        }
        i = j
      } else if (kind === ']') {
        // OSC (window titles): up to BEL or ESC \.
        let j = i + 2
        while (j < chars.length && chars[j] !== '\x07' && !(chars[j] === '\x1b' && chars[j + 1] === '\\')) j++
        i = chars[j] === '\x1b' ? j + 1 : j
      } else {
        i++
      }
      continue
    }
    if (c === '\r') col = 0
    else if (c === '\b') col = Math.max(0, col - 1)
    else if (c === '\t' || (c >= ' ' && !(c >= '\x7f' && c <= '\x9f'))) {
      while (cells.length < col) cells.push(' ')
      cells[col++] = c
    }
  }
  return cells.join('').trimEnd()
}

/** A console line as the app wrote it: rendered, prompts taken off. Empty when nothing of the app's is left. */
export function cleanConsoleLine(raw: string): string {
  return renderLine(raw).replace(LEADING_PROMPTS, '').replace(TRAILING_PROMPT, '').trimEnd()
}

/**
 * run_erl's own lines: `=====`, `===== LOGGING STARTED <time>`, `===== ALIVE <time>` and `===== <time>`. They
 * carry no `\r` (they never pass the pty, whose output ends every line with `\r\n`), which tells them from an
 * app line that starts with `=====`. Answers undefined for any other line, null for a marker without a time
 * Date.parse can read (a local format with a zone name it does not know), else the time.
 */
export function consoleMarker(raw: string): Date | null | undefined {
  if (raw.includes('\r') || !raw.startsWith('=====')) return undefined
  const t = Date.parse(raw.replace(/^=====\s*(LOGGING STARTED |ALIVE )?/, ''))
  return Number.isNaN(t) ? null : new Date(t)
}

/** berth's mark of a boot in the console log: `===== berth boot ID TIME RELEASE`, printed by the node's start command. */
const BOOT_MARK = /^===== berth boot ([0-9a-f]{8,32}) (\d{4}-\d\d-\d\dT[\d:.]+Z) (\S+)$/

export interface BootMark {
  id: string
  at: Date
  release: string
}

/**
 * The shell that starts a node under run_erl, with the boot's mark printed first: it goes through the pty
 * into whichever erlang.log.N run_erl writes, right before the node's own output. run_erl's `LOGGING STARTED`
 * header is no boot mark: it comes at every rotation too, and not when a file is reused after a quick restart.
 */
export function markedStartCommand(mark: BootMark, exec: string): string {
  return `printf '%s\\n' '===== berth boot ${mark.id} ${mark.at.toISOString()} ${mark.release}'; ${exec}`
}

/** A console line (cleaned) that is a boot mark, or null. */
export function bootMark(line: string): BootMark | null {
  const m = BOOT_MARK.exec(line)
  return m ? { id: m[1]!, at: new Date(m[2]!), release: m[3]! } : null
}

const BERTH_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)$/
/** The edge writes `at` fourth (edge/access-log.ts), so a short look finds it without parsing the line. */
const ACCESS_AT = /"at":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"/

/**
 * Turns the lines of one source into entries, in file order. `clock` decides console times: `marker` keeps
 * the latest run_erl time seen (start it with `seed`), `read` stamps each line with now.
 */
export class LineReader {
  private marker: Date | null

  constructor(
    private readonly app: string,
    private readonly source: LogSource,
    private readonly clock: 'marker' | 'read',
    private readonly fallback: Date,
    seed: Date | null = null,
  ) {
    this.marker = seed
  }

  /** The entry for a raw line, or null when it is not one of the app's lines (markers, prompts, blank). */
  entry(raw: string): LogEntry | null {
    const { app, source } = this
    if (source === 'berth') {
      const m = BERTH_LINE.exec(raw)
      if (m) return { at: m[1]!, source, app, line: m[2]!, clock: 'line' }
      return raw ? this.stamped(raw) : null
    }
    if (source === 'access') {
      // The whole JSON line is the entry's line: a reader parses it as it is in the file.
      const m = ACCESS_AT.exec(raw.slice(0, 200))
      if (m) return { at: m[1]!, source, app, line: raw, clock: 'line' }
      return raw ? this.stamped(raw) : null
    }
    const marker = consoleMarker(raw)
    if (marker !== undefined) {
      if (marker) this.marker = marker
      return null
    }
    const line = cleanConsoleLine(raw)
    if (!line) return null
    const mark = bootMark(line)
    if (mark) {
      // The boot's own time dates the lines after it better than run_erl's last stamp before it.
      if (this.clock === 'marker') this.marker = mark.at
      // Not the `=====` line itself: text output leaves run_erl-style markers out, and this one reads as a separator.
      return { at: mark.at.toISOString(), source, app, line: `--- boot ${mark.id} of ${mark.release} at ${mark.at.toISOString()} ---`, clock: 'line', boot: mark.id }
    }
    return this.stamped(line)
  }

  private stamped(line: string): LogEntry {
    const { app, source } = this
    if (this.clock === 'read') return { at: new Date().toISOString(), source, app, line, clock: 'read' }
    if (this.marker) return { at: this.marker.toISOString(), source, app, line, clock: 'marker' }
    return { at: this.fallback.toISOString(), source, app, line, clock: 'file' }
  }
}

/** The time of the `LOGGING STARTED` marker that run_erl writes first in every file it opens. */
export function headMarker(head: string): Date | null {
  for (const raw of head.split('\n').slice(0, 4)) {
    const m = consoleMarker(raw)
    if (m) return m
  }
  return null
}

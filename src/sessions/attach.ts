// Attaching to the node's own console (the IEx that runs under run_erl), for any number of viewers at once.
// run_erl serves exactly one to_erl: a second one exits with "Another to_erl process already attached to
// pipe". So berth runs ONE to_erl per app in a pty (a ConsoleHub) and fans its output out to every viewer;
// input from any viewer goes to the console. The hub ends when its last viewer leaves.
//
// Keys that would act on the node itself are stripped: Ctrl+C (run_erl turns it into SIGINT: the BREAK menu,
// where "a" halts the node) and Ctrl+G (the JCL menu, where "q" halts it). Ctrl+D detaches the viewer that
// typed it; it is not passed on, since to_erl would detach every viewer with it.

import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import type { Paths } from '../paths.js'
import { sleep } from '../process/proc.js'
import type { Supervisor } from '../supervision/supervisor.js'
import { checkSize, formatIdle, IdleTimer, LOW_WATER_MARK, HIGH_WATER_MARK, TerminalSession, type TerminalSink } from './terminal.js'

const CTRL_C = 0x03
const CTRL_D = 0x04
const CTRL_G = 0x07
/** Longest current-line tail replayed to a viewer who joins an existing console (so they see the prompt). */
const TAIL_MAX = 2048
/** to_erl opens its session by sending ^L; run_erl of OTP 25 passes it to the shell, which echoes "^L". */
const FORM_FEED_ECHO = '^L'
/** How long after spawning to_erl the ^L echo is waited for. */
const FORM_FEED_WINDOW_MS = 3000
/** Input held while the ^L is rubbed out, beyond which viewers are paused (their sockets stop being read). */
const HELD_MAX = 64 * 1024

export function banner(app: string): string {
  return `[berth] attached to the console of ${app} (node keeps running when you leave). Ctrl+C and Ctrl+G are blocked here; press Ctrl+D or close the window to detach.\r\n`
}

const BLOCKED_NOTICE = '\r\n[berth] Ctrl+C and Ctrl+G are blocked in attach mode: they would interrupt or halt the node itself. Press Ctrl+D or close the window to detach.\r\n'

/** Where the console's pipe is: the highest-numbered erlang.pipe.N, as to_erl picks it. Null when there is none. */
export function consolePipe(pipeDir: string): string | null {
  let best: { n: number; name: string } | null = null
  for (const f of fs.readdirSync(pipeDir, { withFileTypes: false }).map(String)) {
    const m = /^erlang\.pipe\.(\d+)\.r$/.exec(f)
    if (m && (!best || Number(m[1]) > best.n)) best = { n: Number(m[1]), name: path.join(pipeDir, f.slice(0, -2)) }
  }
  return best?.name ?? null
}

/**
 * True when some to_erl (ours, or an operator's on the host) reads the console: the same test to_erl makes,
 * opening the read FIFO for writing without blocking only succeeds when a reader has it open.
 */
export function consoleTaken(pipe: string): boolean {
  try {
    fs.closeSync(fs.openSync(`${pipe}.r`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK))
    return true
  } catch {
    return false
  }
}

export interface ConsoleHubOptions {
  app: string
  toErl: string
  /** Its argv; default: the pipe directory (with isolation, the launcher's argv that ends with to_erl and it). */
  toErlArgs?: string[]
  pipeDir: string
  cwd: string
  env: NodeJS.ProcessEnv
  cols: number
  rows: number
  log: Logger
  hangupGraceMs?: number
}

export class ConsoleHub {
  readonly app: string
  private readonly term: TerminalSession
  private readonly viewers = new Set<AttachViewer>()
  private tail: Buffer = Buffer.alloc(0)
  private formFeed: 'watching' | 'rubbing' | 'done' = 'watching'
  private formFeedSeen = ''
  private formFeedDone!: () => void
  private readonly formFeedSettled = new Promise<void>((resolve) => (this.formFeedDone = resolve))
  /** Viewer input that arrived before the ^L echo was rubbed out (see input). */
  private held: Buffer[] = []
  private heldBytes = 0
  private heldRefused = false
  private closing: Promise<void> | null = null
  private detaching = false
  private over = false

  constructor(opts: ConsoleHubOptions) {
    this.app = opts.app
    const sink: TerminalSink = {
      write: (data) => this.broadcast(data),
      // Never pause the shared console: to_erl would stop reading, and run_erl, which buffers for it without
      // limit, would grow in the node's own process. A slow viewer skips output instead (see AttachViewer).
      bufferedAmount: () => 0,
      exit: (code, reason) => this.ended(code, reason),
      // Every viewer whose input was refused paused its client: all of them may send again.
      inputDrained: () => {
        for (const v of this.viewers) v.inputDrained()
      },
    }
    this.term = new TerminalSession({ file: opts.toErl, args: opts.toErlArgs ?? [`${opts.pipeDir}/`], cwd: opts.cwd, env: opts.env, cols: opts.cols, rows: opts.rows, sink, idleMs: 0, hangupGraceMs: opts.hangupGraceMs })
    setTimeout(() => this.settleFormFeed(), FORM_FEED_WINDOW_MS).unref()
    opts.log.info({ app: opts.app, pid: this.term.pid }, 'attached to node console')
  }

  get pid(): number {
    return this.term.pid
  }

  get alive(): boolean {
    return !this.over && !this.closing
  }

  get size(): number {
    return this.viewers.size
  }

  join(viewer: AttachViewer, first: boolean): void {
    this.viewers.add(viewer)
    // A late joiner sees the line the console is on (usually the prompt) rather than a blank screen.
    if (!first && this.tail.length > 0) viewer.deliver(Buffer.concat([Buffer.from('\r\n'), this.tail]))
  }

  /** Removes a viewer; the last one out closes the hub. Resolves when that close is complete. */
  async leave(viewer: AttachViewer): Promise<void> {
    this.viewers.delete(viewer)
    if (this.viewers.size === 0) await this.close('detached')
  }

  /**
   * False when the console has more unread input than its limit (see TerminalSession.input). Input typed
   * before to_erl's ^L echo is rubbed out is held until then: sent at once, it would interleave with the ^L
   * and the rub-out, which then deletes one of the viewer's keys instead (a viewer typing right after the
   * banner lost characters under load). The hold lasts at most FORM_FEED_WINDOW_MS.
   */
  input(data: Buffer): boolean {
    if (this.formFeed !== 'done') {
      this.held.push(Buffer.from(data))
      this.heldBytes += data.length
      if (this.heldBytes > HELD_MAX) this.heldRefused = true
      return !this.heldRefused
    }
    return this.term.input(data)
  }

  resize(cols: number, rows: number): void {
    // Last writer wins: to_erl passes its size on to run_erl, so the node's console takes this size.
    this.term.resize(cols, rows)
  }

  close(reason: string): Promise<void> {
    if (this.closing) return this.closing
    this.closing = (async () => {
      if (!this.over) {
        // Leave the console's input line clean for the next one to attach (see removeFormFeed).
        await Promise.race([this.formFeedSettled, this.term.ended, sleep(FORM_FEED_WINDOW_MS)])
        // ^D is to_erl's own detach: it restores its terminal and exits 0. The hangup is the fallback.
        this.detaching = true
        this.term.inject(Buffer.from([CTRL_D]))
        await Promise.race([this.term.ended, sleep(500)])
      }
      await this.term.close(reason)
    })()
    return this.closing
  }

  private broadcast(data: Buffer): void {
    this.removeFormFeed(data)
    const nl = data.lastIndexOf(0x0a)
    this.tail = nl >= 0 ? data.subarray(nl + 1) : Buffer.concat([this.tail, data])
    if (this.tail.length > TAIL_MAX) this.tail = this.tail.subarray(this.tail.length - TAIL_MAX)
    this.tail = Buffer.from(this.tail) // do not pin the whole read buffer
    for (const v of this.viewers) v.deliver(data)
  }

  /**
   * to_erl starts its session with ^L, which the node's line editor (OTP 25) inserts into the input line: the
   * next command would then fail with "unexpected token: form feed". When the echo shows up, rub it out, and
   * let the rub-out reach the node before detaching (to_erl drops a read that contains its ^D).
   */
  private removeFormFeed(data: Buffer): void {
    if (this.formFeed === 'done') return
    this.formFeedSeen = (this.formFeedSeen + data.toString('latin1')).slice(-4096)
    if (this.formFeed === 'watching') {
      const at = this.formFeedSeen.indexOf(FORM_FEED_ECHO)
      if (at < 0 || this.detaching) return
      this.formFeed = 'rubbing'
      this.formFeedSeen = this.formFeedSeen.slice(at + FORM_FEED_ECHO.length)
      this.term.inject(Buffer.from([0x7f]))
    }
    if (this.formFeedSeen.includes('\b \b')) this.settleFormFeed()
  }

  private settleFormFeed(): void {
    if (this.formFeed === 'done') return
    this.formFeed = 'done'
    this.formFeedSeen = ''
    this.formFeedDone()
    const held = Buffer.concat(this.held)
    const refused = this.heldRefused
    this.held = []
    this.heldBytes = 0
    this.heldRefused = false
    if (this.over || this.detaching || held.length === 0) return
    // Viewers paused by the hold may read again once the pty took it (at once, or at its inputDrained).
    if (this.term.input(held) && refused) for (const v of this.viewers) v.inputDrained()
  }

  private ended(code: number | null, reason: string): void {
    this.over = true
    for (const v of [...this.viewers]) v.consoleEnded(code, reason === 'exited' ? 'console closed' : reason)
    this.viewers.clear()
  }
}

export interface AttachViewerOptions {
  hub: ConsoleHub
  sink: TerminalSink
  idleMs: number
  highWaterMark?: number
  lowWaterMark?: number
}

/** One viewer of a shared console: its own sink, idle timer, counters and input filter. */
export class AttachViewer {
  readonly startedAt = new Date()
  endedAt: Date | null = null
  exitCode: number | null = null
  endReason: string | null = null
  bytesIn = 0
  bytesOut = 0
  /** Console output this viewer missed because its connection was too slow. */
  skippedBytes = 0
  readonly ended: Promise<void>
  private readonly hub: ConsoleHub
  private readonly sink: TerminalSink
  private readonly idle: IdleTimer
  private readonly high: number
  private readonly low: number
  /** Set when the sink went over the high-water mark: output is skipped until it is under the low one. */
  private lagging = false
  private gap = 0
  private lastBlockedNotice = 0
  private closing: Promise<void> | null = null
  private resolveEnded!: () => void

  constructor(opts: AttachViewerOptions) {
    this.hub = opts.hub
    this.sink = opts.sink
    this.high = opts.highWaterMark ?? HIGH_WATER_MARK
    this.low = opts.lowWaterMark ?? LOW_WATER_MARK
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve))
    this.idle = new IdleTimer(opts.idleMs, () => {
      this.write(Buffer.from(`\r\n[berth] session idle for ${formatIdle(opts.idleMs)}, closing\r\n`))
      void this.close('idle')
    })
  }

  /** Joins the hub after writing the banner; `first` when this viewer's join started the hub. */
  start(app: string, first: boolean): void {
    this.write(Buffer.from(banner(app)))
    this.hub.join(this, first)
  }

  /** Console output, from the hub. A viewer that cannot keep up skips output rather than stall the others. */
  deliver(data: Buffer): void {
    if (this.endedAt) return
    if (this.lagging && !this.catchUp()) {
      this.gap += data.length
      this.skippedBytes += data.length
      return
    }
    this.write(data)
    if (this.sink.bufferedAmount() > this.high) this.lagging = true
  }

  input(data: Buffer | string): boolean {
    if (this.closing || this.endedAt) return true
    const buf = typeof data === 'string' ? Buffer.from(data) : data
    this.bytesIn += buf.length
    this.idle.touch()
    const eot = buf.indexOf(CTRL_D)
    const keep = eot >= 0 ? buf.subarray(0, eot) : buf
    const clean = Buffer.from(keep.filter((b) => b !== CTRL_C && b !== CTRL_G))
    if (clean.length !== keep.length && Date.now() - this.lastBlockedNotice > 1000) {
      this.lastBlockedNotice = Date.now()
      this.write(Buffer.from(BLOCKED_NOTICE))
    }
    const more = clean.length > 0 ? this.hub.input(clean) : true
    if (eot >= 0) void this.close('detached', 0)
    return more
  }

  inputDrained(): void {
    if (!this.endedAt) this.sink.inputDrained?.()
  }

  resize(cols: number, rows: number): void {
    checkSize(cols, rows)
    if (!this.closing && !this.endedAt) this.hub.resize(cols, rows)
  }

  drained(): void {
    if (this.lagging) this.catchUp()
  }

  /** Leaves the console (closing the hub's to_erl if this was the last viewer); the node keeps running. */
  close(reason = 'closed', code: number | null = null): Promise<void> {
    if (this.closing) return this.closing
    if (this.endedAt) return Promise.resolve()
    this.closing = (async () => {
      this.idle.stop()
      await this.hub.leave(this)
      this.finish(code, reason)
    })()
    return this.closing
  }

  /** The console went away under the viewer (node stopped or restarted, or to_erl refused to attach). */
  consoleEnded(code: number | null, reason: string): void {
    this.finish(code, reason)
  }

  private catchUp(): boolean {
    if (this.sink.bufferedAmount() >= this.low) return false
    const skipped = this.gap
    this.lagging = false
    this.gap = 0
    if (skipped > 0) this.write(Buffer.from(`\r\n[berth] ${skipped} bytes of console output skipped: this connection is too slow (the node's log has everything)\r\n`))
    return true
  }

  private write(data: Buffer): void {
    this.bytesOut += data.length
    try {
      this.sink.write(data)
    } catch {
      // A sink that throws is gone for good; the console carries on for the others.
      void this.close('client failed')
    }
  }

  private finish(code: number | null, reason: string): void {
    if (this.endedAt) return
    this.endedAt = new Date()
    this.exitCode = code
    this.endReason = reason
    this.idle.stop()
    this.resolveEnded()
    try {
      this.sink.exit(code, reason)
    } catch {
      // the adapter's problem
    }
  }
}

/**
 * The hub for the console of `app`'s node, running to_erl from the node's own release (`release`). Refuses
 * a node without a console (not started by this berth's supervisor) and one someone attached to outside berth.
 */
export function openConsoleHub(
  deps: { paths: Paths; supervisor: Pick<Supervisor, 'pipeDir' | 'releaseDir' | 'nodeEnv' | 'launch'>; log: Logger; hangupGraceMs?: number },
  app: string,
  release: string,
  size: { cols: number; rows: number },
): ConsoleHub {
  const { paths, supervisor, log, hangupGraceMs } = deps
  const pipeDir = supervisor.pipeDir(app)
  let pipe: string | null = null
  try {
    pipe = consolePipe(pipeDir)
  } catch {
    // no pipe directory: the node was not started by this berth's supervisor
  }
  if (!pipe) throw problem('NODE_NOT_RUNNING', `The node of "${app}" has no console to attach to; restart it with POST /v1/apps/${app}/restart.`)
  if (consoleTaken(pipe)) {
    throw problem('CONSOLE_BUSY', `Someone attached to the console of "${app}" outside berth (to_erl on the host); it serves one reader at a time, so detach that one (Ctrl+D) first.`)
  }
  const releaseDir = supervisor.releaseDir(app, release)
  const erts = fs.readdirSync(releaseDir).find((f) => f.startsWith('erts-'))
  const toErl = erts ? path.join(releaseDir, erts, 'bin', 'to_erl') : 'to_erl'
  // As the app: the pipe is its node's, and to_erl is a process of the app like any other.
  const l = supervisor.launch(app, toErl, [`${pipeDir}/`])
  return new ConsoleHub({ app, toErl: l.file, toErlArgs: l.args, pipeDir, cwd: paths.shared(app), env: supervisor.nodeEnv(app), cols: size.cols, rows: size.rows, log, hangupGraceMs })
}

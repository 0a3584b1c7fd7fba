// One process in a pseudo-terminal, owned from spawn to reaping: output to a sink with flow control (a slow
// websocket pauses the pty, so the program blocks instead of berth buffering), input, resize, idle timeout,
// and a close that hangs up the whole process tree and releases the pty's file descriptor.

import { tracingChannel } from 'node:diagnostics_channel'
import pty from 'node-pty'
import { problem, type BerthError } from '../errors.js'
import { ptyInput, type PtyInput } from './pty-input.js'
import { descendants, isSameProcess, procInfo, signal, signalGroup, sleep, type ProcInfo } from '../process/proc.js'

/** Where a terminal's output goes: the websocket adapter (and the recorder behind it) implement this. */
export interface TerminalSink {
  write(data: Buffer): void
  /** Bytes written but not yet sent on (e.g. WebSocket#bufferedAmount): drives pause/resume of the pty. */
  bufferedAmount(): number
  /**
   * Called once, when the session is over; `code` is null when the process was ended by a signal. `ended` is
   * given when the session was ended because its caller lost the right to it (token revoked or expired).
   */
  exit(code: number | null, reason: string, ended?: BerthError): void
  /** The pty took the input that input() answered false for: read from the client again. */
  inputDrained?(): void
}

export interface TerminalOptions {
  file: string
  args: string[]
  cwd: string
  env: NodeJS.ProcessEnv
  cols: number
  rows: number
  sink: TerminalSink
  /** Close after this long without input; 0 disables. */
  idleMs: number
  /** Between SIGHUP and SIGKILL to the session's processes on close. */
  hangupGraceMs?: number
  /** Pause the pty when the sink holds more than this... */
  highWaterMark?: number
  /** ...and resume once it holds less than this. */
  lowWaterMark?: number
}

export const HIGH_WATER_MARK = 1024 * 1024
export const LOW_WATER_MARK = 256 * 1024
export const MAX_DIMENSION = 1000
/** While paused, how often the sink is asked whether it drained (in case the adapter never calls drained()). */
const DRAIN_POLL_MS = 20

/**
 * Each output chunk's way through a session (counting, the sink's write, flow control), published for
 * bench/terminal.ts and any tracer: start and end events carry { session, bytes }. Nothing is published, and
 * nothing is allocated, while nobody subscribes.
 */
export const outputTrace = tracingChannel<unknown, { session: TerminalSession; bytes: number }>('berth:terminal:output')
/** After SIGKILL, how long to wait for node-pty to report the exit before giving up on it. */
const REAP_TIMEOUT_MS = 2000
/** How often the process tree is noted while the session runs (a /proc walk; cheap at this rate). */
const TREE_SNAPSHOT_MS = 5000

export function checkSize(cols: number, rows: number): void {
  for (const [name, v] of [['cols', cols], ['rows', rows]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_DIMENSION) {
      throw problem('VALIDATION_FAILED', `Terminal ${name} must be a whole number between 1 and ${MAX_DIMENSION}; got ${String(v).slice(0, 20)}.`)
    }
  }
}

/** "45 s", "1 min", "30 min": how long a session was idle, for the notice the user sees. */
export function formatIdle(ms: number): string {
  return ms < 60_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`
}

/** Calls onIdle once after ms without a touch(). One timer, re-armed with refresh(): cheap per keystroke. */
export class IdleTimer {
  private timer: NodeJS.Timeout | null = null

  constructor(ms: number, onIdle: () => void) {
    if (ms > 0) {
      this.timer = setTimeout(onIdle, ms)
      this.timer.unref()
    }
  }

  touch(): void {
    this.timer?.refresh()
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }
}

/** node-pty's UnixTerminal has destroy() (closes the master fd); its typings only declare kill(). */
type Pty = pty.IPty & { destroy?: () => void }

export class TerminalSession {
  readonly pid: number
  readonly startedAt = new Date()
  endedAt: Date | null = null
  exitCode: number | null = null
  /** Why the session ended: 'exited' when the process ended on its own, else the reason given to close(). */
  endReason: string | null = null
  bytesIn = 0
  bytesOut = 0
  /** How often output was paused for a slow sink (for metrics and tests). */
  pauses = 0
  /** Resolves once the process is gone, its pty closed and sink.exit called. */
  readonly ended: Promise<void>

  private readonly pty: Pty
  /** Input written on receipt (see pty-input.ts); null where node-pty's internals differ, and it writes it. */
  private readonly in: PtyInput | null
  private readonly sink: TerminalSink
  private readonly high: number
  private readonly low: number
  private readonly graceMs: number
  private readonly idle: IdleTimer
  private isPaused = false
  private drainPoll: NodeJS.Timeout | null = null
  private closing: Promise<void> | null = null
  private exited = false
  private onExited: () => void = () => {}
  private readonly processExited: Promise<void>
  private resolveEnded!: () => void
  /** The session's process tree as last seen: helpers like erl_child_setup leave the pty's process group. */
  private tree: ProcInfo[] = []
  private readonly treeTimer: NodeJS.Timeout

  constructor(opts: TerminalOptions) {
    checkSize(opts.cols, opts.rows)
    this.sink = opts.sink
    this.high = opts.highWaterMark ?? HIGH_WATER_MARK
    this.low = opts.lowWaterMark ?? LOW_WATER_MARK
    this.graceMs = opts.hangupGraceMs ?? 2000
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve))
    this.processExited = new Promise((resolve) => (this.onExited = resolve))
    // encoding null: raw bytes. Decoding here would mangle UTF-8 split across reads and binary output.
    this.pty = pty.spawn(opts.file, opts.args, { name: 'xterm-256color', cols: opts.cols, rows: opts.rows, cwd: opts.cwd, env: opts.env, encoding: null }) as Pty
    this.pid = this.pty.pid
    this.in = ptyInput(this.pty, () => this.sink.inputDrained?.())
    this.pty.onData((chunk) => (outputTrace.hasSubscribers ? outputTrace.traceSync(() => this.output(chunk as unknown as Buffer), { session: this, bytes: chunk.length }) : this.output(chunk as unknown as Buffer)))
    this.pty.onExit(({ exitCode, signal: sig }) => {
      this.exited = true
      this.exitCode = sig ? null : exitCode
      this.onExited()
      // Ended on its own (the user quit the shell): sweep helpers it may have left, then report.
      if (!this.closing) this.finish('exited')
    })
    this.treeTimer = setInterval(() => this.snapshotTree(), TREE_SNAPSHOT_MS)
    this.treeTimer.unref()
    this.idle = new IdleTimer(opts.idleMs, () => {
      this.notice(`session idle for ${formatIdle(opts.idleMs)}, closing`)
      void this.close('idle')
    })
  }

  get paused(): boolean {
    return this.isPaused
  }

  /** False when the input the program has not read yet is over its limit: stop reading until sink.inputDrained(). */
  input(data: Buffer | string): boolean {
    if (this.closing || this.exited) return true
    this.bytesIn += typeof data === 'string' ? Buffer.byteLength(data) : data.length
    this.idle.touch()
    return this.write(data)
  }

  /** Input that is not the user's (e.g. berth tidying a console line): no idle reset, not counted. */
  inject(data: Buffer | string): void {
    if (!this.closing && !this.exited) this.write(data)
  }

  private write(data: Buffer | string): boolean {
    if (this.in) return this.in.write(data)
    // node-pty queues without a limit and says nothing; the fallback has no backpressure.
    this.pty.write(data)
    return true
  }

  resize(cols: number, rows: number): void {
    checkSize(cols, rows)
    if (this.closing || this.exited) return
    try {
      this.pty.resize(cols, rows)
    } catch {
      // the pty closed in between: the exit is on its way
    }
  }

  /** A line from berth itself, shown in the terminal between the program's output. */
  notice(text: string): void {
    if (this.endedAt) return
    const data = Buffer.from(`\r\n[berth] ${text}\r\n`)
    this.bytesOut += data.length
    this.send(data)
  }

  /** A sink that throws is gone for good: end the session rather than let the error escape into node-pty. */
  private send(data: Buffer): boolean {
    try {
      this.sink.write(data)
      return true
    } catch {
      void this.close('client failed')
      return false
    }
  }

  /** The sink's buffer went down (websocket 'drain'): resume output once it is below the low-water mark. */
  drained(): void {
    if (!this.isPaused || this.sink.bufferedAmount() >= this.low) return
    this.isPaused = false
    if (this.drainPoll) clearInterval(this.drainPoll)
    this.drainPoll = null
    if (!this.exited) this.pty.resume()
  }

  /**
   * Ends the session: SIGHUP to the pty's process group (what a terminal hangup sends), SIGKILL to the group
   * and every process of the tree after the grace period, then closes the pty. Idempotent.
   */
  close(reason = 'closed'): Promise<void> {
    if (this.closing) return this.closing
    if (this.endedAt) return Promise.resolve()
    this.endReason = reason
    this.closing = (async () => {
      this.idle.stop()
      this.snapshotTree()
      // A paused pty never reads the EIO that tells node-pty the process is gone.
      if (this.isPaused) this.drainedNow()
      if (!this.exited) {
        signalGroup(this.pid, 'SIGHUP')
        await Promise.race([this.processExited, sleep(this.graceMs)])
      }
      if (!this.exited) {
        this.snapshotTree()
        signalGroup(this.pid, 'SIGKILL')
        signal(this.pid, 'SIGKILL')
        await Promise.race([this.processExited, sleep(REAP_TIMEOUT_MS)])
      }
      this.finish(reason)
    })()
    return this.closing
  }

  private output(chunk: Buffer): void {
    if (this.endedAt) return
    this.bytesOut += chunk.length
    if (!this.send(chunk)) return
    if (!this.isPaused && !this.closing && this.sink.bufferedAmount() > this.high) {
      this.isPaused = true
      this.pauses++
      this.pty.pause()
      this.drainPoll = setInterval(() => this.drained(), DRAIN_POLL_MS)
    }
  }

  private drainedNow(): void {
    this.isPaused = false
    if (this.drainPoll) clearInterval(this.drainPoll)
    this.drainPoll = null
    this.pty.resume()
  }

  /** Remembers the tree while the leader lives: once it is gone, orphans are re-parented and unfindable. */
  private snapshotTree(): void {
    if (this.exited) return
    const self = procInfo(this.pid)
    const now = [...(self ? [self] : []), ...descendants(this.pid)]
    // Keep what still runs (it may have left the tree by now), forget what ended, add what is new.
    const kept = this.tree.filter((t) => isSameProcess(t.pid, t.startTicks) && !now.some((p) => p.pid === t.pid))
    this.tree = [...kept, ...now]
  }

  private finish(reason: string): void {
    if (this.endedAt) return
    this.endedAt = new Date()
    this.endReason ??= reason
    this.idle.stop()
    clearInterval(this.treeTimer)
    if (this.drainPoll) clearInterval(this.drainPoll)
    this.drainPoll = null
    // Whatever is left of the session (its group, helpers that moved to their own session) goes now.
    signalGroup(this.pid, 'SIGKILL')
    for (const p of this.tree) if (p.pid !== this.pid && isSameProcess(p.pid, p.startTicks)) signal(p.pid, 'SIGKILL')
    this.in?.close()
    try {
      this.pty.destroy?.()
    } catch {
      // already closed
    }
    this.resolveEnded()
    try {
      this.sink.exit(this.exitCode, this.endReason)
    } catch {
      // the adapter's problem; the session is over either way
    }
  }
}

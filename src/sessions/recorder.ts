// Writes one session's terminal output as an asciicast v2 file (https://docs.asciinema.org/manual/asciicast/v2/):
// a JSON header line, then one JSON array per output chunk or resize. Memory stays bounded whatever the
// output rate: a slow disk costs a gap in the recording (marked), never an unbounded write buffer. Chunks are
// only queued on the terminal's output path and turned into lines in batches, off the echo's way.
//
// Input is deliberately NOT recorded: an operator may type a password or a token at a prompt that does not
// echo it, and keystroke timing leaks too. What the program echoes back is output, and is recorded.

import fs from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from 'pino'

export interface RecorderOptions {
  file: string
  cols: number
  rows: number
  title: string
  /** Stop recording (with a marker) once the file reaches this size. */
  maxBytes?: number
  /** Skip output (with a marker) while this much is waiting to be written to disk. */
  maxBuffered?: number
  log?: Logger
}

export const RECORDING_MAX_BYTES = 50 * 1024 * 1024
export const RECORDING_MAX_BUFFERED = 8 * 1024 * 1024
/** Room kept under maxBytes for the final marker, so the cap is not overshot by it. */
const MARKER_ROOM = 256
/** How long output waits to be written with what follows it, and how much makes it go at once. */
const BATCH_MS = 20
const BATCH_BYTES = 64 * 1024

export class Recorder {
  readonly file: string
  /** Output bytes skipped because the disk fell behind (each gap is marked in the recording). */
  skippedBytes = 0
  truncated = false
  private readonly stream: fs.WriteStream
  private readonly decoder = new StringDecoder('utf8')
  private readonly t0 = performance.now()
  private readonly maxBytes: number
  private readonly maxBuffered: number
  private readonly log: Logger | undefined
  private written = 0
  private skipping = 0
  private failed = false
  private closed: Promise<void> | null = null
  /** Output chunks and when they came, not yet turned into lines. */
  private queue: { time: number; data: Buffer }[] = []
  private queued = 0
  private timer: NodeJS.Timeout | null = null
  private immediate: NodeJS.Immediate | null = null

  /** Creates the file (it must not exist; mode 0640: recordings show what the operator saw) and writes the header. */
  constructor(opts: RecorderOptions) {
    this.file = opts.file
    this.maxBytes = opts.maxBytes ?? RECORDING_MAX_BYTES
    this.maxBuffered = opts.maxBuffered ?? RECORDING_MAX_BUFFERED
    this.log = opts.log
    const fd = fs.openSync(opts.file, 'wx', 0o640)
    fs.fchmodSync(fd, 0o640)
    this.stream = fs.createWriteStream(opts.file, { fd, highWaterMark: 64 * 1024 })
    this.stream.on('error', (err) => {
      // ENOSPC and friends: the session goes on, unrecorded from here.
      if (!this.failed) this.log?.warn({ err, file: this.file }, 'session recording failed; the session continues unrecorded')
      this.failed = true
    })
    this.stream.on('drain', () => this.endGap())
    const header = { version: 2, width: opts.cols, height: opts.rows, timestamp: Math.floor(Date.now() / 1000), env: { TERM: 'xterm-256color' }, title: opts.title }
    const first: string[] = []
    this.line(JSON.stringify(header), first)
    this.write(first)
  }

  /** Bytes handed to the file stream and not yet written: part of the session's backpressure. */
  get pending(): number {
    return this.stream.writableLength + this.queued
  }

  get bytes(): number {
    return this.written
  }

  output(data: Buffer): void {
    if (this.truncated || this.failed || this.closed) return
    if (this.skipping > 0 || this.pending > this.maxBuffered) {
      if (this.skipping === 0) {
        this.flush()
        this.decoder.end() // drop a half character with the rest of the gap
      }
      this.skipping += data.length
      this.skippedBytes += data.length
      return
    }
    this.queue.push({ time: this.now(), data })
    this.queued += data.length
    if (this.queued >= BATCH_BYTES) this.immediate ??= setImmediate(() => this.flush())
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS)
  }

  resize(cols: number, rows: number): void {
    if (this.truncated || this.failed || this.closed) return
    this.flush()
    this.event('r', `${cols}x${rows}`)
  }

  /** Flushes and closes the file; resolves when it is on disk (or failed). Idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.closed
    this.flush()
    if (this.skipping > 0) this.endGap()
    else if (!this.truncated && !this.failed) {
      const rest = this.decoder.end()
      if (rest) this.event('o', rest)
    }
    this.closed = new Promise((resolve) => {
      if (this.stream.destroyed) return resolve()
      this.stream.once('close', () => resolve())
      this.stream.end()
    })
    return this.closed
  }

  /** Turns the queued chunks into lines, in order, and hands them to the file stream in one write. */
  private flush(): void {
    if (this.timer) clearTimeout(this.timer)
    if (this.immediate) clearImmediate(this.immediate)
    this.timer = null
    this.immediate = null
    const queue = this.queue
    this.queue = []
    this.queued = 0
    const lines: string[] = []
    for (const { time, data } of queue) {
      if (this.truncated || this.failed) break
      // The decoder holds back a UTF-8 sequence split across reads until its last byte arrives.
      const text = this.decoder.write(data)
      if (text) this.event('o', text, time, lines)
    }
    this.write(lines)
  }

  private endGap(): void {
    if (this.skipping === 0 || this.truncated || this.failed) return
    const skipped = this.skipping
    this.skipping = 0
    this.event('o', `\r\n[recording truncated: ${skipped} bytes of output skipped, the disk could not keep up]\r\n`)
  }

  private now(): number {
    return Math.round((performance.now() - this.t0) * 1000) / 1e6
  }

  /** One event line, into `batch` when given (flush writes it), else written now. */
  private event(kind: 'o' | 'r', data: string, time = this.now(), batch?: string[]): void {
    const line = JSON.stringify([time, kind, data])
    const out = batch ?? []
    if (this.written + Buffer.byteLength(line) + 1 > this.maxBytes - MARKER_ROOM) {
      this.truncated = true
      this.line(JSON.stringify([time, 'o', `\r\n[recording truncated: size limit of ${this.maxBytes} bytes reached]\r\n`]), out)
    } else this.line(line, out)
    if (!batch) this.write(out)
  }

  private line(text: string, out: string[]): void {
    const s = `${text}\n`
    this.written += Buffer.byteLength(s)
    out.push(s)
  }

  private write(lines: string[]): void {
    if (lines.length > 0) this.stream.write(Buffer.from(lines.join('')))
  }
}

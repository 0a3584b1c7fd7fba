// Writes one session's terminal output as an asciicast v2 file (https://docs.asciinema.org/manual/asciicast/v2/):
// a JSON header line, then one JSON array per output chunk or resize. Memory stays bounded whatever the
// output rate: a slow disk costs a gap in the recording (marked), never an unbounded write buffer.
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
    this.line(JSON.stringify(header))
  }

  /** Bytes handed to the file stream and not yet written: part of the session's backpressure. */
  get pending(): number {
    return this.stream.writableLength
  }

  get bytes(): number {
    return this.written
  }

  output(data: Buffer): void {
    if (this.truncated || this.failed || this.closed) return
    if (this.skipping > 0 || this.stream.writableLength > this.maxBuffered) {
      if (this.skipping === 0) this.decoder.end() // drop a half character with the rest of the gap
      this.skipping += data.length
      this.skippedBytes += data.length
      return
    }
    // The decoder holds back a UTF-8 sequence split across reads until its last byte arrives.
    const text = this.decoder.write(data)
    if (text) this.event('o', text)
  }

  resize(cols: number, rows: number): void {
    if (this.truncated || this.failed || this.closed) return
    this.event('r', `${cols}x${rows}`)
  }

  /** Flushes and closes the file; resolves when it is on disk (or failed). Idempotent. */
  close(): Promise<void> {
    if (this.closed) return this.closed
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

  private endGap(): void {
    if (this.skipping === 0 || this.truncated || this.failed) return
    const skipped = this.skipping
    this.skipping = 0
    this.event('o', `\r\n[recording truncated: ${skipped} bytes of output skipped, the disk could not keep up]\r\n`)
  }

  private event(kind: 'o' | 'r', data: string): void {
    const time = Math.round((performance.now() - this.t0) * 1000) / 1e6
    const line = JSON.stringify([time, kind, data])
    if (this.written + Buffer.byteLength(line) + 1 > this.maxBytes - MARKER_ROOM) {
      this.truncated = true
      this.line(JSON.stringify([time, 'o', `\r\n[recording truncated: size limit of ${this.maxBytes} bytes reached]\r\n`]))
      return
    }
    this.line(line)
  }

  private line(text: string): void {
    const buf = Buffer.from(`${text}\n`)
    this.written += buf.length
    this.stream.write(buf)
  }
}

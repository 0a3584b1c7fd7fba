// One access log file on disk (an app's log/access.log, or the edge's own for unknown hosts): lines are queued,
// written in batches with one write each, rotated at a size cap into one old generation (access.log.1).

import fs from 'node:fs'
import path from 'node:path'

export interface AccessFileOptions {
  /** Rotate before a write would take the file past this size. */
  maxBytes: number
  /** Queued bytes at most; lines beyond are dropped (and counted), so a slow disk never grows memory. */
  highWaterBytes: number
  /** Called when a batch could not be written (a full disk): the lines are lost and counted. */
  onWriteError(err: unknown, lines: number): void
  /** The clock (ms) that dates lastWriteMs. */
  now(): number
  /** A line waits at most this long for others to share its write (0: written at once). */
  batchMs: number
}

const NL = 0x0a
/** Queued bytes that are written at once, without waiting for batchMs. */
const BATCH_BYTES = 64 * 1024

/**
 * Appends lines with backpressure: lines wait up to batchMs (or until 64 KiB are queued) and go out in one
 * write; while a write is on its way, the next lines wait for it. A line per write costs the receiver more
 * than the line's parsing many times over (a thread-pool round trip each; see bench/README.md, edge-log).
 */
export class AccessFile {
  private queue: Buffer[] = []
  private queued = 0
  private handle: fs.promises.FileHandle | null = null
  private size = 0
  private writing: Promise<void> | null = null
  private timer: NodeJS.Timeout | null = null
  /** When the last batch went out (ms, the caller's clock): idle files are closed by their owner. */
  lastWriteMs = 0
  /** Lines refused because the queue was full. */
  dropped = 0

  constructor(
    readonly file: string,
    private readonly opts: AccessFileOptions,
  ) {}

  /** Queues one newline-terminated line; false (and counted) when the queue is at its high-water mark. */
  write(line: Buffer): boolean {
    if (this.queued + line.length > this.opts.highWaterBytes) {
      this.dropped++
      return false
    }
    this.queue.push(line)
    this.queued += line.length
    if (this.writing) return true
    if (this.queued >= BATCH_BYTES || this.opts.batchMs <= 0) this.startDrain()
    else this.timer ??= setTimeout(() => this.startDrain(), this.opts.batchMs)
    return true
  }

  /** Writes what is queued now, and resolves when every line queued so far is written (or given up on). */
  async flushed(): Promise<void> {
    if (this.timer) this.startDrain()
    while (this.writing) await this.writing
  }

  /** Writes what is queued, then closes the file; a later write opens it again. */
  async close(): Promise<void> {
    await this.flushed()
    const h = this.handle
    this.handle = null
    await h?.close().catch(() => {})
  }

  get idle(): boolean {
    return this.writing === null && this.timer === null
  }

  private startDrain(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.writing ??= this.drain()
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue, this.queued)
        const lines = this.queue.length
        this.queue = []
        this.queued = 0
        try {
          await this.append(batch)
        } catch (err) {
          // The handle may be broken (the directory was removed): open afresh next time.
          const h = this.handle
          this.handle = null
          await h?.close().catch(() => {})
          this.opts.onWriteError(err, lines)
        }
      }
    } finally {
      this.writing = null
    }
  }

  /** Writes the batch, rotating where the next whole line would take the file past maxBytes. */
  private async append(batch: Buffer): Promise<void> {
    if (!this.handle) await this.open()
    let rest = batch
    while (rest.length > 0) {
      const room = this.opts.maxBytes - this.size
      let cut = rest.length
      if (cut > room) {
        cut = room > 0 ? rest.lastIndexOf(NL, room - 1) + 1 : 0
        if (cut === 0 && this.size > 0) {
          await this.rotate()
          continue
        }
        // A line longer than the cap alone goes whole into an empty file.
        if (cut === 0) cut = rest.indexOf(NL) + 1 || rest.length
      }
      const { bytesWritten } = await this.handle!.write(rest, 0, cut)
      this.size += bytesWritten
      rest = rest.subarray(bytesWritten)
    }
    this.lastWriteMs = this.opts.now()
  }

  private async open(): Promise<void> {
    await fs.promises.mkdir(path.dirname(this.file), { recursive: true, mode: 0o750 })
    this.handle = await fs.promises.open(this.file, 'a', 0o640)
    this.size = (await this.handle.stat()).size
  }

  /** One old generation: access.log.1 is replaced by the current file, which starts empty. */
  private async rotate(): Promise<void> {
    await this.handle!.close()
    this.handle = null
    await fs.promises.rename(this.file, `${this.file}.1`)
    await this.open()
  }
}

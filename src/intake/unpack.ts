// Streaming, strict unpacking of an uploaded release into a fresh staging directory: drives tar's Parser,
// writes only what entry-rules admits, and owns the file modes, the durability and the gzip layer.

import fs from 'node:fs/promises'
import { constants } from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { Parser, type ReadEntry } from 'tar'
import { BerthError, problem } from '../errors.js'
import { abortable } from '../fsutil.js'
import { EntryRules, expansionProblem } from './entry-rules.js'

export interface UnpackLimits {
  maxUnpackedBytes: number
  maxFiles: number
  maxPathDepth: number
  maxGzipRatio: number
  ratioGraceBytes: number
}

export interface UnpackStats {
  format: 'tar.gz' | 'tar'
  /** Entries written: files, directories and links. */
  entries: number
  files: number
  /** Sum of file sizes. */
  bytes: number
  /** Bytes of the tar stream (decompressed). */
  tarBytes: number
  /** The directory, relative to the unpack root, that holds the release: '' or the one wrapper directory. */
  releaseRoot: string
}

// Durability without stalling the pipeline: files are fsynced behind the extraction, this many at a time.
const FSYNC_IN_FLIGHT = 16
const SNIFF_BYTES = 512

/**
 * Feeds compressed (or plain tar) bytes in with `write`, which resolves when more may be sent (backpressure
 * all the way to the disk). `end` resolves with stats once every entry is on disk and synced; any violation
 * rejects with a BerthError naming the entry. The caller owns `root` and removes it on failure.
 */
export class SafeUnpacker {
  private readonly rules: EntryRules
  private readonly madeDirs = new Set<string>([''])
  private readonly syncs: Promise<void>[] = []
  private sniffed: Buffer | null = Buffer.alloc(0)
  private gunzip: zlib.Gunzip | null = null
  private readonly parser: Parser
  private failure: Error | null = null
  /** Aborted with the failure: every wait of the pipeline ends on it. */
  private readonly failed = new AbortController()
  private pending: Promise<void> = Promise.resolve()
  private parserDone: Promise<void>
  private compressedIn = 0
  private stats: UnpackStats = { format: 'tar', entries: 0, files: 0, bytes: 0, tarBytes: 0, releaseRoot: '' }
  private openHandle: fs.FileHandle | null = null
  private currentEntry: ReadEntry | null = null
  /** The last 1 KiB of tar bytes: two zero blocks there mean the archive was complete. */
  private tail: Buffer = Buffer.alloc(0)

  constructor(
    private readonly root: string,
    private readonly limits: UnpackLimits,
  ) {
    this.rules = new EntryRules(limits)
    // brotli/zstd off: we sniff the format ourselves and feed the parser plain tar.
    this.parser = new Parser({ strict: true, brotli: false, zstd: false } as ConstructorParameters<typeof Parser>[0])
    this.parser.on('entry', (entry: ReadEntry) => this.onEntry(entry))
    this.parser.on('error', (err: Error & { code?: string }) => this.fail(tarError(err)))
    this.parserDone = new Promise((resolve) => this.parser.on('end', () => resolve()))
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure
    if (this.sniffed) {
      this.sniffed = Buffer.concat([this.sniffed, chunk])
      if (this.sniffed.length < SNIFF_BYTES) return
      chunk = this.start(this.sniffed)
      this.sniffed = null
    }
    await abortable(this.feed(chunk), this.failed.signal)
  }

  async end(): Promise<UnpackStats> {
    if (this.failure) throw this.failure
    if (this.sniffed) {
      if (this.sniffed.length === 0) throw problem('UPLOAD_EMPTY', 'The upload has no bytes; send the release tarball as the request body.')
      const chunk = this.start(this.sniffed)
      this.sniffed = null
      await abortable(this.feed(chunk), this.failed.signal)
    }
    await abortable(this.finishInput(), this.failed.signal)
    await abortable(this.parserDone, this.failed.signal)
    await abortable(this.pending, this.failed.signal)
    if (this.failure) throw this.failure
    this.stats.releaseRoot = this.rules.finish()
    this.stats.entries = this.rules.entries
    await Promise.all(this.syncs)
    await this.syncDirs()
    return this.stats
  }

  /** Stops everything; safe to call at any time. */
  async destroy(err: Error = new Error('aborted')): Promise<void> {
    this.fail(err)
    await this.pending.catch(() => {})
    await Promise.allSettled(this.syncs)
    await this.openHandle?.close().catch(() => {})
  }

  private fail(err: Error): void {
    if (this.failure) return
    this.failure = err
    this.failed.abort(err)
    this.gunzip?.destroy()
    this.parser.abort(err)
    // The entry being written would otherwise wait forever for bytes the aborted parser will never send.
    this.currentEntry?.destroy()
  }

  /** Decides the format from the first bytes and sets up the decompressor; returns the bytes to feed. */
  private start(head: Buffer): Buffer {
    if (head[0] === 0x1f && head[1] === 0x8b) {
      this.stats.format = 'tar.gz'
      this.gunzip = zlib.createGunzip({ chunkSize: 64 * 1024 })
      this.gunzip.on('error', (err: NodeJS.ErrnoException) => {
        // zlib reads what follows a gzip member as the next member's header; our sniff already checked the
        // first header, so "incorrect header check" means bytes after a complete member.
        if (this.tarComplete() || err.message === 'incorrect header check') this.fail(problem('TARBALL_TRAILING_DATA', 'The upload has data after the end of the tar archive; upload the tarball alone.'))
        else if (err.code === 'Z_BUF_ERROR') this.fail(problem('GZIP_TRUNCATED', 'The gzip stream ends before its end marker: the file was cut short; upload the complete tarball.'))
        else this.fail(problem('GZIP_CORRUPT', `The gzip stream is corrupt (${err.message}); rebuild the tarball and upload it again.`))
      })
      this.gunzip.on('data', (d: Buffer) => this.onTar(d))
      return head
    }
    if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return head
    const what = head.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')) ? 'a zip file' : head.subarray(0, 3).toString('latin1') === 'BZh' ? 'a bzip2 file' : 'not gzip or tar'
    throw this.failNow(problem('NOT_A_TARBALL', `The upload is ${what}; send the .tar.gz that \`mix release\` writes (steps: [:assemble, :tar]).`))
  }

  private failNow(err: BerthError): BerthError {
    this.fail(err)
    return err
  }

  private async feed(chunk: Buffer): Promise<void> {
    if (!this.gunzip) {
      this.onTar(chunk)
      if (!this.parserWritable) await this.parserDrain()
      return
    }
    this.compressedIn += chunk.length
    if (!this.gunzip.write(chunk)) await new Promise<void>((resolve) => this.gunzip!.once('drain', resolve))
  }

  private parserWritable = true

  private parserDrain(): Promise<void> {
    return new Promise<void>((resolve) => this.parser.once('drain', () => {
      this.parserWritable = true
      resolve()
    }))
  }

  private tarComplete(): boolean {
    return this.stats.tarBytes % 512 === 0 && this.tail.length === 1024 && this.tail.every((b) => b === 0)
  }

  private onTar(d: Buffer): void {
    if (this.failure) return
    this.stats.tarBytes += d.length
    this.tail = d.length >= 1024 ? d.subarray(d.length - 1024) : Buffer.concat([this.tail, d]).subarray(-1024)
    const over = expansionProblem(this.stats.tarBytes, this.gunzip ? this.compressedIn : null, this.limits)
    if (over) {
      this.fail(over)
      return
    }
    this.parserWritable = this.parser.write(d) && this.parserWritable
    if (!this.parserWritable && this.gunzip && !this.gunzip.isPaused()) {
      this.gunzip.pause()
      void this.parserDrain().then(() => this.gunzip?.resume())
    }
  }

  private async finishInput(): Promise<void> {
    if (!this.gunzip) {
      this.parser.end()
      return
    }
    const gz = this.gunzip
    await new Promise<void>((resolve) => {
      gz.once('end', resolve)
      gz.end()
    })
    if (this.failure) return
    // zlib stops at the end of the gzip member and silently drops what follows; we refuse it instead.
    if (gz.bytesWritten < this.compressedIn) {
      this.fail(problem('TARBALL_TRAILING_DATA', `The upload has ${this.compressedIn - gz.bytesWritten} bytes after the end of the gzip stream; upload the tarball alone.`))
      return
    }
    this.parser.end()
  }

  private onEntry(entry: ReadEntry): void {
    // Entries arrive one at a time: the parser emits the next only after this one has ended.
    const job = this.pending.then(() => this.handle(entry))
    this.pending = job.catch((err: Error) => {
      this.fail(err)
      entry.resume()
    })
  }

  private async handle(entry: ReadEntry): Promise<void> {
    this.currentEntry = entry
    if (this.failure) {
      entry.resume()
      return
    }
    const plan = this.rules.admit({ path: entry.path, type: entry.type, linkpath: entry.linkpath, size: entry.size ?? 0 })
    const target = plan.kind === 'none' ? '' : path.join(this.root, plan.rel)
    switch (plan.kind) {
      case 'none':
        break
      case 'dir':
        await this.mkdirs(plan.rel)
        break
      case 'file':
        await this.writeFile(entry, plan.rel, target)
        return
      case 'symlink':
        await this.mkdirs(path.posix.dirname(plan.rel))
        await fs.symlink(plan.target, target)
        break
      case 'hardlink':
        await this.mkdirs(path.posix.dirname(plan.rel))
        await fs.link(path.join(this.root, plan.from), target)
        this.stats.files++
        break
    }
    entry.resume()
  }

  private async writeFile(entry: ReadEntry, rel: string, target: string): Promise<void> {
    await this.mkdirs(path.posix.dirname(rel))
    // setuid/setgid/sticky and group/world write are dropped; the file is born read-only (the fd still writes).
    const mode = (((entry.mode ?? 0o644) & 0o555) | 0o400)
    const fh = await fs.open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
    this.openHandle = fh
    let written = 0
    const copy = (async () => {
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        if (this.failure) break
        this.rules.addBytes(entry.path, chunk.length)
        written += chunk.length
        await fh.write(chunk)
      }
    })()
    copy.catch(() => {})
    try {
      // A destroyed entry's iterator may never settle, so the failure signal ends the wait instead.
      await abortable(copy, this.failed.signal)
    } catch (err) {
      this.openHandle = null
      await fh.close().catch(() => {})
      throw err
    }
    this.openHandle = null
    if (this.failure) {
      await fh.close().catch(() => {})
      return
    }
    this.stats.bytes += written
    this.stats.files++
    this.deferSync(fh)
  }

  private deferSync(fh: fs.FileHandle): void {
    const job = fh.sync().finally(() => fh.close())
    this.syncs.push(job)
    job.catch((err: Error) => this.fail(err))
    if (this.syncs.length >= FSYNC_IN_FLIGHT * 4) {
      // Keep the list short; errors were already routed to fail().
      const settled = this.syncs.splice(0, this.syncs.length - FSYNC_IN_FLIGHT)
      void Promise.allSettled(settled)
    }
  }

  private async syncDirs(): Promise<void> {
    for (const dir of this.madeDirs) {
      const fh = await fs.open(path.join(this.root, dir), constants.O_RDONLY | constants.O_DIRECTORY)
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
  }

  private async mkdirs(rel: string): Promise<void> {
    if (rel === '.' || this.madeDirs.has(rel)) return
    await this.mkdirs(path.posix.dirname(rel))
    try {
      await fs.mkdir(path.join(this.root, rel), 0o755)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    this.madeDirs.add(rel)
  }
}

function tarError(err: Error & { code?: string; tarCode?: string }): Error {
  if (err instanceof BerthError) return err
  const code = err.tarCode ?? err.code
  if (code === 'TAR_BAD_ARCHIVE' && /truncated/i.test(err.message)) {
    return problem('TAR_TRUNCATED', 'The tar archive ends in the middle of an entry; the upload was cut short or the tarball is damaged.')
  }
  if (code === 'TAR_BAD_ARCHIVE') {
    return problem('TAR_INVALID', `The data is not a tar archive (${err.message}); upload the .tar.gz that \`mix release\` writes.`)
  }
  return problem('TAR_INVALID', `The tar archive is malformed: ${err.message}.`)
}

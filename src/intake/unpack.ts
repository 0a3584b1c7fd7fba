// Streaming, strict unpacking of an uploaded release into a fresh staging directory: passes the upload
// through the layers' checks to tar's Parser, writes only what entry-rules admits, owns modes and fsyncs.

import fs from 'node:fs/promises'
import fsSync, { constants } from 'node:fs'
import path from 'node:path'
import { Parser, type ReadEntry } from 'tar'
import { BerthError, problem } from '../errors.js'
import { abortable, syncFilesystem } from '../fsutil.js'
import { EntryRules, expansionProblem, skippedEntryProblem } from './entry-rules.js'
import { compressionOf, GzipMember, isZeros, TarFramer } from './layers.js'
import { dropWritten, writeAll } from './writev.js'

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
 * Files up to this size are written in one synchronous open/writev/close once their data is in, as tar
 * does: three pool round trips per file were most of the time of a release of many small .beam files.
 */
const SMALL_FILE = 256 * 1024
/** A large file's chunks are gathered up to this much per write: one pool round trip each, not one per chunk. */
const WRITE_BATCH = 1024 * 1024
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
/** Beyond this the one syncfs is given up for an fsync per file. */
const SYNCFS_TIMEOUT_MS = 60_000

/**
 * Feeds compressed (or plain tar) bytes in with `write`, which resolves when more may be sent (backpressure
 * all the way to the disk). `end` resolves with stats once every entry is on disk and synced; any violation
 * rejects with a BerthError naming the entry. The caller owns `root` and removes it on failure.
 */
export class SafeUnpacker {
  private readonly rules: EntryRules
  private readonly madeDirs = new Set<string>([''])
  private readonly syncs: Promise<void>[] = []
  /** Small files written but not fsynced: one syncfs at the end covers them, or an fsync each. */
  private readonly unsynced: string[] = []
  /** The first bytes of the upload, until the format is known. */
  private sniffed: Buffer | null = Buffer.alloc(0)
  /** The first bytes out of the gzip layer, until they are known not to be another compression layer. */
  private tarHead: Buffer | null = null
  private gzip: GzipMember | null = null
  private readonly framer = new TarFramer()
  private readonly parser: Parser
  private failure: Error | null = null
  /** Aborted with the failure: every wait of the pipeline ends on it. */
  private readonly failed = new AbortController()
  private pending: Promise<void> = Promise.resolve()
  private parserDone: Promise<void>
  private stats: UnpackStats = { format: 'tar', entries: 0, files: 0, bytes: 0, tarBytes: 0, releaseRoot: '' }
  private openHandle: fs.FileHandle | null = null
  private currentEntry: ReadEntry | null = null

  constructor(
    private readonly root: string,
    private readonly limits: UnpackLimits,
  ) {
    this.rules = new EntryRules(limits)
    // The Parser gunzips by itself when its input starts with gzip magic; berth makes sure it never does
    // (see onTar), and brotli/zstd are off, so it parses the plain tar it is given.
    this.parser = new Parser({ strict: true, brotli: false, zstd: false } as ConstructorParameters<typeof Parser>[0])
    this.parser.on('entry', (entry: ReadEntry) => this.onEntry(entry))
    // The Parser skips what it cannot use; berth refuses it, since another tar would unpack it.
    this.parser.on('ignoredEntry', (entry: ReadEntry) => this.fail(skippedEntryProblem({ path: entry.path, type: entry.type, size: entry.size ?? 0, meta: entry.meta })))
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
    if (!this.framer.ended) {
      throw problem('TAR_TRUNCATED', 'The tar archive has no end-of-archive marker (two zero blocks): it was cut short between entries; upload the complete tarball.')
    }
    if (this.framer.unread > 0) {
      throw problem('TAR_INVALID', `The tar archive has ${this.framer.unread} entries that the tar parser did not read; tar readers would disagree about its content.`)
    }
    this.stats.releaseRoot = this.rules.finish()
    this.stats.entries = this.rules.entries
    this.sealDirs(this.stats.releaseRoot)
    await Promise.all(this.syncs)
    await this.syncRest()
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
    this.gzip?.destroy()
    this.parser.abort(err)
    // The entry being written would otherwise wait forever for bytes the aborted parser will never send.
    this.currentEntry?.destroy()
  }

  /** Decides the format from the first bytes and sets up the decompressor; returns the bytes to feed. */
  private start(head: Buffer): Buffer {
    const compression = compressionOf(head)
    if (compression === 'gzip') {
      this.stats.format = 'tar.gz'
      this.gzip = new GzipMember((d) => this.onTar(d), (err) => this.fail(err))
      this.tarHead = Buffer.alloc(0)
      return head
    }
    if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return head
    const what = compression ? `a ${compression} file` : 'not gzip or tar'
    throw this.failNow(problem('NOT_A_TARBALL', `The upload is ${what}; send the .tar.gz that \`mix release\` writes (steps: [:assemble, :tar]).`))
  }

  private failNow(err: BerthError): BerthError {
    this.fail(err)
    return err
  }

  private async feed(chunk: Buffer): Promise<void> {
    if (this.gzip) {
      await this.gzip.write(chunk)
      return
    }
    this.onTar(chunk)
    if (!this.parserWritable) await this.parserDrain()
  }

  private parserWritable = true

  private parserDrain(): Promise<void> {
    return new Promise<void>((resolve) => this.parser.once('drain', () => {
      this.parserWritable = true
      resolve()
    }))
  }

  /** Takes tar bytes (out of the gzip layer, or the upload itself) and counts them against the limits. */
  private onTar(d: Buffer): void {
    if (this.failure) return
    this.stats.tarBytes += d.length
    const over = expansionProblem(this.stats.tarBytes, this.gzip ? this.gzip.bytesIn : null, this.limits)
    if (over) {
      this.fail(over)
      return
    }
    if (this.tarHead) {
      this.tarHead = Buffer.concat([this.tarHead, d])
      if (this.tarHead.length < SNIFF_BYTES) return
      d = this.tarHead
      this.tarHead = null
      if (this.nested(d)) return
    }
    this.frame(d)
  }

  /**
   * Refuses a second compression layer: the Parser would undo a gzip one by itself, behind the ratio limit
   * and the free-space estimate, and the others are no tar either.
   */
  private nested(head: Buffer): boolean {
    const inner = compressionOf(head)
    if (!inner) return false
    this.fail(problem('TARBALL_NESTED_COMPRESSION', `The gzip stream holds ${inner} data instead of a tar archive: the tarball is compressed twice. Compress the tar once, as \`mix release\` does.`, { inner }))
    return true
  }

  /** Hands the Parser the archive up to its end marker; after it only zero padding may follow. */
  private frame(d: Buffer): void {
    let n: number
    try {
      n = this.framer.take(d)
    } catch (err) {
      this.fail(err as Error)
      return
    }
    if (n < d.length && !isZeros(d.subarray(n))) {
      this.fail(problem('TARBALL_TRAILING_DATA', `The tar archive has data after its end-of-archive marker (at byte ${this.framer.offset}), which tar would ignore; upload the tarball alone, as \`mix release\` writes it.`))
      return
    }
    if (n === 0) return
    this.parserWritable = this.parser.write(n === d.length ? d : d.subarray(0, n)) && this.parserWritable
    if (!this.parserWritable && this.gzip && !this.gzip.isPaused()) {
      this.gzip.pause()
      void this.parserDrain().then(() => this.gzip?.resume())
    }
  }

  private async finishInput(): Promise<void> {
    if (this.gzip) await this.gzip.end()
    if (this.failure) return
    if (this.tarHead) {
      const head = this.tarHead
      this.tarHead = null
      if (this.nested(head)) return
      this.frame(head)
    }
    this.parser.end()
  }

  private onEntry(entry: ReadEntry): void {
    const framed = this.framer.nextEntrySize()
    if (framed !== (entry.header.size ?? 0)) {
      this.fail(problem('TAR_INVALID', `Tar entry "${entry.path}" is ${entry.header.size} bytes by its pax header but ${framed} by its tar header; tar readers would split the archive differently.`, { entry: entry.path }))
      entry.resume()
      return
    }
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
    const plan = this.rules.admit({ path: entry.path, type: entry.type, linkpath: entry.linkpath, size: entry.header.size ?? 0 })
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
    if ((entry.header.size ?? 0) <= SMALL_FILE) return this.writeSmallFile(entry, rel, target, mode)
    const fh = await fs.open(target, CREATE, mode)
    // The mode as computed, whatever berth's umask (systemd's UMask=0027 would take the app user's read away).
    await fh.chmod(mode)
    this.openHandle = fh
    let written = 0
    const copy = (async () => {
      let batch: Buffer[] = []
      let batched = 0
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        if (this.failure) break
        this.rules.addBytes(entry.path, chunk.length)
        written += chunk.length
        batch.push(chunk)
        batched += chunk.length
        if (batched < WRITE_BATCH) continue
        await writeAll(fh, batch)
        batch = []
        batched = 0
      }
      if (batch.length > 0 && !this.failure) await writeAll(fh, batch)
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

  /** Collects the entry's bytes (counted as they come), then writes the file without the thread pool. */
  private async writeSmallFile(entry: ReadEntry, rel: string, target: string, mode: number): Promise<void> {
    const chunks: Buffer[] = []
    let written = 0
    const read = (async () => {
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        if (this.failure) break
        this.rules.addBytes(entry.path, chunk.length)
        written += chunk.length
        chunks.push(chunk)
      }
    })()
    read.catch(() => {})
    await abortable(read, this.failed.signal)
    if (this.failure) return
    const fd = fsSync.openSync(target, CREATE, mode)
    try {
      fsSync.fchmodSync(fd, mode)
      while (chunks.length > 0) dropWritten(chunks, fsSync.writevSync(fd, chunks))
    } finally {
      fsSync.closeSync(fd)
    }
    this.stats.bytes += written
    this.stats.files++
    this.unsynced.push(rel)
  }

  /**
   * Makes the small files and every directory durable: one syncfs of the staging filesystem where it can be
   * relied on (see fsutil.syncFilesystem), otherwise an fsync of each file and then of each directory.
   */
  private async syncRest(): Promise<void> {
    if (await syncFilesystem(this.root, SYNCFS_TIMEOUT_MS, this.failed.signal)) return
    let next = 0
    const worker = async () => {
      while (next < this.unsynced.length && !this.failure) {
        const fh = await fs.open(path.join(this.root, this.unsynced[next++]!), constants.O_RDONLY | constants.O_NOFOLLOW)
        try {
          await fh.sync()
        } finally {
          await fh.close()
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(FSYNC_IN_FLIGHT, this.unsynced.length) }, worker))
    if (this.failure) throw this.failure
    await this.syncDirs()
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

  /**
   * Makes every directory below the release root read-only (files were born so; the root itself stays
   * writable for the metadata and is sealed by the caller after the rename). From the list of what was made,
   * with no walk of the tree, and before the sync below so that the modes are durable with the rest.
   */
  private sealDirs(releaseRoot: string): void {
    const prefix = releaseRoot === '' ? '' : `${releaseRoot}/`
    for (const dir of this.madeDirs) {
      if (dir === releaseRoot || !dir.startsWith(prefix)) continue
      // Through a descriptor that refuses a link, as the walk this replaces never followed one.
      const fd = fsSync.openSync(path.join(this.root, dir), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
      try {
        fsSync.fchmodSync(fd, 0o555)
      } finally {
        fsSync.closeSync(fd)
      }
    }
  }

  private async mkdirs(rel: string): Promise<void> {
    if (rel === '.' || this.madeDirs.has(rel)) return
    await this.mkdirs(path.posix.dirname(rel))
    try {
      // Synchronous: a mkdir on the local disk is far shorter than the pool round trip.
      fsSync.mkdirSync(path.join(this.root, rel), 0o755)
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

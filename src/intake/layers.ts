// The byte layers of an upload below its tar entries: at most one gzip member, plain tar inside it, and
// nothing after the end of either. Each check refuses what another reader would see differently.

import zlib from 'node:zlib'
import { Header } from 'tar'
import { type BerthError, problem } from '../errors.js'
import { forbiddenType, paxHeaderProblem, skippedEntryProblem } from './entry-rules.js'

/** Magic numbers of the compressors tar (or a user) might reach for; brotli has none. */
const MAGIC: [string, number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['compress (.Z)', [0x1f, 0x9d]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['lz4', [0x04, 0x22, 0x4d, 0x18]],
  ['lzip', [0x4c, 0x5a, 0x49, 0x50]],
  ['zip', [0x50, 0x4b, 0x03, 0x04]],
  ['7z', [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]],
  ['rar', [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07]],
]

/** Names the compressed (or archive) format `head` starts with, or null. */
export function compressionOf(head: Buffer): string | null {
  for (const [name, magic] of MAGIC) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return name
  }
  // zstd skippable frames: 0x184D2A50..5F, little-endian.
  if (head.length >= 4 && (head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd'
  return null
}

const ZEROS = Buffer.alloc(64 * 1024)

export function isZeros(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i += ZEROS.length) {
    const part = buf.subarray(i, i + ZEROS.length)
    if (!part.equals(ZEROS.subarray(0, part.length))) return false
  }
  return true
}

/** What tar's Parser reads as metadata for the next entry rather than as an entry (its `meta` types). */
const META_TYPES = new Set(['ExtendedHeader', 'OldExtendedHeader', 'GlobalExtendedHeader', 'NextFileHasLongPath', 'OldGnuLongPath', 'NextFileHasLongLinkpath'])
const PAX_KIND: Record<string, 'x' | 'g'> = { ExtendedHeader: 'x', OldExtendedHeader: 'x', GlobalExtendedHeader: 'g' }
/** tar's Parser skips metadata entries larger than this (its maxMetaEntrySize). */
export const MAX_META_BYTES = 1024 * 1024

function trailing(detail: string): BerthError {
  return problem('TARBALL_TRAILING_DATA', `${detail}; upload the tarball alone, as \`mix release\` writes it.`)
}

/**
 * Follows the block structure of a tar stream (header, body rounded to 512, two zero blocks at the end)
 * ahead of the Parser, so that berth knows where the archive ends and can hand the Parser only that.
 * It reads pax headers itself, before the Parser applies them. Sizes come from the raw header, so an
 * entry whose size a pax header changes frames differently here: `nextEntrySize` lets the caller refuse it.
 */
export class TarFramer {
  /** Archive bytes taken, up to and including the end marker. */
  offset = 0
  ended = false
  private body = 0
  private head: Buffer | null = null
  private zeroBlocks = 0
  private meta: { kind: 'x' | 'g'; name: string; size: number; parts: Buffer[]; have: number } | null = null
  private readonly sizes: number[] = []
  private read = 0

  /** Takes the next bytes of the tar stream and returns how many of them belong to the archive. */
  take(chunk: Buffer): number {
    let pos = 0
    while (pos < chunk.length && !this.ended) {
      if (this.body > 0) {
        const n = Math.min(this.body, chunk.length - pos)
        if (this.meta) this.collect(chunk.subarray(pos, pos + n))
        this.body -= n
        pos += n
        if (this.body === 0 && this.meta) this.endMeta()
        continue
      }
      let block: Buffer
      if (this.head || chunk.length - pos < 512) {
        const piece = chunk.subarray(pos, pos + 512 - (this.head?.length ?? 0))
        this.head = this.head ? Buffer.concat([this.head, piece]) : Buffer.from(piece)
        pos += piece.length
        if (this.head.length < 512) break
        block = this.head
        this.head = null
      } else {
        block = chunk.subarray(pos, pos + 512)
        pos += 512
      }
      this.header(block)
    }
    this.offset += pos
    return pos
  }

  /** The size the framing used for the next entry the Parser hands over (not metadata), in order. */
  nextEntrySize(): number | undefined {
    return this.sizes[this.read++]
  }

  /** Entries framed that the Parser has not handed over. */
  get unread(): number {
    return this.sizes.length - this.read
  }

  private header(block: Buffer): void {
    const h = new Header(block)
    if (h.nullBlock) {
      // tar's test for a zero block ignores the checksum field: bytes hidden there are refused.
      if (!isZeros(block)) throw trailing(`The tar end-of-archive marker at byte ${this.offset} carries data`)
      if (++this.zeroBlocks === 2) this.ended = true
      return
    }
    if (this.zeroBlocks > 0) {
      // bsdtar stops at one zero block; node-tar and GNU tar read on. Either way one of them misses entries.
      throw trailing(`The tar archive has entries after a zero block (byte ${this.offset}), where some tar readers stop`)
    }
    const size = h.size ?? 0
    this.body = 512 * Math.ceil(size / 512)
    if (!META_TYPES.has(h.type)) {
      this.sizes.push(size)
      return
    }
    // GNU tar reads 'N' as a multi-volume rename list, node-tar as the next entry's long name.
    if (h.type === 'OldGnuLongPath') throw forbiddenType(h.path ?? '', h.type)
    if (size > MAX_META_BYTES) throw skippedEntryProblem({ path: h.path ?? '', type: h.type, size, meta: true })
    const kind = PAX_KIND[h.type]
    if (kind && size > 0) this.meta = { kind, name: h.path ?? '', size, parts: [], have: 0 }
  }

  private collect(part: Buffer): void {
    const m = this.meta!
    const want = Math.min(part.length, m.size - m.have)
    if (want <= 0) return
    m.parts.push(Buffer.from(part.subarray(0, want)))
    m.have += want
  }

  private endMeta(): void {
    const m = this.meta!
    this.meta = null
    const bad = paxHeaderProblem(m.kind, Buffer.concat(m.parts), m.name)
    if (bad) throw bad
  }
}

/**
 * One gzip member, inflated by zlib's raw inflater: berth reads the header and the trailer (CRC-32 and
 * length) itself, because gunzip would go on into a second member, and the tar Parser would gunzip a
 * layer inside this one, where no ratio limit sees it.
 */
export class GzipMember {
  /** Compressed bytes taken in, header and trailer included. */
  bytesIn = 0
  private head: Buffer | null = Buffer.alloc(0)
  private headerLength = 0
  private readonly inflate = zlib.createInflateRaw({ chunkSize: 64 * 1024 })
  private crc = 0
  private outLength = 0
  private inflated = false
  private readonly ended: Promise<void>
  /** The last 8 bytes in: the trailer, when nothing follows the deflate stream. */
  private last = Buffer.alloc(0)
  private failure: BerthError | null = null

  constructor(
    onData: (d: Buffer) => void,
    private readonly onError: (err: BerthError) => void,
  ) {
    this.inflate.on('data', (d: Buffer) => {
      this.crc = zlib.crc32(d, this.crc)
      this.outLength += d.length
      onData(d)
    })
    this.ended = new Promise<void>((resolve) => {
      this.inflate.on('end', () => {
        this.inflated = true
        this.checkAfter()
        resolve()
      })
      this.inflate.on('error', (err: NodeJS.ErrnoException) => {
        this.fail(err.code === 'Z_BUF_ERROR' ? truncated() : problem('GZIP_CORRUPT', `The gzip stream is corrupt (${err.message}); rebuild the tarball and upload it again.`))
        resolve()
      })
    })
  }

  /** Resolves when more may be written. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) return
    this.bytesIn += chunk.length
    this.last = chunk.length >= 8 ? Buffer.from(chunk.subarray(chunk.length - 8)) : Buffer.concat([this.last, chunk]).subarray(-8)
    if (this.head) {
      this.head = Buffer.concat([this.head, chunk])
      const length = gzipHeaderLength(this.head)
      if (length === null) return
      chunk = this.head.subarray(length)
      this.headerLength = length
      this.head = null
    }
    if (this.inflated) {
      this.checkAfter()
      return
    }
    if (chunk.length > 0 && !this.inflate.write(chunk)) {
      await Promise.race([new Promise<void>((resolve) => this.inflate.once('drain', resolve)), this.ended])
    }
  }

  pause(): void {
    this.inflate.pause()
  }

  resume(): void {
    this.inflate.resume()
  }

  isPaused(): boolean {
    return this.inflate.isPaused()
  }

  /** Resolves once the member, its trailer and the end of the input have been checked. */
  async end(): Promise<void> {
    if (this.failure) return
    if (this.head) {
      this.fail(this.head.length === 0 ? problem('UPLOAD_EMPTY', 'The upload has no bytes; send the release tarball as the request body.') : truncated())
      return
    }
    if (!this.inflated) this.inflate.end()
    await this.ended
    if (this.failure) return
    const after = this.bytesIn - this.headerLength - this.inflate.bytesWritten
    if (after < 8) {
      this.fail(truncated())
      return
    }
    if (this.last.readUInt32LE(0) !== this.crc >>> 0 || this.last.readUInt32LE(4) !== this.outLength % 2 ** 32) {
      this.fail(problem('GZIP_CORRUPT', 'The gzip stream is corrupt (its CRC-32 or length does not match the data); rebuild the tarball and upload it again.'))
    }
  }

  destroy(): void {
    this.inflate.destroy()
  }

  /** After the deflate stream only its 8-byte trailer may follow: a second member or any other byte is refused. */
  private checkAfter(): void {
    const after = this.bytesIn - this.headerLength - this.inflate.bytesWritten
    if (after > 8) this.fail(trailing(`The upload has ${after - 8} bytes after the end of the gzip stream (a second gzip member or other data)`))
  }

  private fail(err: BerthError): void {
    if (this.failure) return
    this.failure = err
    this.inflate.destroy()
    this.onError(err)
  }
}

function truncated(): BerthError {
  return problem('GZIP_TRUNCATED', 'The gzip stream ends before its end marker: the file was cut short; upload the complete tarball.')
}

const FHCRC = 0x02
const FEXTRA = 0x04
const FNAME = 0x08
const FCOMMENT = 0x10
/** Names and comments in a gzip header longer than this are not a release tarball's. */
const MAX_HEADER = 64 * 1024

/** Length of the gzip member header at the start of `buf` (RFC 1952), or null when more bytes are needed. */
export function gzipHeaderLength(buf: Buffer): number | null {
  const corrupt = (why: string) => problem('GZIP_CORRUPT', `The gzip header is invalid (${why}); rebuild the tarball and upload it again.`)
  if (buf.length < 10) return null
  if (buf[0] !== 0x1f || buf[1] !== 0x8b) throw corrupt('no gzip magic')
  if (buf[2] !== 8) throw corrupt(`compression method ${buf[2]}, not deflate`)
  const flags = buf[3]!
  if (flags & 0xe0) throw corrupt('reserved flags set')
  let pos = 10
  if (flags & FEXTRA) {
    if (buf.length < pos + 2) return null
    pos += 2 + buf.readUInt16LE(pos)
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (!(flags & flag)) continue
    const nul = buf.indexOf(0, pos)
    if (nul < 0) {
      if (buf.length > MAX_HEADER) throw corrupt('name or comment too long')
      return null
    }
    pos = nul + 1
  }
  if (flags & FHCRC) {
    if (buf.length < pos + 2) return null
    if ((zlib.crc32(buf.subarray(0, pos)) & 0xffff) !== buf.readUInt16LE(pos)) throw corrupt('header checksum mismatch')
    pos += 2
  }
  if (buf.length < pos) return null
  return pos
}

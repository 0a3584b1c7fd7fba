// The byte layers under the tar entries on their own: one gzip member, its header and trailer, the tar
// framing up to the end marker, and the pax records, fed from buffers with no daemon.

import assert from 'node:assert/strict'
import zlib from 'node:zlib'
import { describe, test } from 'node:test'
import { paxHeaderProblem, paxKeys } from '../src/intake/entry-rules.js'
import { GzipMember, TarFramer, compressionOf, gzipHeaderLength, isZeros } from '../src/intake/layers.js'
import { paxRecords, releaseSkeleton, tarBytes } from './helpers/tar.js'

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

/** Feeds `input` in chunks of `size` and returns the output, or the code of the first problem. */
async function gunzip(input: Buffer, size = 7): Promise<{ out: Buffer } | { code: string }> {
  const parts: Buffer[] = []
  let code: string | null = null
  const member = new GzipMember((d) => parts.push(d), (err) => (code ??= err.code))
  for (let i = 0; i < input.length && !code; i += size) await member.write(input.subarray(i, i + size))
  if (!code) await member.end()
  return code ? { code } : { out: Buffer.concat(parts) }
}

describe('compression magic', () => {
  test('names the formats a second layer could be in, and nothing a tar header starts with', () => {
    assert.equal(compressionOf(zlib.gzipSync('x')), 'gzip')
    assert.equal(compressionOf(Buffer.from('BZh91AY&SY')), 'bzip2')
    assert.equal(compressionOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'xz')
    assert.equal(compressionOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd')
    assert.equal(compressionOf(Buffer.from([0x5e, 0x2a, 0x4d, 0x18])), 'zstd')
    assert.equal(compressionOf(Buffer.from('PK\x03\x04', 'latin1')), 'zip')
    assert.equal(compressionOf(tarBytes(releaseSkeleton())), null)
    assert.equal(compressionOf(Buffer.from([0x1f])), null)
  })
})

describe('one gzip member', () => {
  const data = Buffer.from('a release '.repeat(5000))

  test('inflates, fed a few bytes at a time, and checks its CRC and length', async () => {
    assert.deepEqual(await gunzip(zlib.gzipSync(data)), { out: data })
    assert.deepEqual(await gunzip(zlib.gzipSync(data), 64 * 1024), { out: data })
    const bad = zlib.gzipSync(data)
    bad.writeUInt32LE((bad.readUInt32LE(bad.length - 8) ^ 1) >>> 0, bad.length - 8)
    assert.deepEqual(await gunzip(bad), { code: 'GZIP_CORRUPT' })
  })

  test('reads header names, comments, extra fields and a header CRC', async () => {
    const raw = zlib.gzipSync(data)
    const name = Buffer.from('hello.tar\0comment\0')
    const head = Buffer.from([0x1f, 0x8b, 8, 0x04 | 0x08 | 0x10 | 0x02, 0, 0, 0, 0, 0, 3, 3, 0, 1, 2, 3])
    const upToCrc = Buffer.concat([head, name])
    const crc = Buffer.alloc(2)
    crc.writeUInt16LE(zlib.crc32(upToCrc) & 0xffff)
    const gz = Buffer.concat([upToCrc, crc, raw.subarray(10)])
    assert.equal(gzipHeaderLength(gz), upToCrc.length + 2)
    assert.equal(gzipHeaderLength(gz.subarray(0, 14)), null, 'needs more bytes')
    assert.deepEqual(await gunzip(gz), { out: data })
    crc[0]! ^= 1
    assert.equal(codeOf(() => gzipHeaderLength(Buffer.concat([upToCrc, crc]))), 'GZIP_CORRUPT')
    assert.equal(codeOf(() => gzipHeaderLength(Buffer.from([0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0]))), 'GZIP_CORRUPT')
    assert.equal(codeOf(() => gzipHeaderLength(Buffer.from([0x1f, 0x8b, 8, 0x20, 0, 0, 0, 0, 0, 0]))), 'GZIP_CORRUPT')
  })

  test('refuses a second member, an empty first member, zeros or garbage after the trailer', async () => {
    const one = zlib.gzipSync(data)
    for (const after of [zlib.gzipSync('more'), Buffer.alloc(10), Buffer.from('garbage'), Buffer.from([0])]) {
      for (const size of [7, 64 * 1024]) assert.deepEqual(await gunzip(Buffer.concat([one, after]), size), { code: 'TARBALL_TRAILING_DATA' })
    }
    assert.deepEqual(await gunzip(Buffer.concat([zlib.gzipSync(''), one])), { code: 'TARBALL_TRAILING_DATA' })
  })

  test('a member cut short, in the header, the deflate data or the trailer, is truncated', async () => {
    const one = zlib.gzipSync(data)
    for (const cut of [5, 40, one.length - 4]) assert.deepEqual(await gunzip(one.subarray(0, cut)), { code: 'GZIP_TRUNCATED' }, `cut at ${cut}`)
  })
})

describe('tar framing', () => {
  const archive = tarBytes(releaseSkeleton())

  test('finds the end marker at any chunking, and the zero padding after it is not archive', () => {
    const padded = Buffer.concat([archive, Buffer.alloc(10240)])
    for (const size of [1, 100, 512, 513, 64 * 1024]) {
      const f = new TarFramer()
      let taken = 0
      for (let i = 0; i < padded.length; i += size) taken += f.take(padded.subarray(i, i + size))
      assert.ok(f.ended)
      assert.equal(taken, archive.length, `chunks of ${size}`)
      assert.deepEqual(Array.from({ length: 4 }, () => f.nextEntrySize()), releaseSkeleton().map((e) => Buffer.byteLength(e.body!)))
      assert.equal(f.unread, 0)
    }
  })

  test('stops short of what follows the end marker, so the caller sees it', () => {
    const f = new TarFramer()
    const input = Buffer.concat([archive, Buffer.from('after')])
    assert.equal(f.take(input), archive.length)
    assert.equal(f.take(Buffer.from('more')), 0)
    assert.ok(!isZeros(input.subarray(archive.length)))
    assert.ok(isZeros(Buffer.alloc(200_000)))
  })

  test('refuses an entry after a lone zero block and data in an end block', () => {
    const lone = tarBytes([...releaseSkeleton(), { path: '', raw: Buffer.alloc(512) }, { path: 'lib/x', body: 'x' }])
    assert.equal(codeOf(() => new TarFramer().take(lone)), 'TARBALL_TRAILING_DATA')
    const end = Buffer.alloc(1024)
    end.write('hidden!!', 148, 'latin1')
    assert.equal(codeOf(() => new TarFramer().take(Buffer.concat([tarBytes(releaseSkeleton(), { end: false }), end]))), 'TARBALL_TRAILING_DATA')
  })

  test('frames an entry by its raw size even when a pax header changes it', () => {
    const f = new TarFramer()
    f.take(tarBytes([{ path: 'a', body: '', pax: { size: '512' } }, { path: 'b', body: '' }]))
    assert.deepEqual([f.nextEntrySize(), f.nextEntrySize()], [0, 0])
    assert.ok(f.ended)
  })

  test('checks pax headers before tar applies them', () => {
    const run = (entries: Parameters<typeof tarBytes>[0]) => codeOf(() => new TarFramer().take(tarBytes(entries)))
    assert.equal(run([{ path: 'g', type: 'GlobalExtendedHeader', pax: { path: 'evil' } }]), 'TAR_FORBIDDEN_TYPE')
    assert.equal(run([{ path: 'g', type: 'GlobalExtendedHeader', pax: { comment: 'commit' } }, { path: 'a', body: 'x' }]), undefined)
    assert.equal(run([{ path: 'a', body: 'x', pax: { 'GNU.sparse.major': '1' } }]), 'TAR_FORBIDDEN_TYPE')
    assert.equal(run([{ path: 'a', body: 'x', pax: { comment: 'c'.repeat(1024 * 1024) } }]), 'TAR_FORBIDDEN_TYPE')
    assert.equal(run([{ path: 'a', body: 'x', pax: { path: 'b'.repeat(300) } }]), undefined)
    assert.equal(run([{ path: '././@LongLink', typeflag: 'N', body: 'x' }, { path: 'a', body: 'x' }]), 'TAR_FORBIDDEN_TYPE')
  })
})

describe('pax records', () => {
  test('are read by their length prefix; a malformed one is refused', () => {
    assert.deepEqual(paxKeys(paxRecords({ path: 'a=b', 'SCHILY.xattr.x': 'v\u00e9' })), ['path', 'SCHILY.xattr.x'])
    assert.deepEqual(paxKeys(Buffer.concat([paxRecords({ path: 'a' }), Buffer.alloc(3)])), ['path'], 'NUL padding')
    for (const bad of ['5 a=b\n', '99 path=x\n', 'x path=y\n', '10 pathxx\n', '9 path=x'])  assert.equal(paxKeys(Buffer.from(bad)), null, bad)
    assert.equal(paxHeaderProblem('x', Buffer.from('99 path=x\n'), 'h')?.code, 'TAR_INVALID')
  })

  test('a global header may only carry metadata that changes no path, link or size', () => {
    for (const key of ['comment', 'mtime', 'uname', 'charset']) assert.equal(paxHeaderProblem('g', paxRecords({ [key]: '1' }), 'g'), null, key)
    for (const key of ['path', 'linkpath', 'size', 'GNU.sparse.map', 'SCHILY.xattr.a']) assert.equal(paxHeaderProblem('g', paxRecords({ [key]: '1' }), 'g')?.code, 'TAR_FORBIDDEN_TYPE', key)
    assert.equal(paxHeaderProblem('x', paxRecords({ path: 'a', linkpath: 'b', size: '3' }), 'x'), null)
    assert.equal(paxHeaderProblem('x', paxRecords({ 'GNU.sparse.realsize': '9' }), 'x')?.code, 'TAR_FORBIDDEN_TYPE')
  })
})

// Hostile tarballs: each is refused with its own problem code, leaves uploads/ empty, lists no release,
// writes nothing outside the data directory, and the daemon keeps serving. Some are accepted, sanitised.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import { startDaemon, tempDir, type TestDaemon } from './helpers/daemon.js'
import { call, upload } from './helpers/http.js'
import { releaseSkeleton, tarBytes, tgz, type Entry } from './helpers/tar.js'

let d: TestDaemon
let bombDaemon: TestDaemon
let outside: string

before(async () => {
  d = await startDaemon({ BERTH_MAX_FILES: '200', BERTH_MAX_UNPACKED_BYTES: String(4 * 1024 * 1024), BERTH_MAX_PATH_DEPTH: '16' })
  bombDaemon = await startDaemon({ BERTH_MAX_GZIP_RATIO: '100' })
  outside = tempDir('berth-outside-')
})
after(async () => {
  await d.stop()
  await bombDaemon.stop()
  fs.rmSync(outside, { recursive: true, force: true })
})

/** A gzip member with an FEXTRA field, which puts `extra` at byte 12; zlib cannot write one. */
function gzipWithExtra(data: Buffer, extra: Buffer): Buffer {
  const head = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra.length & 0xff, extra.length >> 8])
  const tail = Buffer.alloc(8)
  tail.writeUInt32LE(zlib.crc32(data), 0)
  tail.writeUInt32LE(data.length, 4)
  return Buffer.concat([head, extra, zlib.deflateRawSync(data), tail])
}

/** Bytes that gzip about 300x: past the 100x limit, under node-tar's own 1000x. */
function sparseNoise(size: number): Buffer {
  const b = Buffer.alloc(size)
  let x = 12345
  for (let i = 0; i < size; i += 1024) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    b[i] = x & 0xff
  }
  return b
}

function withSkeleton(...extra: Entry[]): Buffer {
  return tgz([...releaseSkeleton(), ...extra])
}

/** A release inside one wrapper directory, as `tar czf hello.tgz hello-0.1.0/` makes it: W is the release root. */
const W = 'hello-0.1.0'
function wrapped(before: Entry[], after: Entry[] = []): Buffer {
  return tgz([...before, ...releaseSkeleton().map((e) => ({ ...e, path: `${W}/${e.path}` })), ...after])
}

async function refused(daemon: TestDaemon, body: Buffer, code: string, entry?: string): Promise<void> {
  const res = await upload(daemon.url, 'hello', body, { token: daemon.adminToken })
  assert.equal(res.headers.get('content-type'), 'application/problem+json', res.text)
  assert.equal(res.body.code, code, res.text)
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`)
  assert.ok(res.body.detail.length > 20, 'the sentence says what was wrong')
  if (entry) assert.equal(res.body.entry, entry)
  assert.deepEqual(fs.readdirSync(path.join(daemon.dataDir, 'uploads')), [], 'uploads/ is empty')
  assert.deepEqual(fs.readdirSync(outside), [], 'nothing was written outside the data directory')
  const releasesDir = path.join(daemon.dataDir, 'apps', 'hello', 'releases')
  assert.deepEqual(fs.existsSync(releasesDir) ? fs.readdirSync(releasesDir) : [], [], 'no release directory')
  const list = await call(`${daemon.url}/v1/apps/hello/releases`, { token: daemon.adminToken })
  assert.ok(list.status === 404 || list.body.releases.length === 0, 'no release is listed')
  const health = await call(`${daemon.url}/healthz`)
  assert.equal(health.status, 200, 'the daemon still serves')
}

const cases: [string, () => Buffer, string, string?][] = [
  ['absolute path', () => withSkeleton({ path: `${outside}/pwned`, body: 'x' }), 'TAR_UNSAFE_PATH'],
  ['.. traversal', () => withSkeleton({ path: '../../../../pwned', body: 'x' }), 'TAR_UNSAFE_PATH', '../../../../pwned'],
  ['.. in the middle', () => withSkeleton({ path: 'lib/../../pwned', body: 'x' }), 'TAR_UNSAFE_PATH'],
  ['backslash path', () => withSkeleton({ path: 'lib\\..\\..\\pwned', body: 'x' }), 'TAR_UNSAFE_PATH'],
  ['symlink to an absolute path outside', () => withSkeleton({ path: 'lib/out', type: 'SymbolicLink', linkpath: outside }), 'TAR_LINK_ESCAPE', 'lib/out'],
  ['symlink with .. out of the release', () => withSkeleton({ path: 'lib/out', type: 'SymbolicLink', linkpath: '../../..' }), 'TAR_LINK_ESCAPE'],
  [
    'symlink chain escaping in two steps',
    () => withSkeleton({ path: 'lib/up', type: 'SymbolicLink', linkpath: '..' }, { path: 'esc', type: 'SymbolicLink', linkpath: 'lib/up/..' }),
    'TAR_LINK_ESCAPE',
    'esc',
  ],
  [
    'link made later changes where an earlier one resolves',
    () => withSkeleton({ path: 'a', type: 'SymbolicLink', linkpath: 'x/y/..' }, { path: 'x/y', type: 'SymbolicLink', linkpath: '..' }),
    'TAR_LINK_ESCAPE',
  ],
  ['symlink then a file written through it', () => withSkeleton({ path: 'lnk', type: 'SymbolicLink', linkpath: 'lib' }, { path: 'lnk/pwned', body: 'x' }), 'TAR_PATH_THROUGH_LINK', 'lnk/pwned'],
  ['hard link to a path outside', () => withSkeleton({ path: 'lib/hl', type: 'Link', linkpath: '/etc/passwd' }), 'TAR_LINK_ESCAPE'],
  ['hard link with ..', () => withSkeleton({ path: 'lib/hl', type: 'Link', linkpath: '../../etc/passwd' }), 'TAR_LINK_ESCAPE'],
  ['hard link to a name not in the archive', () => withSkeleton({ path: 'lib/hl', type: 'Link', linkpath: 'lib/nothing' }), 'TAR_LINK_ESCAPE'],
  ['character device', () => withSkeleton({ path: 'dev/null', type: 'CharacterDevice' }), 'TAR_FORBIDDEN_TYPE', 'dev/null'],
  ['block device', () => withSkeleton({ path: 'dev/sda', type: 'BlockDevice' }), 'TAR_FORBIDDEN_TYPE'],
  ['fifo', () => withSkeleton({ path: 'lib/fifo', type: 'FIFO' }), 'TAR_FORBIDDEN_TYPE'],
  // Types the tar Parser would skip (another tar would unpack them) and headers that change later entries.
  ['a GNU sparse file (type S)', () => withSkeleton({ path: 'lib/sparse', type: 'SparseFile', body: 'sparse data' }), 'TAR_FORBIDDEN_TYPE', 'lib/sparse'],
  ['a Solaris ACL entry', () => withSkeleton({ path: 'lib/acl', type: 'SolarisACL', body: 'user::rw-' }), 'TAR_FORBIDDEN_TYPE', 'lib/acl'],
  ['a tape volume header', () => tgz([{ path: 'vol1', type: 'TapeVolumeHeader' }, ...releaseSkeleton()]), 'TAR_FORBIDDEN_TYPE', 'vol1'],
  ['a multi-volume continuation', () => withSkeleton({ path: 'lib/rest', type: 'ContinuationFile', body: 'rest of a file' }), 'TAR_FORBIDDEN_TYPE'],
  ['an unknown type with a body', () => withSkeleton({ path: 'lib/odd', typeflag: 'Z', body: Buffer.alloc(2000, 0x41) }), 'TAR_FORBIDDEN_TYPE', 'lib/odd'],
  ['an unknown lowercase vendor type', () => withSkeleton({ path: 'lib/vendor', typeflag: 'q' }), 'TAR_FORBIDDEN_TYPE'],
  ['an old GNU \'N\' long-name header', () => withSkeleton({ path: '././@LongLink', typeflag: 'N', body: 'lib/renamed\0' }, { path: 'lib/short', body: 'x' }), 'TAR_FORBIDDEN_TYPE'],
  ['a GNU dump directory', () => withSkeleton({ path: 'lib/dump', type: 'GNUDumpDir', body: 'Yfile\0\0' }), 'TAR_FORBIDDEN_TYPE'],
  [
    'a GNU sparse file in pax format 1.0',
    () => withSkeleton({ path: 'lib/GNUSparseFile.0/data', body: '1\n0\n4\n', pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'lib/data', 'GNU.sparse.realsize': '1048576' } }),
    'TAR_FORBIDDEN_TYPE',
  ],
  ['a GNU sparse file in pax format 0.1', () => withSkeleton({ path: 'lib/data', body: 'abcd', pax: { 'GNU.sparse.size': '1048576', 'GNU.sparse.numblocks': '1', 'GNU.sparse.map': '0,4' } }), 'TAR_FORBIDDEN_TYPE'],
  ['a pax header too large for tar to read', () => withSkeleton({ path: 'lib/big-pax', body: 'x', pax: { comment: 'c'.repeat(1024 * 1024 + 10) } }), 'TAR_FORBIDDEN_TYPE'],
  ['a global pax header that sets the path', () => tgz([{ path: 'pax_global_header', type: 'GlobalExtendedHeader', pax: { path: 'lib/evil' } }, ...releaseSkeleton()]), 'TAR_FORBIDDEN_TYPE'],
  [
    'a global pax header that retargets every later link',
    () => tgz([{ path: 'pax_global_header', type: 'GlobalExtendedHeader', pax: { linkpath: 'bin/hello' } }, ...releaseSkeleton(), { path: 'lib/soft', type: 'SymbolicLink', linkpath: '../bin/hello' }]),
    'TAR_FORBIDDEN_TYPE',
  ],
  ['a global pax header that resizes every later entry', () => tgz([...releaseSkeleton().slice(0, 2), { path: 'pax_global_header', type: 'GlobalExtendedHeader', pax: { size: '0' } }, ...releaseSkeleton().slice(2)]), 'TAR_FORBIDDEN_TYPE'],
  ['duplicate file entries', () => withSkeleton({ path: 'lib/x', body: 'one' }, { path: 'lib/x', body: 'two' }), 'TAR_DUPLICATE_ENTRY', 'lib/x'],
  ['a file replaced by a link', () => withSkeleton({ path: 'lib/x', body: 'one' }, { path: 'lib/x', type: 'SymbolicLink', linkpath: '../bin/hello' }), 'TAR_DUPLICATE_ENTRY'],
  ['names equal after Unicode normalisation', () => withSkeleton({ path: 'lib/caf\u00e9', body: 'nfc' }, { path: 'lib/cafe\u0301', body: 'nfd' }), 'TAR_DUPLICATE_ENTRY'],
  ['a name longer than 255 bytes', () => withSkeleton({ path: `lib/${'n'.repeat(300)}`, body: 'x' }), 'TAR_PATH_TOO_LONG'],
  ['nesting deeper than the limit', () => withSkeleton({ path: `${'d/'.repeat(20)}f`, body: 'x' }), 'TAR_PATH_TOO_DEEP'],
  ['too many entries', () => withSkeleton(...Array.from({ length: 250 }, (_, i) => ({ path: `lib/f${i}`, body: 'x' }))), 'TAR_TOO_MANY_FILES'],
  ['an entry larger than the unpacked limit', () => withSkeleton({ path: 'lib/huge', body: Buffer.alloc(5 * 1024 * 1024) }), 'TAR_TOO_LARGE', 'lib/huge'],
  ['a corrupt tar header', () => zlib.gzipSync(Buffer.concat([tarBytes(releaseSkeleton()).subarray(0, 512 * 2), Buffer.alloc(512, 0x41), Buffer.alloc(1024)])), 'TAR_INVALID'],
  ['a tar that ends inside an entry', () => zlib.gzipSync(tarBytes([...releaseSkeleton(), { path: 'lib/big', body: Buffer.alloc(4000, 1) }], { end: false }).subarray(0, 512 * 12)), 'TAR_TRUNCATED'],
  ['gzip truncated', () => withSkeleton({ path: 'lib/r', body: Buffer.alloc(100_000, 7) }).subarray(0, 60), 'GZIP_TRUNCATED'],
  ['gzip with trailing garbage', () => Buffer.concat([withSkeleton(), Buffer.from('trailing bytes that are not gzip')]), 'TARBALL_TRAILING_DATA'],
  // Data after the end of the archive: after the two zero blocks inside the gzip stream, or a second member.
  ['garbage after the end-of-archive marker, inside the gzip stream', () => zlib.gzipSync(Buffer.concat([tarBytes(releaseSkeleton()), Buffer.from('garbage after the end')])), 'TARBALL_TRAILING_DATA'],
  ['a second tar archive after the first one ends', () => zlib.gzipSync(Buffer.concat([tarBytes(releaseSkeleton()), tarBytes([{ path: 'lib/hidden', body: 'seen by tar -i only' }])])), 'TARBALL_TRAILING_DATA'],
  [
    'zero padding, then data, then more zero padding',
    () => zlib.gzipSync(Buffer.concat([tarBytes(releaseSkeleton()), Buffer.alloc(10240), Buffer.from('x'), Buffer.alloc(20480)])),
    'TARBALL_TRAILING_DATA',
  ],
  ['entries after a lone zero block, where bsdtar stops', () => withSkeleton({ path: '', raw: Buffer.alloc(512) }, { path: 'lib/after-zero', body: 'x' }), 'TARBALL_TRAILING_DATA'],
  [
    'data hidden in the checksum field of the end-of-archive marker',
    () => {
      const end = Buffer.alloc(1024)
      end.write('hidden!!', 148, 'latin1')
      return zlib.gzipSync(Buffer.concat([tarBytes(releaseSkeleton(), { end: false }), end]))
    },
    'TARBALL_TRAILING_DATA',
  ],
  ['a plain tar with data after its end', () => Buffer.concat([tarBytes(releaseSkeleton()), Buffer.from('trailing bytes that are not tar')]), 'TARBALL_TRAILING_DATA'],
  ['a second gzip member after the first', () => Buffer.concat([withSkeleton(), tgz([{ path: 'lib/hidden', body: 'x' }])]), 'TARBALL_TRAILING_DATA'],
  ['a second gzip member of zeros only', () => Buffer.concat([withSkeleton(), zlib.gzipSync(Buffer.alloc(10240))]), 'TARBALL_TRAILING_DATA'],
  [
    'the tar split across two gzip members',
    () => {
      const t = tarBytes(releaseSkeleton())
      return Buffer.concat([zlib.gzipSync(t.subarray(0, 1024)), zlib.gzipSync(t.subarray(1024))])
    },
    'TARBALL_TRAILING_DATA',
  ],
  ['an empty gzip member before the real one', () => Buffer.concat([zlib.gzipSync(Buffer.alloc(0)), withSkeleton()]), 'TARBALL_TRAILING_DATA'],
  ['a tar without its end-of-archive marker', () => tgz(releaseSkeleton(), { end: false }), 'TAR_TRUNCATED'],
  [
    'a pax size that swallows the next header',
    () => withSkeleton({ path: 'lib/cover', body: '', pax: { size: '512' } }, { path: 'lib/hidden', body: '' }),
    'TAR_INVALID',
  ],
  // A compression layer inside the gzip one: the tar Parser would undo a gzip layer where no limit sees it.
  ['gzip inside gzip', () => zlib.gzipSync(withSkeleton()), 'TARBALL_NESTED_COMPRESSION'],
  ['gzip inside gzip inside gzip', () => zlib.gzipSync(zlib.gzipSync(withSkeleton())), 'TARBALL_NESTED_COMPRESSION'],
  ['an inner gzip whose header puts "ustar" at byte 257', () => zlib.gzipSync(gzipWithExtra(tarBytes(releaseSkeleton()), Buffer.concat([Buffer.alloc(245), Buffer.from('ustar'), Buffer.alloc(50)]))), 'TARBALL_NESTED_COMPRESSION'],
  ['bzip2 inside gzip', () => zlib.gzipSync(Buffer.concat([Buffer.from('BZh91AY&SY', 'latin1'), Buffer.alloc(2000, 0x5a)])), 'TARBALL_NESTED_COMPRESSION'],
  ['xz inside gzip', () => zlib.gzipSync(Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(2000, 1)])), 'TARBALL_NESTED_COMPRESSION'],
  ['zstd inside gzip', () => zlib.gzipSync(Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(2000, 2)])), 'TARBALL_NESTED_COMPRESSION'],
  ['a zstd skippable frame inside gzip', () => zlib.gzipSync(Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.alloc(2000, 3)])), 'TARBALL_NESTED_COMPRESSION'],
  ['a short gzip inside gzip (under 512 bytes)', () => zlib.gzipSync(zlib.gzipSync(Buffer.from('tiny'))), 'TARBALL_NESTED_COMPRESSION'],
  ['a zip file', () => Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(600, 1)]), 'NOT_A_TARBALL'],
  ['an empty body', () => Buffer.alloc(0), 'UPLOAD_EMPTY'],
  ['a release without bin/APP', () => tgz(releaseSkeleton().filter((e) => !e.path.startsWith('bin/'))), 'RELEASE_INVALID'],
  ['start_erl.data that lies about the version', () => tgz(releaseSkeleton().map((e) => (e.path === 'releases/start_erl.data' ? { ...e, body: '13.1.5 9.9.9\n' } : e))), 'RELEASE_INVALID'],
  [
    'two apps in one tarball',
    () => withSkeleton({ path: 'bin/other', body: '#!/bin/sh\n', mode: 0o755 }, { path: 'releases/0.1.0/other.rel', body: '{release,{"other","0.1.0"},{erts,"13.1.5"},[]}.\n' }),
    'RELEASE_MULTIPLE_APPS',
  ],
  ['not a release at all', () => tgz([{ path: 'README.md', body: 'hello' }, { path: 'src/main.c', body: 'int main(){}' }]), 'RELEASE_INVALID'],
  // Links are checked against the release root: with a wrapper, that is the wrapper, not the archive root,
  // whose parent after the move is apps/APP/releases/ with the sibling releases in it.
  ['wrapped: a symlink up to the archive root', () => wrapped([], [{ path: `${W}/lib/up`, type: 'SymbolicLink', linkpath: '../..' }]), 'TAR_LINK_ESCAPE', `${W}/lib/up`],
  ['wrapped: a symlink into a sibling release', () => wrapped([], [{ path: `${W}/bin/sib`, type: 'SymbolicLink', linkpath: '../../hello-0.0.9-0123456789ab/bin/hello' }]), 'TAR_LINK_ESCAPE'],
  ['wrapped: a symlink out and back in by the wrapper name', () => wrapped([], [{ path: `${W}/bin/x`, type: 'SymbolicLink', linkpath: `../../${W}/bin/hello` }]), 'TAR_LINK_ESCAPE'],
  ['wrapped: the escaping link comes before the wrapper is known', () => wrapped([{ path: `${W}/up`, type: 'SymbolicLink', linkpath: '..' }]), 'TAR_LINK_ESCAPE', `${W}/up`],
  [
    'wrapped: a symlink that climbs out through another link',
    () => wrapped([], [{ path: `${W}/lib/up`, type: 'SymbolicLink', linkpath: '..' }, { path: `${W}/esc`, type: 'SymbolicLink', linkpath: 'lib/up/..' }]),
    'TAR_LINK_ESCAPE',
    `${W}/esc`,
  ],
  [
    'wrapped: a link made later moves an earlier one out',
    () => wrapped([{ path: `${W}/a`, type: 'SymbolicLink', linkpath: 'x/y/..' }], [{ path: `${W}/x/y`, type: 'SymbolicLink', linkpath: '..' }]),
    'TAR_LINK_ESCAPE',
  ],
  [
    'wrapped: a hard link through a directory symlink that leaves the wrapper',
    () => wrapped([], [{ path: `${W}/d`, type: 'SymbolicLink', linkpath: '..' }, { path: `${W}/h`, type: 'Link', linkpath: `${W}/d/${W}/bin/hello` }]),
    'TAR_LINK_ESCAPE',
  ],
  ['two wrapping directories', () => tgz(releaseSkeleton().map((e) => ({ ...e, path: `a/b/${e.path}` }))), 'RELEASE_INVALID'],
]

describe('hostile tarballs are refused with a precise code', () => {
  for (const [name, make, code, entry] of cases) {
    test(`${name} → ${code}`, async () => refused(d, make(), code, entry))
  }

  test('a gzip bomb → GZIP_RATIO_EXCEEDED, without unpacking it', async () => {
    // 200 MiB of zeros compresses ~1000x; the ratio check trips long before the disk sees it.
    const bomb = withSkeleton({ path: 'lib/zeros', body: Buffer.alloc(200 * 1024 * 1024) })
    assert.ok(bomb.length < 1024 * 1024)
    await refused(bombDaemon, bomb, 'GZIP_RATIO_EXCEEDED')
  })
})

describe('a compression layer inside the compression is refused before it expands', () => {
  test('a gzip bomb inside gzip → TARBALL_NESTED_COMPRESSION, with nothing written', async () => {
    // The inner layer expands ~300x, the outer one ~1x: a ratio limit on the outer layer alone lets it through.
    const inner = tgz([...releaseSkeleton(), { path: 'lib/noise', body: sparseNoise(20 * 1024 * 1024) }])
    const bomb = zlib.gzipSync(inner)
    assert.ok(bomb.length < 200 * 1024, `${bomb.length}`)
    await refused(bombDaemon, bomb, 'TARBALL_NESTED_COMPRESSION')
  })
})

describe('what is accepted, and how it is sanitised', () => {
  test('setuid/setgid/world-writable bits are dropped; inner hard and symbolic links are kept', async () => {
    const res = await upload(
      d.url,
      'hello',
      withSkeleton(
        { path: 'lib/suid', body: 'x', mode: 0o6777 },
        { path: 'lib/ww', body: 'x', mode: 0o666 },
        { path: 'lib/hard', type: 'Link', linkpath: 'lib/suid' },
        { path: 'lib/soft', type: 'SymbolicLink', linkpath: '../bin/hello' },
      ),
      { token: d.adminToken },
    )
    assert.equal(res.status, 201, res.text)
    const dir = path.join(d.dataDir, 'apps', 'hello', 'releases', res.body.id)
    assert.equal(fs.statSync(path.join(dir, 'lib/suid')).mode & 0o7777, 0o555)
    assert.equal(fs.statSync(path.join(dir, 'lib/ww')).mode & 0o7777, 0o444)
    assert.equal(fs.statSync(path.join(dir, 'lib/hard')).ino, fs.statSync(path.join(dir, 'lib/suid')).ino)
    assert.equal(fs.readlinkSync(path.join(dir, 'lib/soft')), '../bin/hello')
    await call(`${d.url}/v1/apps/hello/releases/${res.body.id}`, { method: 'DELETE', token: d.adminToken })
  })

  test('tarballs GNU tar writes, in its gnu, pax and ustar formats, with long names and links, are accepted', async () => {
    const src = tempDir('berth-gnutar-')
    try {
      const long = `lib/hello-0.3.0/priv/${'n'.repeat(90)}/${'m'.repeat(60)}.txt`
      for (const e of [...releaseSkeleton('hello', '0.3.0'), { path: long, body: 'long name' }]) {
        fs.mkdirSync(path.join(src, path.dirname(e.path)), { recursive: true })
        fs.writeFileSync(path.join(src, e.path), e.body!)
      }
      fs.symlinkSync('../bin/hello', path.join(src, 'lib', 'soft'))
      for (const format of ['gnu', 'posix', 'ustar']) {
        const out = path.join(src, '..', `${path.basename(src)}-${format}.tgz`)
        const names = format === 'ustar' ? ['bin', 'releases', 'lib/soft', 'lib/hello-0.3.0/ebin'] : ['.']
        const r = spawnSync('tar', ['-czf', out, `--format=${format}`, '-C', src, ...names])
        assert.equal(r.status, 0, r.stderr.toString())
        const res = await upload(d.url, 'hello', fs.readFileSync(out), { token: d.adminToken })
        fs.rmSync(out)
        assert.equal(res.status, 201, `${format}: ${res.text}`)
        const dir = path.join(d.dataDir, 'apps', 'hello', 'releases', res.body.id)
        assert.equal(fs.readlinkSync(path.join(dir, 'lib/soft')), '../bin/hello')
        if (format !== 'ustar') assert.equal(fs.readFileSync(path.join(dir, long), 'utf8'), 'long name')
        await call(`${d.url}/v1/apps/hello/releases/${res.body.id}`, { method: 'DELETE', token: d.adminToken })
      }
    } finally {
      fs.rmSync(src, { recursive: true, force: true })
    }
  })

  test('a global pax header with only a comment (git archive writes one) is accepted', async () => {
    const res = await upload(d.url, 'hello', tgz([{ path: 'pax_global_header', type: 'GlobalExtendedHeader', pax: { comment: '0123456789abcdef0123456789abcdef01234567' } }, ...releaseSkeleton('hello', '2.0.0')]), { token: d.adminToken })
    assert.equal(res.status, 201, res.text)
    await call(`${d.url}/v1/apps/hello/releases/${res.body.id}`, { method: 'DELETE', token: d.adminToken })
  })

  test('one wrapping directory is looked through, links inside it kept; a plain (uncompressed) tar is accepted', async () => {
    const W1 = 'hello-1.0.0'
    const inner: Entry[] = [
      { path: `${W1}/lib/soft`, type: 'SymbolicLink', linkpath: '../bin/hello' },
      { path: `${W1}/lib/up`, type: 'SymbolicLink', linkpath: '..' },
      { path: `${W1}/lib/hard`, type: 'Link', linkpath: `${W1}/bin/hello` },
    ]
    const wrapped = await upload(d.url, 'hello', tgz([...releaseSkeleton('hello', '1.0.0').map((e) => ({ ...e, path: `${W1}/${e.path}` })), ...inner]), { token: d.adminToken })
    assert.equal(wrapped.status, 201, wrapped.text)
    assert.equal(wrapped.body.version, '1.0.0')
    const dir = path.join(d.dataDir, 'apps', 'hello', 'releases', wrapped.body.id)
    assert.ok(fs.existsSync(path.join(dir, 'bin', 'hello')))
    assert.equal(fs.readlinkSync(path.join(dir, 'lib/soft')), '../bin/hello')
    assert.equal(fs.realpathSync(path.join(dir, 'lib/up')), fs.realpathSync(dir))
    assert.equal(fs.statSync(path.join(dir, 'lib/hard')).ino, fs.statSync(path.join(dir, 'bin/hello')).ino)
    const plain = await upload(d.url, 'hello', tarBytes(releaseSkeleton('hello', '1.0.1')), { token: d.adminToken })
    assert.equal(plain.status, 201, plain.text)
    assert.equal(plain.body.version, '1.0.1')
    for (const id of [wrapped.body.id, plain.body.id]) await call(`${d.url}/v1/apps/hello/releases/${id}`, { method: 'DELETE', token: d.adminToken })
    assert.deepEqual(fs.readdirSync(path.join(d.dataDir, 'uploads')), [])
  })
})

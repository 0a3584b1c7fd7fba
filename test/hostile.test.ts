// Hostile tarballs: each is refused with its own problem code, leaves uploads/ empty, lists no release,
// writes nothing outside the data directory, and the daemon keeps serving. Some are accepted, sanitised.

import assert from 'node:assert/strict'
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

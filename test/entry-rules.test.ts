// The tar entry rules on their own: header fields in, a plan or a problem code out, with no tarball and no daemon.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { EntryRules, entryKind, expansionProblem, normalisePath, releaseRootOf, resolveSymlink, type EntryHead } from '../src/intake/entry-rules.js'

const limits = { maxUnpackedBytes: 1000, maxFiles: 10, maxPathDepth: 4 }

function refuses(fn: () => unknown, code: string, entry?: string): void {
  assert.throws(fn, (err: { code?: string; extra?: { entry?: string } }) => {
    assert.equal(err.code, code)
    if (entry !== undefined) assert.equal(err.extra?.entry, entry)
    return true
  })
}

function file(p: string, size = 1): EntryHead {
  return { path: p, type: 'File', size }
}

function symlink(p: string, linkpath: string): EntryHead {
  return { path: p, type: 'SymbolicLink', linkpath, size: 0 }
}

function rules(...entries: EntryHead[]): EntryRules {
  const r = new EntryRules(limits)
  for (const e of entries) r.admit(e)
  return r
}

describe('paths', () => {
  test('are normalised: no "." parts, no doubled or trailing slashes, NFC', () => {
    assert.equal(normalisePath('./a//b/', 'x', 4), 'a/b')
    assert.equal(normalisePath('./', 'x', 4), '')
    assert.equal(normalisePath('cafe\u0301', 'x', 4), 'caf\u00e9')
  })

  test('that leave the release or are not plain relative paths are refused', () => {
    for (const p of ['/etc/passwd', '../x', 'a/../../x', 'a/..', 'a\\b', 'C:x', 'a\0b']) refuses(() => normalisePath(p, p, 4), 'TAR_UNSAFE_PATH', p)
    refuses(() => normalisePath('../x', 'lnk', 4, 'TAR_LINK_ESCAPE'), 'TAR_LINK_ESCAPE', 'lnk')
  })

  test('deeper or longer than the limits are refused', () => {
    refuses(() => normalisePath('a/b/c/d/e', 'x', 4), 'TAR_PATH_TOO_DEEP')
    refuses(() => normalisePath(`a/${'n'.repeat(256)}`, 'x', 4), 'TAR_PATH_TOO_LONG')
    refuses(() => normalisePath(Array.from({ length: 4 }, () => 'n'.repeat(250)).join('/') + 'x'.repeat(100), 'x', 8), 'TAR_PATH_TOO_LONG')
  })
})

describe('types', () => {
  test('files, directories and links are the only ones allowed', () => {
    assert.equal(entryKind('File', 'x'), 'file')
    assert.equal(entryKind('OldFile', 'x'), 'file')
    assert.equal(entryKind('ContiguousFile', 'x'), 'file')
    assert.equal(entryKind('Directory', 'x'), 'dir')
    assert.equal(entryKind('SymbolicLink', 'x'), 'symlink')
    assert.equal(entryKind('Link', 'x'), 'hardlink')
    for (const t of ['CharacterDevice', 'BlockDevice', 'FIFO', 'GNUDumpDir', 'SparseFile', 'Unsupported', 'SolarisACL']) refuses(() => entryKind(t, 'dev/x'), 'TAR_FORBIDDEN_TYPE', 'dev/x')
  })
})

describe('entries', () => {
  test('a file records its parents as directories; a directory entry may repeat an implied one', () => {
    const r = rules(file('a/b/c'))
    assert.equal(r.nodes.get('a'), 'dir')
    assert.equal(r.nodes.get('a/b'), 'dir')
    assert.equal(r.nodes.get('a/b/c'), 'file')
    assert.deepEqual(r.admit({ path: 'a/b/', type: 'Directory', size: 0 }), { kind: 'dir', rel: 'a/b' })
    assert.deepEqual(r.admit({ path: './', type: 'Directory', size: 0 }), { kind: 'none' })
  })

  test('a name given twice, also after Unicode normalisation, is refused', () => {
    refuses(() => rules(file('lib/x'), file('lib/x')), 'TAR_DUPLICATE_ENTRY', 'lib/x')
    refuses(() => rules(file('caf\u00e9'), file('cafe\u0301')), 'TAR_DUPLICATE_ENTRY')
    refuses(() => rules(file('lib/x'), symlink('lib/x', 'y')), 'TAR_DUPLICATE_ENTRY')
    refuses(() => rules(file('lib/x'), { path: 'lib/x', type: 'Directory', size: 0 }), 'TAR_DUPLICATE_ENTRY')
  })

  test('nothing is written through a symlink or inside a file', () => {
    refuses(() => rules(symlink('lnk', 'lib'), file('lnk/pwned')), 'TAR_PATH_THROUGH_LINK', 'lnk/pwned')
    refuses(() => rules(file('f'), file('f/g')), 'TAR_INVALID', 'f/g')
  })

  test('hard links may only share a regular file made earlier', () => {
    const r = rules(file('lib/a'))
    assert.deepEqual(r.admit({ path: 'lib/b', type: 'Link', linkpath: 'lib/a', size: 0 }), { kind: 'hardlink', rel: 'lib/b', from: 'lib/a' })
    assert.equal(r.nodes.get('lib/b'), 'file')
    for (const to of ['lib/missing', '/etc/passwd', '../x', 'lib']) refuses(() => r.admit({ path: `h-${to.length}`, type: 'Link', linkpath: to, size: 0 }), 'TAR_LINK_ESCAPE')
    r.admit(symlink('s', 'lib/a'))
    refuses(() => r.admit({ path: 'h2', type: 'Link', linkpath: 's', size: 0 }), 'TAR_LINK_ESCAPE')
    r.admit(symlink('d', 'lib'))
    refuses(() => r.admit({ path: 'h3', type: 'Link', linkpath: 'd/a', size: 0 }), 'TAR_LINK_ESCAPE')
  })

  test('the entry count and the unpacked size are limited, the size by declared and by written bytes', () => {
    refuses(() => rules(...Array.from({ length: 11 }, (_, i) => file(`f${i}`))), 'TAR_TOO_MANY_FILES')
    refuses(() => rules(file('big', 1001)), 'TAR_TOO_LARGE', 'big')
    const first = rules(file('a', 600))
    first.addBytes('a', 600)
    refuses(() => first.admit(file('b', 600)), 'TAR_TOO_LARGE', 'b')
    const r = rules(file('a', 10))
    r.addBytes('a', 999)
    refuses(() => r.addBytes('a', 2), 'TAR_TOO_LARGE', 'a')
  })
})

describe('symlinks', () => {
  test('are resolved through other links the way the kernel would', () => {
    const links = new Map([['lib/up', '..'], ['x', 'lib/up/bin']])
    assert.equal(resolveSymlink(links, 'x', ''), 'bin')
    assert.equal(resolveSymlink(new Map([['a/b', '../c/./d']]), 'a/b', ''), 'c/d')
  })

  test('that leave the release, directly or through another link, are refused', () => {
    refuses(() => rules(symlink('lib/out', '/etc')), 'TAR_LINK_ESCAPE', 'lib/out')
    refuses(() => rules(symlink('lib/out', '')), 'TAR_LINK_ESCAPE')
    refuses(() => rules(symlink('lib/out', '../..')), 'TAR_LINK_ESCAPE')
    refuses(() => rules(symlink('lib/up', '..'), symlink('esc', 'lib/up/..')), 'TAR_LINK_ESCAPE', 'esc')
    refuses(() => resolveSymlink(new Map([['a', 'b'], ['b', 'a']]), 'a', ''), 'TAR_LINK_ESCAPE')
  })

  test('a link made later that changes where an earlier one resolves is caught at the end', () => {
    const r = rules(symlink('a', 'x/y/..'), symlink('x/y', '..'))
    refuses(() => r.finish(), 'TAR_LINK_ESCAPE', 'a')
  })
})

describe('the release root', () => {
  const release = (prefix: string) => [file(`${prefix}bin/hello`), file(`${prefix}releases/0.1.0/hello.rel`)]

  test('is the archive root, or its one top-level directory when that holds releases/', () => {
    const root = (...entries: EntryHead[]) => {
      const r = rules(...entries)
      return releaseRootOf(r.nodes, r.top)
    }
    assert.equal(root(...release('')), '')
    assert.equal(root(...release('W/')), 'W')
    assert.equal(root(file('W/bin/hello')), '', 'no releases/ inside: not a wrapper')
    assert.equal(root(...release('W/'), file('other')), '', 'something beside it: not a wrapper')
    assert.equal(root(file('releases/releases/x')), '', 'releases/ at the top wins')
    assert.equal(root(...release('W/'), symlink('W2', 'W')), '')
  })

  test('bounds every symlink once the wrapper is known, including ones made before it was', () => {
    const early = rules(symlink('W/up', '..'), ...release('W/'))
    refuses(() => early.finish(), 'TAR_LINK_ESCAPE', 'W/up')
    refuses(() => rules(...release('W/'), symlink('W/bin/x', '../../W/bin/hello')).finish(), 'TAR_LINK_ESCAPE', 'W/bin/x')
    refuses(() => rules(...release('W/'), symlink('W/lib/up', '..'), symlink('W/esc', 'lib/up/..')).finish(), 'TAR_LINK_ESCAPE', 'W/esc')
    const fine = rules(...release('W/'), symlink('W/lib/up', '..'), symlink('W/lib/soft', '../bin/hello'), { path: 'W/lib/hard', type: 'Link', linkpath: 'W/bin/hello', size: 0 })
    assert.equal(fine.finish(), 'W')
    assert.equal(resolveSymlink(fine.symlinks, 'W/lib/soft', 'W'), 'W/bin/hello')
  })

  test('without a wrapper the same links are measured from the archive root', () => {
    assert.equal(rules(...release(''), symlink('lib/x', '../bin/hello')).finish(), '')
    refuses(() => rules(...release(''), symlink('lib/x', '../../bin/hello')).finish(), 'TAR_LINK_ESCAPE')
  })

  test('a symlink that is itself outside the release root is refused', () => {
    refuses(() => resolveSymlink(new Map([['X/l', 'a']]), 'X/l', 'W'), 'TAR_LINK_ESCAPE', 'X/l')
  })
})

describe('stream limits', () => {
  const all = { ...limits, maxGzipRatio: 10, ratioGraceBytes: 100 }
  test('the gzip ratio counts after the grace bytes; plain tar has no ratio', () => {
    assert.equal(expansionProblem(100, 1, all), null)
    assert.equal(expansionProblem(200, 1, all)?.code, 'GZIP_RATIO_EXCEEDED')
    assert.equal(expansionProblem(200, 20, all), null)
    assert.equal(expansionProblem(200, null, all), null)
  })

  test('the whole tar may exceed the file bytes by 64 MiB of headers and padding, no more', () => {
    assert.equal(expansionProblem(1000 + 64 * 1024 * 1024, null, all), null)
    assert.equal(expansionProblem(1001 + 64 * 1024 * 1024, null, all)?.code, 'TAR_TOO_LARGE')
  })
})

// What a tar entry may be, decided from its header fields and what the archive has made so far, with no I/O:
// path safety, the type allow-list and pax records, links resolved against the release root, and the limits.

import { type BerthError, problem } from '../errors.js'

export interface EntryLimits {
  maxUnpackedBytes: number
  maxFiles: number
  maxPathDepth: number
}

export type NodeKind = 'dir' | 'file' | 'symlink'

/** The header fields the rules read (tar's ReadEntry has them all). */
export interface EntryHead {
  path: string
  type: string
  linkpath?: string | undefined
  /** Bytes of body the entry carries. */
  size: number
}

/** What to create for an admitted entry; `rel` is normalised and relative to the archive root. */
export type Plan =
  | { kind: 'none' }
  | { kind: 'dir'; rel: string }
  | { kind: 'file'; rel: string; size: number }
  | { kind: 'symlink'; rel: string; target: string }
  | { kind: 'hardlink'; rel: string; from: string }

export const NAME_MAX = 255
export const PATH_MAX = 4095
/** Links followed while resolving one symlink, as Linux's MAXSYMLINKS. */
const MAX_HOPS = 40

type PathCode = 'TAR_UNSAFE_PATH' | 'TAR_LINK_ESCAPE'

/** Validates a path from the archive and returns it normalised (NFC, no "." parts, no trailing slash). */
export function normalisePath(raw: string, entryName: string, maxDepth: number, code: PathCode = 'TAR_UNSAFE_PATH'): string {
  const link = code === 'TAR_LINK_ESCAPE'
  const why =
    raw.includes('\0') ? 'contains a NUL byte'
    : raw.startsWith('/') ? 'is absolute'
    : /^[A-Za-z]:/.test(raw) ? 'starts with a drive letter'
    : raw.includes('\\') ? 'contains a backslash'
    : null
  if (why) throw problem(code, `Tar entry "${entryName}" ${link ? `links to "${raw}", which ` : ''}${why}; release paths must be relative.`, { entry: entryName })
  const parts = raw.normalize('NFC').split('/').filter((p) => p !== '' && p !== '.')
  if (parts.includes('..')) {
    throw problem(code, `Tar entry "${entryName}" ${link ? `links to "${raw}", which uses` : 'uses'} "..": paths may not leave the release.`, { entry: entryName })
  }
  if (parts.length > maxDepth) {
    throw problem('TAR_PATH_TOO_DEEP', `Tar entry "${entryName}" is ${parts.length} levels deep; the limit is ${maxDepth} (BERTH_MAX_PATH_DEPTH).`, { entry: entryName, limit: maxDepth })
  }
  const joined = parts.join('/')
  if (Buffer.byteLength(joined) > PATH_MAX || parts.some((p) => Buffer.byteLength(p) > NAME_MAX)) {
    throw problem('TAR_PATH_TOO_LONG', `Tar entry "${entryName.slice(0, 120)}…" has a name longer than ${NAME_MAX} bytes or a path longer than ${PATH_MAX}.`, { entry: entryName.slice(0, 300) })
  }
  return joined
}

/** The allow-list: anything else (devices, FIFOs, GNU dump directories, vendor types) is refused. */
export function entryKind(type: string, entryName: string): 'dir' | 'file' | 'symlink' | 'hardlink' {
  switch (type) {
    case 'Directory': return 'dir'
    case 'File':
    case 'OldFile':
    case 'ContiguousFile': return 'file'
    case 'SymbolicLink': return 'symlink'
    case 'Link': return 'hardlink'
    default: throw forbiddenType(entryName, type)
  }
}

export function forbiddenType(entryName: string, type: string): BerthError {
  return problem('TAR_FORBIDDEN_TYPE', `Tar entry "${entryName}" is a ${describeType(type)}; a release may contain only files, directories and links inside it.`, { entry: entryName, type })
}

function describeType(type: string): string {
  switch (type) {
    case 'CharacterDevice': return 'character device'
    case 'BlockDevice': return 'block device'
    case 'FIFO': return 'named pipe (FIFO)'
    case 'SparseFile': return 'GNU sparse file'
    case 'Unsupported': return 'entry of a type tar does not know'
    case 'OldGnuLongPath': return "old GNU 'N' header, which tar readers disagree on"
    default: return `"${type}" entry`
  }
}

/**
 * An entry tar's Parser would skip rather than hand over: a vendor or unknown type (GNU sparse 'S', Solaris
 * ACL 'A', tape volume 'V', ...) or a pax or long-name header too big for it. Skipped means another tar
 * would read something berth never checked, so it is refused.
 */
export function skippedEntryProblem(entry: { path: string; type: string; size: number; meta: boolean }): BerthError {
  if (entry.meta) {
    return problem('TAR_FORBIDDEN_TYPE', `Tar entry "${entry.path}" is a ${entry.type} header of ${entry.size} bytes, too large to read; it would be skipped, so the archive is refused.`, { entry: entry.path, type: entry.type })
  }
  return forbiddenType(entry.path, entry.type)
}

/** Pax keys that make a regular-looking entry something else: GNU and star sparse files. */
const SPARSE_KEY = /^(GNU\.sparse\.|SCHILY\.realsize$|SCHILY\.sparse)/

/** What a global pax header ('g', e.g. the commit id `git archive` writes) may set for every later entry. */
const GLOBAL_HARMLESS = new Set(['comment', 'charset', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'uname', 'gname'])

/** The keys of pax records ("LEN key=value\n", LEN counting itself), or null when one is malformed. */
export function paxKeys(body: Buffer): string[] | null {
  const keys: string[] = []
  let pos = 0
  while (pos < body.length) {
    if (body[pos] === 0 && body.subarray(pos).every((b) => b === 0)) break
    const space = body.indexOf(0x20, pos)
    const digits = space < 0 ? '' : body.toString('latin1', pos, space)
    const len = /^[1-9]\d{0,8}$/.test(digits) ? Number(digits) : NaN
    if (!(len > space - pos + 1) || pos + len > body.length || body[pos + len - 1] !== 0x0a) return null
    const record = body.toString('utf8', space + 1, pos + len - 1)
    const eq = record.indexOf('=')
    if (eq <= 0) return null
    keys.push(record.slice(0, eq))
    pos += len
  }
  return keys
}

/**
 * Checks the records of a pax header before tar applies them. A global header that sets path, linkpath
 * or size changes every later entry, and tar implementations disagree on how (node-tar ignores a global
 * path but applies a global linkpath). Sparse keys turn a file's body into a sparse map that node-tar
 * would write out as content. A malformed record is dropped by node-tar and refused by GNU tar.
 */
export function paxHeaderProblem(kind: 'x' | 'g', body: Buffer, name: string): BerthError | null {
  const keys = paxKeys(body)
  if (keys === null) {
    return problem('TAR_INVALID', `The pax header "${name}" has a malformed record; tar implementations would read it differently.`, { entry: name })
  }
  const sparse = keys.find((k) => SPARSE_KEY.test(k))
  if (sparse) {
    return problem('TAR_FORBIDDEN_TYPE', `The archive has a sparse file (pax key "${sparse}"); tar would unpack its sparse map as file content. Build the tarball without --sparse.`, { entry: name, type: 'SparseFile' })
  }
  const global = kind === 'g' ? keys.find((k) => !GLOBAL_HARMLESS.has(k)) : undefined
  if (global) {
    return problem('TAR_FORBIDDEN_TYPE', `The archive has a global pax header that sets "${global}" for every later entry; a release may not carry one.`, { entry: name, type: 'GlobalExtendedHeader' })
  }
  return null
}

/**
 * The directory that becomes the release: the archive root, or its one top-level directory when that holds
 * releases/ and the root does not. The same rule as inspect's findRoot, read from the entries instead of the disk.
 */
export function releaseRootOf(nodes: ReadonlyMap<string, NodeKind>, top: ReadonlySet<string>): string {
  if (nodes.get('releases') === 'dir') return ''
  if (top.size !== 1) return ''
  const [only] = top
  return nodes.get(only!) === 'dir' && nodes.get(`${only}/releases`) === 'dir' ? only! : ''
}

function inside(rel: string, root: string): boolean {
  return root === '' || rel === root || rel.startsWith(`${root}/`)
}

/**
 * Resolves the symlink at `rel` the way the kernel would, following the links in `links` (archive paths to
 * targets), and returns the archive path it names. Refuses a result, or any step on the way, above `root`:
 * lexical checks alone miss `a -> b/..` where b is itself a link, and `../W/x` leaves the release even if it
 * comes back into a directory of the same name.
 */
export function resolveSymlink(links: ReadonlyMap<string, string>, rel: string, root: string, entryName = rel): string {
  const target = links.get(rel)
  if (target === undefined || target === '' || target.startsWith('/')) {
    throw problem('TAR_LINK_ESCAPE', `Tar entry "${entryName}" is a symbolic link to "${target ?? ''}"; links must be relative and stay inside the release.`, { entry: entryName })
  }
  const floor = root === '' ? 0 : root.split('/').length
  const resolved = rel.split('/').slice(0, -1)
  if (!inside(rel, root)) {
    throw problem('TAR_LINK_ESCAPE', `Tar entry "${entryName}" is a symbolic link outside the release directory "${root}".`, { entry: entryName })
  }
  const todo = target.split('/')
  let hops = 0
  while (todo.length > 0) {
    const part = todo.shift()!
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (resolved.length <= floor) {
        throw problem('TAR_LINK_ESCAPE', `Tar entry "${entryName}" is a symbolic link to "${target}", which resolves outside the release${root ? ` directory "${root}"` : ''}.`, { entry: entryName })
      }
      resolved.pop()
      continue
    }
    const here = [...resolved, part].join('/')
    const next = links.get(here)
    if (next === undefined) {
      resolved.push(part)
      continue
    }
    if (++hops > MAX_HOPS || next === '' || next.startsWith('/')) {
      throw problem('TAR_LINK_ESCAPE', `Tar entry "${entryName}" is a symbolic link to "${target}", which resolves through "${here}" to a path outside the release.`, { entry: entryName })
    }
    todo.unshift(...next.split('/'))
  }
  return resolved.join('/')
}

/**
 * The rules one archive's entries pass, in order. `admit` decides each entry and records what it makes;
 * `finish` runs the checks that need the whole archive (links against the release root).
 */
export class EntryRules {
  readonly nodes = new Map<string, NodeKind>()
  readonly symlinks = new Map<string, string>()
  /** Hard link path to the file it shares. */
  readonly hardlinks = new Map<string, string>()
  /** First path components seen: one directory there may be a wrapper. */
  readonly top = new Set<string>()
  entries = 0
  /** File bytes admitted so far, counted as they are written. */
  bytes = 0

  constructor(private readonly limits: EntryLimits) {}

  admit(entry: EntryHead): Plan {
    const rel = normalisePath(entry.path, entry.path, this.limits.maxPathDepth)
    // "./" itself: nothing to create.
    if (rel === '') return { kind: 'none' }
    if (++this.entries > this.limits.maxFiles) {
      throw problem('TAR_TOO_MANY_FILES', `The archive has more than ${this.limits.maxFiles} entries (BERTH_MAX_FILES).`, { limit: this.limits.maxFiles })
    }
    const kind = entryKind(entry.type, entry.path)
    this.checkParents(rel, entry.path)
    const existing = this.nodes.get(rel)
    if (existing && !(kind === 'dir' && existing === 'dir')) throw duplicate(entry.path)
    switch (kind) {
      case 'dir':
        this.record(rel, 'dir')
        return { kind: 'dir', rel }
      case 'file':
        if (this.bytes + entry.size > this.limits.maxUnpackedBytes) throw tooLarge(entry.path, entry.size, this.limits.maxUnpackedBytes)
        this.record(rel, 'file')
        return { kind: 'file', rel, size: entry.size }
      case 'symlink': {
        const target = (entry.linkpath ?? '').normalize('NFC')
        this.record(rel, 'symlink')
        this.symlinks.set(rel, target)
        // The release root is not known yet, so this early check is against the archive root; finish() redoes it.
        resolveSymlink(this.symlinks, rel, '', entry.path)
        return { kind: 'symlink', rel, target }
      }
      case 'hardlink': {
        const from = normalisePath(entry.linkpath ?? '', entry.path, this.limits.maxPathDepth, 'TAR_LINK_ESCAPE')
        if (this.nodes.get(from) !== 'file' || this.throughLink(from)) {
          throw problem('TAR_LINK_ESCAPE', `Tar entry "${entry.path}" is a hard link to "${entry.linkpath}", which is not a regular file earlier in the archive; only hard links to files inside the release are allowed.`, { entry: entry.path })
        }
        this.record(rel, 'file')
        this.hardlinks.set(rel, from)
        return { kind: 'hardlink', rel, from }
      }
    }
  }

  /** Counts bytes as they reach the disk, so the limit holds whatever the header declared. */
  addBytes(entryName: string, n: number): void {
    this.bytes += n
    if (this.bytes > this.limits.maxUnpackedBytes) throw tooLarge(entryName, n, this.limits.maxUnpackedBytes)
  }

  /**
   * Checks every link against the release root, now that the wrapper directory (if any) is known, and
   * returns that root. Links made later can also change where earlier ones resolve.
   */
  finish(): string {
    const root = releaseRootOf(this.nodes, this.top)
    for (const rel of this.symlinks.keys()) resolveSymlink(this.symlinks, rel, root)
    for (const [rel, from] of this.hardlinks) {
      if (!inside(from, root)) {
        throw problem('TAR_LINK_ESCAPE', `Tar entry "${rel}" is a hard link to "${from}", outside the release directory "${root}".`, { entry: rel })
      }
    }
    return root
  }

  private record(rel: string, kind: NodeKind): void {
    const parts = rel.split('/')
    this.top.add(parts[0]!)
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/')
      if (!this.nodes.has(prefix)) this.nodes.set(prefix, 'dir')
    }
    this.nodes.set(rel, kind)
  }

  private throughLink(rel: string): boolean {
    const parts = rel.split('/')
    for (let i = 1; i < parts.length; i++) if (this.nodes.get(parts.slice(0, i).join('/')) === 'symlink') return true
    return false
  }

  private checkParents(rel: string, entryName: string): void {
    const parts = rel.split('/')
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/')
      const kind = this.nodes.get(prefix)
      if (kind === 'symlink') {
        throw problem('TAR_PATH_THROUGH_LINK', `Tar entry "${entryName}" would be written through the symbolic link "${prefix}"; refused because links may point anywhere.`, { entry: entryName })
      }
      if (kind === 'file') {
        throw problem('TAR_INVALID', `Tar entry "${entryName}" is inside "${prefix}", which is a file.`, { entry: entryName })
      }
    }
  }
}

function duplicate(name: string): BerthError {
  return problem('TAR_DUPLICATE_ENTRY', `Tar entry "${name}" appears more than once (or collides with another name after Unicode normalisation); a later entry could replace an earlier one, so the archive is refused.`, { entry: name })
}

function tooLarge(name: string, size: number, limit: number): BerthError {
  return problem('TAR_TOO_LARGE', `Tar entry "${name}" (${size} bytes) takes the release past ${limit} unpacked bytes (BERTH_MAX_UNPACKED_BYTES).`, { entry: name, limit })
}

/** The stream-level limits: the whole tar (padding and headers included) and its expansion from gzip. */
export function expansionProblem(tarBytes: number, compressedBytes: number | null, limits: EntryLimits & { maxGzipRatio: number; ratioGraceBytes: number }): BerthError | null {
  if (compressedBytes !== null && tarBytes > limits.ratioGraceBytes && tarBytes > compressedBytes * limits.maxGzipRatio) {
    return problem('GZIP_RATIO_EXCEEDED', `The archive expands more than ${limits.maxGzipRatio}x (${tarBytes} bytes from ${compressedBytes}); this looks like a gzip bomb and was refused.`, { limit: limits.maxGzipRatio })
  }
  if (tarBytes > limits.maxUnpackedBytes + 64 * 1024 * 1024) {
    return problem('TAR_TOO_LARGE', `The archive unpacks to more than ${limits.maxUnpackedBytes} bytes (BERTH_MAX_UNPACKED_BYTES).`, { limit: limits.maxUnpackedBytes })
  }
  return null
}

// Builds tar archives byte by byte, including ones no well-behaved tool would write (absolute paths,
// devices, links out of the tree, vendor types, pax headers, data after the end), so the intake rules can
// be tested against the real thing.

import zlib from 'node:zlib'
import { Header, Pax } from 'tar'

export interface Entry {
  path: string
  /** A tar type name ('File', 'SparseFile', 'GlobalExtendedHeader', ...). */
  type?: string
  /** A raw typeflag byte, for types tar has no name for. */
  typeflag?: string
  body?: string | Buffer
  linkpath?: string
  mode?: number
  /** Declared size when it must differ from the body (truncation tests). */
  size?: number
  /** Records of a pax extended header ('x') written before this entry, or the body of a 'g'/'x' entry. */
  pax?: Record<string, string>
  /** Bytes written as they are, instead of an entry. */
  raw?: Buffer
}

function pad(n: number): number {
  return (512 - (n % 512)) % 512
}

/** "LEN key=value\n", where LEN counts itself. */
export function paxRecords(records: Record<string, string>): Buffer {
  let out = ''
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`
    let len = Buffer.byteLength(rest) + 1
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest)
    out += `${len}${rest}`
  }
  return Buffer.from(out)
}

function header(fields: Record<string, unknown>, typeflag?: string): Buffer {
  const block = Buffer.alloc(512)
  new Header(fields as ConstructorParameters<typeof Header>[0]).encode(block, 0)
  if (typeflag !== undefined) {
    block[156] = typeflag.charCodeAt(0)
    block.fill(0x20, 148, 156)
    let sum = 0
    for (const b of block) sum += b
    block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1')
  }
  return block
}

function withBody(parts: Buffer[], body: Buffer): void {
  if (body.length > 0) parts.push(body, Buffer.alloc(pad(body.length)))
}

export function tarBytes(entries: Entry[], { end = true }: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    if (e.raw) {
      parts.push(e.raw)
      continue
    }
    const type = e.type ?? 'File'
    const meta = type === 'GlobalExtendedHeader' || type === 'ExtendedHeader'
    const body = meta ? paxRecords(e.pax ?? {}) : e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body)
    if (e.pax && !meta) {
      const records = paxRecords(e.pax)
      parts.push(header({ path: `PaxHeader/${e.path.slice(-80)}`, type: 'ExtendedHeader', size: records.length, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }))
      withBody(parts, records)
    } else if (!meta && (Buffer.byteLength(e.path) > 100 || (e.linkpath && Buffer.byteLength(e.linkpath) > 100))) {
      // Names that do not fit the ustar header travel in a pax extended header, as GNU tar writes them.
      parts.push(new Pax({ path: e.path, linkpath: e.linkpath, mtime: new Date(0) } as ConstructorParameters<typeof Pax>[0]).encode())
    }
    const hasBody = meta || e.typeflag !== undefined || !['Directory', 'SymbolicLink', 'Link', 'CharacterDevice', 'BlockDevice', 'FIFO'].includes(type)
    parts.push(
      header(
        {
          path: e.path,
          type: e.typeflag !== undefined ? 'File' : type,
          mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
          size: e.size ?? (hasBody ? body.length : 0),
          mtime: new Date(0),
          uid: 0,
          gid: 0,
          linkpath: e.linkpath,
          devmaj: 0,
          devmin: 0,
        },
        e.typeflag,
      ),
    )
    if (hasBody) withBody(parts, body)
  }
  if (end) parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

export function tgz(entries: Entry[], opts?: { end?: boolean }): Buffer {
  return zlib.gzipSync(tarBytes(entries, opts))
}

/** The smallest tree that passes as a release of `app`: the hostile entry is then the only problem. */
export function releaseSkeleton(app = 'hello', version = '0.1.0'): Entry[] {
  return [
    { path: `bin/${app}`, body: '#!/bin/sh\necho hi\n', mode: 0o755 },
    { path: 'releases/start_erl.data', body: `13.1.5 ${version}\n` },
    { path: `releases/${version}/${app}.rel`, body: `{release,{"${app}","${version}"},{erts,"13.1.5"},[]}.\n` },
    { path: `lib/${app}-${version}/ebin/${app}.app`, body: '{application,hello,[]}.\n' },
  ]
}

// Builds tar archives byte by byte, including ones no well-behaved tool would write (absolute paths,
// devices, links out of the tree), so the intake rules can be tested against the real thing.

import zlib from 'node:zlib'
import { Header, Pax } from 'tar'

export interface Entry {
  path: string
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO'
  body?: string | Buffer
  linkpath?: string
  mode?: number
  /** Declared size when it must differ from the body (truncation tests). */
  size?: number
}

function pad(n: number): number {
  return (512 - (n % 512)) % 512
}

export function tarBytes(entries: Entry[], { end = true }: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body)
    const type = e.type ?? 'File'
    const fields = {
      path: e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      size: e.size ?? (type === 'File' ? body.length : 0),
      mtime: new Date(0),
      uid: 0,
      gid: 0,
      linkpath: e.linkpath,
      devmaj: 0,
      devmin: 0,
    }
    if (Buffer.byteLength(e.path) > 100 || (e.linkpath && Buffer.byteLength(e.linkpath) > 100)) {
      // Names that do not fit the ustar header travel in a pax extended header, as GNU tar writes them.
      parts.push(new Pax({ path: e.path, linkpath: e.linkpath, mtime: new Date(0) } as ConstructorParameters<typeof Pax>[0]).encode())
    }
    const block = Buffer.alloc(512)
    new Header(fields as ConstructorParameters<typeof Header>[0]).encode(block, 0)
    parts.push(block)
    if (type === 'File' && body.length > 0) {
      parts.push(body, Buffer.alloc(pad(body.length)))
    }
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

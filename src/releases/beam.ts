// Reads which functions a compiled module exports from its .beam file: the IFF container ("FOR1" ... "BEAM"),
// its atom table (AtU8, or Atom before OTP 20) and its export table (ExpT). No code is loaded or run.

import zlib from 'node:zlib'
import { problem } from '../errors.js'

export interface Export {
  name: string
  arity: number
}

/** Chunks by id; a chunk's data is padded to 4 bytes in the file, and the size counts the data only. */
function chunks(buf: Buffer, file: string): Map<string, Buffer> {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'FOR1' || buf.toString('latin1', 8, 12) !== 'BEAM') {
    throw problem('RELEASE_INVALID', `${file} is not a BEAM file.`)
  }
  const end = Math.min(buf.length, 8 + buf.readUInt32BE(4))
  const out = new Map<string, Buffer>()
  for (let at = 12; at + 8 <= end; ) {
    const id = buf.toString('latin1', at, at + 4)
    const size = buf.readUInt32BE(at + 4)
    if (at + 8 + size > end) throw problem('RELEASE_INVALID', `${file}: chunk ${id} runs past the end of the file.`)
    out.set(id, buf.subarray(at + 8, at + 8 + size))
    at += 8 + size + ((4 - (size % 4)) % 4)
  }
  return out
}

/** Atom table; index 0 is unused because the file's references are 1-based. */
function atoms(data: Buffer, utf8: boolean, file: string): string[] {
  let count = data.readInt32BE(0)
  // OTP 28 writes a negative count when atom lengths are in the compact term encoding (atoms of up to
  // 255 characters can be longer than 255 bytes in UTF-8).
  const compact = count < 0
  count = Math.abs(count)
  const out = ['']
  let at = 4
  for (let n = 0; n < count; n++) {
    let len: number
    const b = data[at++]!
    if (!compact) len = b
    else if ((b & 0x08) === 0) len = b >> 4
    else if ((b & 0x10) === 0) len = ((b & 0xe0) << 3) | data[at++]!
    else throw problem('RELEASE_INVALID', `${file}: an atom length in an encoding berth does not read.`)
    if (at + len > data.length) throw problem('RELEASE_INVALID', `${file}: the atom table runs past its chunk.`)
    out.push(data.toString(utf8 ? 'utf8' : 'latin1', at, at + len))
    at += len
  }
  return out
}

/** Exported functions of a .beam (plain or gzip-compressed, as beam_lib accepts). */
export function beamExports(file: Buffer, name = 'the .beam file'): Export[] {
  const buf = file[0] === 0x1f && file[1] === 0x8b ? zlib.gunzipSync(file, { maxOutputLength: 64 * 1024 * 1024 }) : file
  const c = chunks(buf, name)
  const atomChunk = c.get('AtU8') ?? c.get('Atom')
  const expt = c.get('ExpT')
  if (!atomChunk || !expt) throw problem('RELEASE_INVALID', `${name} has no ${atomChunk ? 'export' : 'atom'} table.`)
  const table = atoms(atomChunk, c.has('AtU8'), name)
  const count = expt.readUInt32BE(0)
  const out: Export[] = []
  for (let i = 0; i < count; i++) {
    const at = 4 + i * 12
    if (at + 12 > expt.length) throw problem('RELEASE_INVALID', `${name}: the export table runs past its chunk.`)
    out.push({ name: table[expt.readUInt32BE(at)] ?? '?', arity: expt.readUInt32BE(at + 4) })
  }
  return out
}

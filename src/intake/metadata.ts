// A release's record of itself: `.berth-release.json` at the top of its directory, written and synced before
// the directory gets its name under releases/, so the catalogue can be rebuilt from disk if berth.db is lost.

import fs from 'node:fs/promises'
import path from 'node:path'
import { exists, fsyncDir, removeTree, writeNewFile } from '../fsutil.js'
import { VERSION } from '../paths.js'
import { detectKind, KINDS } from '../releases/kinds.js'
import type { Release, ReleaseKind } from '../store/releases.js'

export const METADATA_FILE = '.berth-release.json'

const SHA256 = /^[0-9a-f]{64}$/

/** Writes the metadata into a release tree that is not yet visible; a file of that name the tarball brought is replaced. */
export async function writeMetadata(root: string, release: Release): Promise<void> {
  const file = path.join(root, METADATA_FILE)
  await removeTree(file)
  const { id, app, version, sha256, size, unpackedBytes, files, uploadedAt, uploadedBy } = release
  await writeNewFile(file, `${JSON.stringify({ id, app, version, sha256, size, unpackedBytes, files, uploadedAt, uploadedBy }, null, 2)}\n`, 0o444)
}

/** Adds the metadata to a release directory that is already in place (read-only) and lacks it. */
export async function addMetadata(dir: string, release: Release): Promise<void> {
  const mode = (await fs.stat(dir)).mode & 0o777
  await fs.chmod(dir, mode | 0o200)
  try {
    await writeMetadata(dir, release)
  } finally {
    await fs.chmod(dir, mode)
  }
  await fsyncDir(dir)
}

/**
 * Reads the metadata of the release directory `app/id`. Null when there is none (unpacked by a berth older
 * than the file); a sentence saying what is wrong when it is unreadable or does not describe this directory.
 * The id, app, version and checksum prefix must agree with the directory's name, so a file that a tarball
 * unpacked by an older berth brought along cannot pass itself off as another release.
 */
export async function readMetadata(dir: string, app: string, id: string): Promise<Release | null | string> {
  const file = path.join(dir, METADATA_FILE)
  if (!(await exists(file))) return null
  const st = await fs.lstat(file)
  if (!st.isFile() || st.size > 64 * 1024) return `${METADATA_FILE} is not a small regular file`
  let m: Record<string, unknown>
  try {
    m = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>
  } catch (err) {
    return `${METADATA_FILE} is not JSON (${(err as Error).message})`
  }
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
  const problems = [
    m.id !== id && `its id is not "${id}"`,
    m.app !== app && `its app is not "${app}"`,
    (typeof m.version !== 'string' || !VERSION.test(m.version) || id !== `${m.version}-${id.slice(-12)}`) && 'its version does not match the id',
    (typeof m.sha256 !== 'string' || !SHA256.test(m.sha256) || m.sha256.slice(0, 12) !== id.slice(-12)) && 'its sha256 does not match the id',
    !(count(m.size) && count(m.unpackedBytes) && count(m.files)) && 'its sizes are not counts',
    (typeof m.uploadedAt !== 'string' || Number.isNaN(Date.parse(m.uploadedAt))) && 'its uploadedAt is not a date',
    m.uploadedBy !== null && typeof m.uploadedBy !== 'string' && 'its uploadedBy is not a name',
  ].filter(Boolean)
  if (problems.length > 0) return `${METADATA_FILE} does not describe this directory: ${problems.join(', ')}`
  return {
    id,
    app,
    version: m.version as string,
    sha256: m.sha256 as string,
    size: m.size as number,
    unpackedBytes: m.unpackedBytes as number,
    files: m.files as number,
    uploadedAt: new Date(Date.parse(m.uploadedAt as string)).toISOString(),
    // Older metadata files have no kind: it is read from the tree, as for a new upload.
    kind: typeof m.kind === 'string' && Object.hasOwn(KINDS, m.kind) ? (m.kind as ReleaseKind) : detectKind(dir, app, m.version as string),
    uploadedBy: m.uploadedBy as string | null,
  }
}

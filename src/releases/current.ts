// Which release is current: `apps/APP/current` read, and switched atomically (a fresh symlink renamed over
// the old one, then the directory synced). The one place that knows how `current` is stored.

import crypto from 'node:crypto'
import fsSync from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { fsyncDir } from '../fsutil.js'
import { RELEASE_ID, type Paths } from '../paths.js'

/** The id `apps/APP/current` points at, or null when the app has never been deployed. */
export async function currentReleaseId(paths: Paths, app: string): Promise<string | null> {
  return idOf(await fs.readlink(paths.current(app)).catch(() => null))
}

/**
 * The same, without a thread-pool round trip: readlink of a cached dentry takes microseconds, far less than
 * the hop, which is what a status poll answered many times a second would mostly spend.
 */
export function currentReleaseIdSync(paths: Paths, app: string): string | null {
  try {
    return idOf(fsSync.readlinkSync(paths.current(app)))
  } catch {
    return null
  }
}

/** The release id a `current` link's target names; null for no link or a target that is not a release id. */
function idOf(target: string | null): string | null {
  if (!target) return null
  const id = path.basename(target)
  return RELEASE_ID.test(id) ? id : null
}

/** Replaces apps/APP/current atomically: rename(2) never leaves a moment without a `current`. */
export async function switchCurrent(paths: Paths, app: string, release: string): Promise<void> {
  const tmp = path.join(paths.app(app), `.current-${process.pid}-${crypto.randomBytes(4).toString('hex')}`)
  await fs.symlink(`releases/${release}`, tmp)
  try {
    await fs.rename(tmp, paths.current(app))
  } catch (err) {
    await fs.rm(tmp, { force: true })
    throw err
  }
  await fsyncDir(paths.app(app))
}

// The part of the deployment history that must outlive berth.db: which releases deployed successfully, newest
// first, in apps/APP/deployed.json. A catalogue rebuilt from disk takes its rollback targets from it.

import fs from 'node:fs/promises'
import { replaceFile } from '../fsutil.js'
import { RELEASE_ID, type Paths } from '../paths.js'

export interface Deployed {
  release: string
  at: string
}

/** Enough rollback targets for any keepReleases setting, without the file growing for ever. */
const KEEP = 50

/** Newest first; an unreadable or missing file is an empty history (it only ever adds rollback targets). */
export async function readDeployed(paths: Paths, app: string): Promise<Deployed[]> {
  const raw = await fs.readFile(paths.deployed(app), 'utf8').catch(() => null)
  if (raw === null) return []
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    return []
  }
  const list = (parsed as { deployed?: unknown } | null)?.deployed
  if (!Array.isArray(list)) return []
  return list.filter((d): d is Deployed => typeof d?.release === 'string' && RELEASE_ID.test(d.release) && typeof d.at === 'string' && !Number.isNaN(Date.parse(d.at)))
}

/** Puts `release` first; written to a temporary file, synced and renamed, so a crash leaves the old or the new file. */
export async function recordDeployed(paths: Paths, app: string, release: string, at: string): Promise<void> {
  const list = [{ release, at }, ...(await readDeployed(paths, app)).filter((d) => d.release !== release)].slice(0, KEEP)
  const file = paths.deployed(app)
  await replaceFile(file, `${JSON.stringify({ deployed: list }, null, 2)}\n`, 0o640)
}

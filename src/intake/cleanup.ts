// Removal of releases and of berth's own debris: a release delete (out of its name, row, then files), and the
// start-up sweep. The sweep deletes only what it can prove is its own: uploads/ and interrupted deletes.

import fs from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { fsyncDir, removeTree } from '../fsutil.js'
import { APP_NAME, RELEASE_ID, type Paths } from '../paths.js'
import type { EventStore } from '../store/events.js'
import type { Release, ReleaseStore } from '../store/releases.js'

/** The id `apps/APP/current` points at, or null when the app has never been deployed. */
export async function currentReleaseId(paths: Paths, app: string): Promise<string | null> {
  const target = await fs.readlink(paths.current(app)).catch(() => null)
  if (!target) return null
  const id = path.basename(target)
  return RELEASE_ID.test(id) ? id : null
}

export async function deleteRelease(
  deps: { paths: Paths; releases: ReleaseStore; events: EventStore; log: Logger },
  app: string,
  id: string,
  actor: string | null,
): Promise<Release> {
  const { paths, releases, events, log } = deps
  const release = releases.get(app, id)
  if (!release) throw problem('RELEASE_NOT_FOUND', `App "${app}" has no release "${id}"; list them with GET /v1/apps/${app}/releases.`)
  if ((await currentReleaseId(paths, app)) === id) {
    throw problem('RELEASE_IS_CURRENT', `Release "${id}" is the current release of "${app}"; deploy or roll back to another release before deleting it.`)
  }
  // Out of its name first, then the row: a directory under releases/ without a row is then always a complete
  // release (never a half-deleted one), which a start re-imports; `.deleting-ID` is debris the sweep finishes.
  const dir = paths.release(app, id)
  const doomed = deletingDir(paths, app, id)
  await removeTree(doomed)
  const moved = await fs.rename(dir, doomed).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false
      throw err
    },
  )
  if (moved) await fsyncDir(paths.releases(app))
  releases.delete(app, id)
  await removeTree(doomed)
  events.record({ app, actor, action: 'release.delete', outcome: 'ok', detail: { release: id } })
  log.info({ app, release: id }, 'release deleted')
  return release
}

const DELETING = '.deleting-'

function deletingDir(paths: Paths, app: string, id: string): string {
  return path.join(paths.releases(app), `${DELETING}${id}`)
}

/**
 * Clears what berth itself leaves behind when it stops mid-way: every entry of uploads/ (staging trees of
 * unfinished uploads) and `releases/.deleting-ID` (a delete that had begun: its row goes too). A release
 * directory without a row is not debris: it is complete (see deleteRelease and Intake), and the catalogue
 * rebuild records it again.
 */
export async function sweepDebris(deps: { paths: Paths; releases: ReleaseStore; log: Logger }): Promise<void> {
  const { paths, releases, log } = deps
  await fs.mkdir(paths.uploads, { recursive: true, mode: 0o700 })
  for (const name of await fs.readdir(paths.uploads)) {
    await removeTree(path.join(paths.uploads, name))
    log.info({ entry: name }, 'removed interrupted upload')
  }
  const apps = await fs.readdir(paths.apps).catch(() => [] as string[])
  for (const app of apps.filter((a) => APP_NAME.test(a))) {
    const dirs = await fs.readdir(paths.releases(app)).catch(() => [] as string[])
    for (const d of dirs.filter((name) => name.startsWith(DELETING))) {
      const id = d.slice(DELETING.length)
      await removeTree(path.join(paths.releases(app), d))
      if (RELEASE_ID.test(id)) releases.delete(app, id)
      log.warn({ app, release: id }, 'finished deleting a release whose delete was interrupted')
    }
  }
}

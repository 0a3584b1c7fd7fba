// Removal of releases and of berth's own debris: a release delete (out of its name, row, then files), and the
// start-up sweep. The sweep deletes only what it can prove is its own: uploads/ and interrupted deletes.

import fsSync from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { fsyncDir, removeTree } from '../fsutil.js'
import type { AppDirs } from '../isolation/app-dirs.js'
import { APP_NAME, RELEASE_ID, type Paths } from '../paths.js'
import { currentReleaseId } from '../releases/current.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { Release, ReleaseStore } from '../store/releases.js'

export async function deleteRelease(
  deps: { paths: Paths; releases: ReleaseStore; deployments: DeploymentStore; events: EventStore; log: Logger; appDirs?: Pick<AppDirs, 'remove'> },
  app: string,
  id: string,
  actor: string | null,
): Promise<Release> {
  const { paths, releases, deployments, events, log } = deps
  const dir = paths.release(app, id)
  const doomed = deletingDir(paths, app, id)
  // A leftover of an earlier delete that was interrupted.
  await removeTree(doomed)
  const current = await currentReleaseId(paths, app)
  // From the checks to the rename and the row's removal nothing awaits: a deployment cannot start naming the
  // release in between (the deployer checks that its releases exist in the same turn as it takes the lock).
  const release = releases.get(app, id)
  if (!release) throw problem('RELEASE_NOT_FOUND', `App "${app}" has no release "${id}"; list them with GET /v1/apps/${app}/releases.`)
  if (current === id) {
    throw problem('RELEASE_IS_CURRENT', `Release "${id}" is the current release of "${app}"; deploy or roll back to another release before deleting it.`)
  }
  if (deployments.inUse(app).has(id)) {
    throw problem('RELEASE_IS_CURRENT', `Release "${id}" is named by a deployment of "${app}" that has not finished; wait for it (GET /v1/apps/${app}/deployments) and delete it then.`, { deployment: deployments.lockedBy(app) })
  }
  // Out of its name first, then the row: a directory under releases/ without a row is then always a complete
  // release (never a half-deleted one), which a start re-imports; `.deleting-ID` is debris the sweep finishes.
  let moved = true
  try {
    fsSync.renameSync(dir, doomed)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    moved = false
  }
  releases.delete(app, id)
  if (moved) await fsyncDir(paths.releases(app))
  await removeTree(doomed)
  // The vm.args/sys.config relx filled in for this release (see Supervisor.nodeEnv).
  // In the app's own directory: removed as the app (isolation/app-dirs.ts), which may have planted links there.
  const relx = path.join(paths.shared(app), 'tmp', 'relx', id)
  if (deps.appDirs) {
    try {
      deps.appDirs.remove(app, [relx])
    } catch (err) {
      log.warn({ app, release: id, err }, "the release's filled-in relx files could not be removed")
    }
  } else await removeTree(relx).catch(() => {})
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

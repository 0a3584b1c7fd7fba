// Removal of releases and of debris: a release delete (row first, then files), and the start-up sweep that
// clears uploads/ and release directories no row points at (left by a crash between rename and insert).

import fs from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { removeTree } from '../fsutil.js'
import { APP_NAME, type Paths } from '../paths.js'
import { currentReleaseId } from '../releases/current.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { Release, ReleaseStore } from '../store/releases.js'

export async function deleteRelease(
  deps: { paths: Paths; releases: ReleaseStore; deployments: DeploymentStore; events: EventStore; log: Logger },
  app: string,
  id: string,
  actor: string | null,
): Promise<Release> {
  const { paths, releases, deployments, events, log } = deps
  const current = await currentReleaseId(paths, app)
  // From here to the row's removal nothing awaits: a deployment cannot start naming the release in between
  // (the deployer checks that its releases exist in the same turn as it takes the lock).
  const release = releases.get(app, id)
  if (!release) throw problem('RELEASE_NOT_FOUND', `App "${app}" has no release "${id}"; list them with GET /v1/apps/${app}/releases.`)
  if (current === id) {
    throw problem('RELEASE_IS_CURRENT', `Release "${id}" is the current release of "${app}"; deploy or roll back to another release before deleting it.`)
  }
  if (deployments.inUse(app).has(id)) {
    throw problem('RELEASE_IS_CURRENT', `Release "${id}" is named by a deployment of "${app}" that has not finished; wait for it (GET /v1/apps/${app}/deployments) and delete it then.`, { deployment: deployments.lockedBy(app) })
  }
  // Row first: from here on the release is not listed, so a crash mid-removal leaves only debris the sweep clears.
  releases.delete(app, id)
  const dir = paths.release(app, id)
  const trash = path.join(paths.uploads, `trash-${app}-${id}-${process.pid}-${Date.now()}`)
  await fs.mkdir(paths.uploads, { recursive: true, mode: 0o700 })
  await fs.chmod(dir, 0o755).catch(() => {})
  await fs.rename(dir, trash).catch(() => {})
  await removeTree(trash)
  // The vm.args/sys.config relx filled in for this release (see Supervisor.nodeEnv).
  await removeTree(path.join(paths.shared(app), 'tmp', 'relx', id)).catch(() => {})
  events.record({ app, actor, action: 'release.delete', outcome: 'ok', detail: { release: id } })
  log.info({ app, release: id }, 'release deleted')
  return release
}

export async function sweepDebris(deps: { paths: Paths; releases: ReleaseStore; log: Logger }): Promise<void> {
  const { paths, releases, log } = deps
  await fs.mkdir(paths.uploads, { recursive: true, mode: 0o700 })
  for (const name of await fs.readdir(paths.uploads)) {
    await removeTree(path.join(paths.uploads, name))
    log.info({ entry: name }, 'removed interrupted upload')
  }
  const apps = await fs.readdir(paths.apps).catch(() => [] as string[])
  for (const app of apps.filter((a) => APP_NAME.test(a))) {
    const known = releases.ids(app)
    const dirs = await fs.readdir(paths.releases(app)).catch(() => [] as string[])
    for (const d of dirs) {
      if (known.has(d)) continue
      await removeTree(path.join(paths.releases(app), d))
      log.warn({ app, entry: d }, 'removed release directory that was never recorded')
    }
  }
}

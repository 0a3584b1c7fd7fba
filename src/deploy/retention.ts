// Which releases retention deletes after a successful deployment: a pure choice over the catalogue, so that
// the rule can be read and tested on its own (chooseRetired), and the deleting it decides (retainReleases).

import type { AppDirs } from '../isolation/app-dirs.js'
import type { Logger } from 'pino'
import type { AppSettings } from '../apps/settings.js'
import { deleteRelease } from '../intake/cleanup.js'
import type { Paths } from '../paths.js'
import { currentReleaseId } from '../releases/current.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { ReleaseStore } from '../store/releases.js'

export interface RetainDeps {
  paths: Paths
  releases: ReleaseStore
  deployments: DeploymentStore
  events: EventStore
  log: Logger
  /** Removes what the app's own directories hold of a release, as the app (optional: tests without isolation). */
  appDirs?: Pick<AppDirs, 'remove'>
}

export interface RetentionInput {
  /** Every recorded release of the app, newest upload first. */
  newestFirst: string[]
  current: string | null
  /** Releases of succeeded deployments, newest first (may repeat). */
  succeededNewestFirst: string[]
  /** Releases any deployment tried. */
  attempted: Set<string>
  /** Releases an unfinished deployment names (as target or previous): never deleted. */
  inUse: Set<string>
  /** The release of the newest deploy or rollback that failed (or was rolled back), or null. */
  lastFailed: string | null
  keep: number
}

/**
 * Keeps current, the newest `keep` releases that deployed successfully, and anything in use. Deletes older
 * successes, and releases whose deployments all failed that are older than current, except the newest failure:
 * it stays, beyond the keep count, for diagnosis (its files, config and boot script are what an operator
 * reads to learn why), until a newer failure takes its place. Releases never deployed stay: they were
 * uploaded for a reason.
 */
export function chooseRetired(input: RetentionInput): string[] {
  const succeeded = [...new Set(input.succeededNewestFirst)]
  const keep = new Set([input.current, ...succeeded.slice(0, input.keep), ...input.inUse, input.lastFailed])
  const currentIndex = input.current ? input.newestFirst.indexOf(input.current) : -1
  return input.newestFirst.filter((id, i) => {
    if (keep.has(id)) return false
    if (succeeded.includes(id)) return true
    return input.attempted.has(id) && currentIndex >= 0 && i > currentIndex
  })
}

/** After a successful deployment: deletes the releases chooseRetired no longer keeps; a failed delete is logged, not fatal. */
export async function retainReleases(deps: RetainDeps, app: string, settings: Pick<AppSettings, 'keepReleases'>): Promise<void> {
  const { releases, deployments, paths } = deps
  const history = deployments.list(app, 1000)
  const retired = chooseRetired({
    newestFirst: releases.list(app).map((r) => r.id),
    current: await currentReleaseId(paths, app),
    succeededNewestFirst: deployments.succeededReleases(app),
    attempted: new Set(history.map((d) => d.release)),
    inUse: deployments.inUse(app),
    lastFailed: history.find((d) => (d.kind === 'deploy' || d.kind === 'rollback') && (d.state === 'failed' || d.state === 'rolled_back'))?.release ?? null,
    keep: settings.keepReleases,
  })
  for (const id of retired) {
    await deleteRelease(deps, app, id, 'berth').catch((err) => deps.log.warn({ app, release: id, err }, 'retention could not delete release'))
  }
}

// What a rollback goes back to when no release is named, and what it leaves behind: the database migrations
// of the release being left that the target does not have (never undone unless asked for).

import { problem } from '../errors.js'
import type { Paths } from '../paths.js'
import { ectoMigrations } from '../releases/content.js'
import { releaseName } from '../releases/script.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { Release, ReleaseStore } from '../store/releases.js'

/** What a rollback without `to` goes back to: the newest release that deployed successfully and is not current. */
export function previousGoodRelease(deps: { releases: Pick<ReleaseStore, 'get'>; deployments: Pick<DeploymentStore, 'succeededReleases'> }, app: string, current: string | null): Release {
  const id = deps.deployments.succeededReleases(app).find((r) => r !== current && deps.releases.get(app, r))
  if (!id) throw problem('NO_ROLLBACK_TARGET', `App "${app}" has no earlier release that deployed successfully; name one with {"to": ID}.`)
  return deps.releases.get(app, id)!
}

/** The rollback's warning when `current` ran migrations that `target` lacks; empty otherwise. */
export function leftMigrationsWarning(paths: Paths, app: string, current: string | null, target: Release): string[] {
  if (!current) return []
  const leaving = ectoMigrations(paths.release(app, current), releaseName(paths.release(app, current), app))
  const kept = new Set(ectoMigrations(paths.release(app, target.id), releaseName(paths.release(app, target.id), app)))
  const extra = leaving.filter((m) => !kept.has(m))
  if (extra.length === 0) return []
  return [`release ${current} ran database migrations that ${target.id} does not have: ${extra.join(', ')}. They are not undone unless you ask (runRollbackExpr with a rollbackExpr setting); check the schema is compatible.`]
}

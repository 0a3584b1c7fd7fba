// Finding what a request names: an app that must exist, and a release by id or by a version that names
// exactly one release. Shared by every route and command, so the messages are the same everywhere.

import { problem } from '../errors.js'
import { RELEASE_ID } from '../paths.js'
import type { Release, ReleaseStore } from '../store/releases.js'

export function requireApp(releases: ReleaseStore, app: string): void {
  if (!releases.appExists(app)) throw problem('APP_NOT_FOUND', `There is no app "${app}"; an app is created by its first upload (or PUT /v1/apps/${app}/env).`)
}

/** Finds a release by id, or by a bare version when exactly one release has it. */
export function resolveRelease(releases: ReleaseStore, app: string, ref: string): Release {
  const byId = RELEASE_ID.test(ref) ? releases.get(app, ref) : null
  if (byId) return byId
  const byVersion = releases.byVersion(app, ref)
  if (byVersion.length === 1) return byVersion[0]!
  if (byVersion.length > 1) {
    throw problem('RELEASE_AMBIGUOUS_VERSION', `Version "${ref}" names ${byVersion.length} releases of "${app}" (${byVersion.map((r) => r.id).join(', ')}); use a release id.`)
  }
  throw problem('RELEASE_NOT_FOUND', `App "${app}" has no release "${ref}"; list them with GET /v1/apps/${app}/releases.`)
}

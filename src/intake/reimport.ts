// Rebuilds the catalogue from disk, for every start and for `berth import`: a row for each release directory
// that has none, rollback targets for an app whose deployment history is gone, and settings for an app that has
// none. It only adds rows; it never removes, moves or rewrites a file, so running it any number of times is safe.

import fs from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import { readSettingsFile } from '../apps/settings-file.js'
import type { AppStore } from '../apps/store.js'
import { readDeployed } from '../releases/history.js'
import { isBerthError } from '../errors.js'
import { APP_NAME, RELEASE_ID, type Paths } from '../paths.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import { deploymentId } from '../store/ids.js'
import type { Release, ReleaseStore } from '../store/releases.js'
import { currentReleaseId } from '../releases/current.js'
import { detectKind } from '../releases/kinds.js'
import { releaseName } from '../releases/script.js'
import { inspectRelease } from './inspect.js'
import { METADATA_FILE, readMetadata } from './metadata.js'

export interface ImportDeps {
  paths: Paths
  releases: ReleaseStore
  deployments: DeploymentStore
  events: EventStore
  apps: Pick<AppStore, 'storedSettings' | 'restoreSettings'>
  log: Logger
}

export interface ImportedEntry {
  /** The directory's name under releases/. */
  entry: string
  /** recorded: had its row already; skipped: not a release (left alone); failed: looks like one but unreadable (left alone). */
  outcome: 'recorded' | 'imported' | 'skipped' | 'failed'
  note: string
}

export interface AppImport {
  app: string
  /** The app had no row before: its settings are the defaults and its environment is empty. */
  created: boolean
  current: string | null
  entries: ImportedEntry[]
  /** Releases recorded as succeeded deployments because the app had no deployment history. */
  history: string[]
  rollbackTarget: string | null
  /** restored: from apps/APP/settings.json, the database had none; kept: the database had some; none: no usable file. */
  settings: 'restored' | 'kept' | 'none'
  /** What the operator must look at, e.g. a settings.json that could not be used. */
  warnings: string[]
}

export async function importReleases(deps: ImportDeps, actor: string): Promise<AppImport[]> {
  const names = await fs.readdir(deps.paths.apps).catch(() => [] as string[])
  const out: AppImport[] = []
  for (const app of names.filter((n) => APP_NAME.test(n)).sort()) {
    if (!(await isDir(deps.paths.app(app)))) continue
    out.push(await importApp(deps, app, actor))
  }
  return out
}

async function importApp(deps: ImportDeps, app: string, actor: string): Promise<AppImport> {
  const { paths, releases, events, log } = deps
  const created = !releases.appExists(app)
  const current = await currentReleaseId(paths, app)
  const entries: ImportedEntry[] = []
  const found: { release: Release; note: string; entry: ImportedEntry; source: 'metadata' | 'files' }[] = []
  const dirs = (await fs.readdir(paths.releases(app)).catch(() => [] as string[])).sort()
  for (const name of dirs) {
    const entry: ImportedEntry = { entry: name, outcome: 'skipped', note: '' }
    entries.push(entry)
    if (name.startsWith('.deleting-')) {
      entry.note = 'a delete that was interrupted; berth finishes it when it starts'
      continue
    }
    if (!RELEASE_ID.test(name) || !(await isDir(path.join(paths.releases(app), name)))) {
      entry.note = 'not a release directory (its name is not a release id); left alone'
      continue
    }
    if (releases.get(app, name)) {
      Object.assign(entry, { outcome: 'recorded', note: 'already recorded' })
      continue
    }
    const dir = paths.release(app, name)
    const meta = await readMetadata(dir, app, name)
    if (meta !== null && typeof meta === 'object') {
      found.push({ release: meta, note: `from its ${METADATA_FILE}`, entry, source: 'metadata' })
      continue
    }
    const why = meta === null ? `no ${METADATA_FILE} (unpacked by an older berth)` : meta
    const fromTree = await describeTree(dir, app, name)
    if (typeof fromTree === 'string') {
      Object.assign(entry, { outcome: 'failed', note: `${why}, and ${fromTree}; left alone` })
      continue
    }
    found.push({ release: fromTree, note: `${why}: from its files; its sha256 is known only as the id's 12 hex digits until the same tarball is uploaded again`, entry, source: 'files' })
  }
  // Oldest first, so that the listing's "newest first" order is the upload order again.
  found.sort((a, b) => a.release.uploadedAt.localeCompare(b.release.uploadedAt))
  for (const { release, note, entry, source } of found) {
    try {
      releases.insert(release)
    } catch (err) {
      Object.assign(entry, { outcome: 'failed', note: `could not be recorded (${(err as Error).message}); left alone` })
      log.error({ app, release: release.id, err }, 'could not re-import release directory')
      continue
    }
    Object.assign(entry, { outcome: 'imported', note })
    events.record({ app, actor, action: 'release.import', outcome: 'ok', detail: { release: release.id, source } })
    log.warn({ app, release: release.id, how: note }, 're-imported a release directory that had no row')
  }
  const history = await importHistory(deps, app, current, actor)
  const rollbackTarget = deps.deployments.succeededReleases(app).find((r) => r !== current && releases.get(app, r)) ?? null
  const warnings: string[] = []
  const settings = await importSettings(deps, app, actor, warnings)
  return { app, created: created && releases.appExists(app), current, entries, history, rollbackTarget, settings, warnings }
}

/**
 * An app whose row holds no settings (the database was lost) gets those of apps/APP/settings.json, before
 * recovery reads them: the proxy setting decides whether its haproxy is adopted and how the next deploy runs.
 * A file that cannot be used is reported and left as it is; the app keeps the defaults.
 */
async function importSettings(deps: ImportDeps, app: string, actor: string, warnings: string[]): Promise<AppImport['settings']> {
  const stored = deps.apps.storedSettings(app)
  if (stored === null) return 'none'
  if (Object.keys(stored).length > 0) return 'kept'
  const fromFile = await readSettingsFile(deps.paths, app)
  if (fromFile === null) return 'none'
  if (typeof fromFile === 'string') {
    const warning = `apps/${app}/settings.json was not used: ${fromFile}; the app has the default settings until they are set again (berth settings ${app} set ...)`
    warnings.push(warning)
    deps.log.warn({ app, why: fromFile }, warning)
    return 'none'
  }
  if (Object.keys(fromFile).length === 0) return 'none'
  deps.apps.restoreSettings(app, fromFile, actor)
  return 'restored'
}

/**
 * An app with releases but no deployment rows lost its history with the database: apps/APP/deployed.json
 * (written at every successful deployment) gives the releases that deployed, and current is taken as
 * deployed at the time its symlink was switched. Recorded oldest first, so the newest is the last row.
 */
async function importHistory(deps: ImportDeps, app: string, current: string | null, actor: string): Promise<string[]> {
  const { paths, releases, deployments } = deps
  if (deployments.count(app) > 0) return []
  const known = (await readDeployed(paths, app)).filter((d) => releases.get(app, d.release)).reverse()
  const rows = known.map((d) => ({ ...d, reason: `recorded again by ${actor} from apps/${app}/deployed.json when the database was rebuilt from disk` }))
  if (current && releases.get(app, current) && known.at(-1)?.release !== current) {
    const switched = await fs.lstat(paths.current(app)).then((st) => st.mtime.toISOString(), () => new Date().toISOString())
    rows.push({ release: current, at: switched, reason: `current pointed at this release when ${actor} rebuilt the database from disk` })
  }
  for (const r of rows) {
    const id = deploymentId(r.at)
    deployments.recordImported({ id, app, release: r.release, at: r.at, reason: r.reason, actor })
  }
  return rows.map((r) => r.release)
}

/** The row of a release directory without metadata, from what it holds; a sentence when it is not a release. */
async function describeTree(dir: string, app: string, id: string): Promise<Release | string> {
  let version: string
  try {
    // Under the app's releases/ already: of whatever name its releaseName setting took then.
    const identity = await inspectRelease(dir, app, null)
    if (identity.root !== dir) return 'it holds a release one directory down, which berth never writes'
    version = identity.version
  } catch (err) {
    return `it is not a release of ${app} (${isBerthError(err) ? err.message : (err as Error).message})`
  }
  if (`${version}-${id.slice(-12)}` !== id) return `its files say version ${version}, its name another`
  let files = 0
  let bytes = 0
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(d, e.name))
      else {
        files++
        if (e.isFile()) bytes += (await fs.lstat(path.join(d, e.name))).size
      }
    }
  }
  await walk(dir)
  const uploadedAt = (await fs.stat(dir)).mtime.toISOString()
  return { id, app, version, sha256: id.slice(-12), size: 0, unpackedBytes: bytes, files, uploadedAt, uploadedBy: null, kind: detectKind(dir, releaseName(dir, app), version) }
}

async function isDir(p: string): Promise<boolean> {
  return fs.lstat(p).then((s) => s.isDirectory(), () => false)
}

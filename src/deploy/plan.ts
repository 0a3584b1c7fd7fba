// The dry run of a deploy: what deploying a release over `current` would do (steps, migrate expression, Ecto
// migrations, config diffs, ERTS/OTP change, command map) and what would stop it. Reads only; changes nothing.

import { FrontDoor } from '../edge/front.js'
import { detectKind, resolveCommands, type KindCommands } from '../releases/kinds.js'
import type { AppStore } from '../apps/store.js'
import type { ErrorCode } from '../errors.js'
import type { Paths } from '../paths.js'
import { ectoMigrations } from '../releases/content.js'
import { releaseName } from '../releases/script.js'
import { currentReleaseId } from '../releases/current.js'
import { CONFIG_FILES, configFile, ertsVersion, fixedNodeName, otpVersion, type ConfigFile } from '../releases/layout.js'
import { unifiedDiff } from '../releases/line-diff.js'
import type { DeploymentStore, StepName } from '../store/deployments.js'
import type { Release, ReleaseStore } from '../store/releases.js'
import type { Supervisor } from '../supervision/supervisor.js'
import type { Deployer } from './deployer.js'
import { MIGRATE_FALSE } from './migration.js'
import { previousGoodRelease } from './rollback-target.js'

export interface PlanDeps {
  paths: Paths
  releases: ReleaseStore
  deployments: Pick<DeploymentStore, 'lockedBy' | 'succeededReleases'>
  apps: Pick<AppStore, 'settings'>
  supervisor: Pick<Supervisor, 'status' | 'isUp'>
  deployer: Pick<Deployer, 'migration' | 'startPath'>
}

export interface PlanStep {
  name: StepName
  /** always: runs on every deploy; skipped: the deploy records it as skipped; on-failure: only after a failed start or verify. */
  runs: 'always' | 'skipped' | 'on-failure'
  detail: string
}

export interface ConfigChange {
  file: ConfigFile
  /** Path inside each release (releases/VSN/FILE), null where that release has no such file. */
  from: string | null
  to: string | null
  change: 'added' | 'removed' | 'changed'
  /** Unified diff, bounded; null when a file is too large to compare by content. */
  diff: string | null
  truncated: boolean
}

export interface VersionChange {
  from: string | null
  to: string | null
  changed: boolean
}

export interface Plan {
  dryRun: true
  app: string
  release: string
  version: string
  current: string | null
  firstDeploy: boolean
  /** The target is current and its node runs: a deploy would run its migration again and restart the node. */
  alreadyCurrent: boolean
  node: { state: string; release: string | null; pid: number | null }
  kind?: string
  steps: PlanStep[]
  migrate: { expr: string | null; reason: string | null }
  migrations: { added: string[]; missing: string[] }
  config: ConfigChange[]
  erts: VersionChange
  otp: VersionChange
  commands: KindCommands
  /** What would make the deploy fail or be refused right now, with the code the deploy would answer. */
  blockers: { code: ErrorCode; message: string }[]
  warnings: string[]
}

/** Why a release gets no migration step; the deployer's migrateExpr has already answered null. */
function versionChange(from: string | null, to: string | null, hasCurrent: boolean): VersionChange {
  return { from, to, changed: hasCurrent && from !== to }
}

function compareConfig(currentDir: string, currentVersion: string, targetDir: string, targetVersion: string): ConfigChange[] {
  const changes: ConfigChange[] = []
  for (const file of CONFIG_FILES) {
    const a = configFile(currentDir, currentVersion, file)
    const b = configFile(targetDir, targetVersion, file)
    if (!a && !b) continue
    const change = !a ? 'added' : !b ? 'removed' : 'changed'
    if (a && b && a.text !== null && b.text !== null && a.text === b.text) continue
    if (a && b && (a.text === null || b.text === null)) {
      if (a.size === b.size) continue
      changes.push({ file, from: a.path, to: b.path, change, diff: null, truncated: false })
      continue
    }
    const d = unifiedDiff(a?.text ?? '', b?.text ?? '', { from: a ? `current/${a.path}` : '/dev/null', to: b ? `target/${b.path}` : '/dev/null' })
    changes.push({ file, from: a?.path ?? null, to: b?.path ?? null, change, diff: d?.text ?? null, truncated: d?.truncated ?? false })
  }
  return changes
}

/** The plan for deploying `release` of `app` now; `migrate: false` as the deploy itself would take it. */
export async function planDeploy(deps: PlanDeps, app: string, release: Release, opts: { migrate?: boolean } = {}): Promise<Plan> {
  const { paths, releases, supervisor } = deps
  const settings = deps.apps.settings(app)
  const currentId = await currentReleaseId(paths, app)
  const current = currentId ? releases.get(app, currentId) : null
  const targetDir = paths.release(app, release.id)
  const currentDir = currentId ? paths.release(app, currentId) : null
  const node = supervisor.status(app)
  const up = supervisor.isUp(app)
  const alreadyCurrent = currentId === release.id && up
  const bin = releaseName(targetDir, app)
  const releaseKind = release.kind ?? detectKind(targetDir, bin, release.version)
  const cmd = resolveCommands(releaseKind, settings.commands)

  // The deployer's own choice, with its reason: the plan says exactly what the deploy would do.
  const found = deps.deployer.migration(app, release, settings)
  const skipMigration = opts.migrate === false
  const choice = skipMigration ? { ...found, expr: null } : found
  const migrate = { expr: choice.expr, reason: skipMigration ? `${MIGRATE_FALSE}${found.expr ? `: ${found.expr} would not run` : ''}` : choice.expr ? null : choice.note }

  const targetMigrations = ectoMigrations(targetDir, bin)
  const currentMigrations = currentDir ? ectoMigrations(currentDir, releaseName(currentDir, app)) : []
  const had = new Set(currentMigrations)
  const has = new Set(targetMigrations)
  const migrations = { added: targetMigrations.filter((m) => !had.has(m)), missing: currentMigrations.filter((m) => !has.has(m)) }

  const targetErts = ertsVersion(targetDir)
  const currentErts = currentDir ? ertsVersion(currentDir) : null
  const currentVersion = current?.version ?? null
  const erts = versionChange(currentErts, targetErts, !!currentDir)
  const otp = versionChange(currentDir && currentVersion ? otpVersion(currentDir, currentVersion, currentErts) : null, otpVersion(targetDir, release.version, targetErts), !!currentDir)
  const config = currentDir && currentVersion ? compareConfig(currentDir, currentVersion, targetDir, release.version) : []

  const running = up ? `the node running ${node.release ?? 'an unknown release'}${node.pid ? ` (pid ${node.pid})` : ''}` : null
  // The proxy's steps are the deployer's own (proxiedStart): the plan follows the path it would take now.
  const path = deps.deployer.startPath(app, settings)
  const proxy = path === 'direct' ? null : settings.proxy!
  const health = proxy ? `http://127.0.0.1:PORT${proxy.healthPath} on the instance's own port answers 2xx` : settings.healthUrl ? `${settings.healthUrl} answers 2xx` : null
  // What supervision/boot-check.ts waits for: the node's own word that it has booted, not that it answers.
  const booted = `the node has finished booting (asked through bin/${bin} ${cmd.rpc}: init's status is started and the release's permanent applications run)`
  const verify = `${[booted, health].filter(Boolean).join(', then ')}, within the boot timeout (${settings.bootTimeoutMs} ms); only then, it stays up for the stable window (${settings.stableWindowMs} ms); a node that exits or is still booting at the timeout fails`
  const start = `start bin/${bin} ${cmd.start} under run_erl${proxy ? ' on a private loopback port in PORT' : ''} (boot timeout ${settings.bootTimeoutMs} ms)`
  const previousBack = currentId && current ? `if starting or verifying fails: current -> releases/${currentId} and its node started again` : 'if starting or verifying fails: there is no previous release, so the node is stopped'
  const steps: PlanStep[] = [
    choice.expr
      ? { name: 'migrating', runs: 'always', detail: `bin/${bin} ${cmd.eval} ${JSON.stringify(choice.expr)} from releases/${release.id} (timeout ${settings.migrateTimeoutMs} ms)${running ? `, while ${running} keeps serving` : ''}; a failure ends the deploy with current and the node untouched` }
      : { name: 'migrating', runs: 'skipped', detail: migrate.reason! },
    { name: 'switching', runs: 'always', detail: `current -> releases/${release.id}${currentId ? ` (was releases/${currentId})` : ' (first deploy: there is no current yet)'}` },
    ...(path === 'beside-live'
      ? ([
          { name: 'starting', runs: 'always', detail: `${start}, as a second instance beside ${running}, which keeps serving on ${FrontDoor.describe(proxy!)}` },
          { name: 'verifying', runs: 'always', detail: `${verify}; the new instance gets no request until it passes` },
          { name: 'routing', runs: 'always', detail: `${FrontDoor.describe(proxy!)} sends new connections to the new instance, atomically; the old instance keeps the connections it has` },
          { name: 'draining', runs: 'always', detail: `the old instance finishes its connections for up to ${proxy!.drainTimeoutMs} ms (drainTimeoutMs), what is still open then (websockets) is closed, and it is stopped` },
          { name: 'rollback', runs: 'on-failure', detail: `if starting or verifying fails: the new instance is stopped${currentId ? ` and current -> releases/${currentId}` : ''}; the old instance serves throughout and is never stopped` },
        ] satisfies PlanStep[])
      : ([
          { name: 'starting', runs: 'always', detail: `${running ? `stop ${running} with bin/${bin} ${cmd.stop}, then ` : ''}${start}` },
          { name: 'verifying', runs: 'always', detail: verify },
          ...(proxy ? [{ name: 'routing', runs: 'always', detail: `${FrontDoor.describe(proxy)} sends connections to the verified instance (berth starts the proxy if it is not running)` } satisfies PlanStep] : []),
          { name: 'rollback', runs: 'on-failure', detail: previousBack },
        ] satisfies PlanStep[])),
  ]

  const blockers: Plan['blockers'] = []
  const warnings: string[] = []
  const lock = deps.deployments.lockedBy(app)
  if (skipMigration) {
    warnings.push(`no migration would run: ${migrate.reason}; the deploy records the migrating step as skipped, with a warning`)
  } else if (!choice.expr && choice.source !== 'disabled') {
    if (settings.requireMigration) blockers.push({ code: 'MIGRATION_REQUIRED', message: `no migration would run (${choice.note}) and the requireMigration setting is on: the deploy would fail before anything changes` })
    else warnings.push(`no migration would run: ${choice.note}; the deploy would succeed with a warning (requireMigration: true makes it fail)`)
  }
  if (lock) blockers.push({ code: 'DEPLOYMENT_IN_PROGRESS', message: `deployment ${lock} of "${app}" is in progress; a deploy now would be refused` })

  if (path === 'proxied' && running) warnings.push(`the proxy is on but no instance serves behind it: ${running} is stopped before the new one starts, so requests fail until it is routed; the deploys after this one keep the old instance serving`)
  const named = proxy ? fixedNodeName(targetDir, release.version) : null
  if (named) {
    const when = path === 'beside-live' ? 'this deploy starts it beside the live instance, so it would not boot (the deploy would roll back)' : 'every deploy after this one starts a second instance beside the live one, which would not boot'
    warnings.push(`the release names its node ${named.name} in ${named.file}, not from RELEASE_NODE: with the proxy on, ${when} under a name already taken; write -sname \${RELEASE_NODE} there`)
  }
  if (!currentId) warnings.push(`first deploy: "${app}" has no current release, so a failure cannot roll back to one`)
  if (alreadyCurrent) warnings.push(`release ${release.id} is already current and running: deploying it again ${choice.expr ? 'runs its migration again and ' : ''}restarts the node`)
  if (migrations.missing.length > 0) {
    warnings.push(`release ${currentId} has database migrations that ${release.id} lacks: ${migrations.missing.join(', ')}. A deploy does not undo them; check that the schema is compatible`)
  }
  if (erts.changed) warnings.push(`the runtime changes: ERTS ${erts.from ?? 'unknown'} -> ${erts.to ?? 'unknown'}${otp.changed ? ` (OTP ${otp.from ?? 'unknown'} -> ${otp.to ?? 'unknown'})` : ''}`)

  // Recorded by intake; detected from the tree for a release uploaded before berth recorded kinds.
  const kind = { kind: releaseKind }
  return {
    dryRun: true,
    app,
    release: release.id,
    version: release.version,
    current: currentId,
    firstDeploy: !currentId,
    alreadyCurrent,
    node: { state: node.state, release: node.release, pid: node.pid },
    ...kind,
    steps,
    migrate,
    migrations,
    config,
    erts,
    otp,
    commands: { ...cmd },
    blockers,
    warnings,
  }
}

/**
 * The plan of a rollback to `to` (or the previous good release): a deploy's plan of the target without its
 * migration, since a rollback runs none, and with the rollback expression step when it was asked for.
 */
export async function planRollback(deps: PlanDeps, app: string, to: Release | null, opts: { runRollbackExpr?: boolean } = {}): Promise<Plan> {
  const currentId = await currentReleaseId(deps.paths, app)
  const target = to ?? previousGoodRelease(deps, app, currentId)
  const plan = await planDeploy(deps, app, target)
  const settings = deps.apps.settings(app)
  const revert: PlanStep = opts.runRollbackExpr
    ? { name: 'reverting_migrations', runs: 'always', detail: settings.rollbackExpr ? `bin/${currentId ? releaseName(deps.paths.release(app, currentId), app) : app} ${plan.commands.eval} ${JSON.stringify(settings.rollbackExpr.replaceAll('VERSION', target.version))} from releases/${currentId}` : 'runRollbackExpr is asked for but the app has no rollbackExpr setting: the rollback would fail before anything changes' }
    : { name: 'reverting_migrations', runs: 'skipped', detail: 'not asked for (runRollbackExpr)' }
  const blockers = plan.blockers.filter((b) => b.code !== 'MIGRATION_REQUIRED')
  if (opts.runRollbackExpr && !settings.rollbackExpr) blockers.push({ code: 'ROLLBACK_EXPR_MISSING', message: 'runRollbackExpr is asked for, but the app has no rollbackExpr setting' })
  if (plan.alreadyCurrent) blockers.push({ code: 'ROLLBACK_TO_CURRENT', message: `release ${target.id} is already current and running` })
  // The deploy's warnings about migrations and re-deploying current do not apply; the rollback's own replace them.
  const warnings = plan.warnings.filter((w) => !w.startsWith('no migration would run') && !w.startsWith(`release ${target.id} is already current`) && !w.startsWith(`release ${currentId} has database migrations`))
  if (plan.migrations.missing.length > 0) {
    warnings.unshift(`release ${currentId} ran database migrations that ${target.id} does not have: ${plan.migrations.missing.join(', ')}. A rollback does not undo them unless asked to (runRollbackExpr with a rollbackExpr setting); check that the schema is compatible`)
  }
  return {
    ...plan,
    steps: [revert, ...plan.steps.filter((s) => s.name !== 'migrating')],
    migrate: { expr: null, reason: 'a rollback runs no migrations' },
    blockers,
    warnings,
  }
}

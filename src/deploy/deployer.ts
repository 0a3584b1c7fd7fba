// The deployment state machine and the per-app lock: migrate → switch → start → verify, with automatic
// rollback when the new node fails, explicit rollbacks, operate (start/stop/restart) and crash recovery.

import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { fsyncDir } from '../fsutil.js'
import { currentReleaseId, deleteRelease } from '../intake/cleanup.js'
import type { Paths } from '../paths.js'
import type { AppStore } from '../store/apps.js'
import { LockedError, type Deployment, type DeploymentStore, type StepName } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { Release, ReleaseStore } from '../store/releases.js'
import type { Supervisor } from '../supervision/supervisor.js'
import { recordDeployed } from './history.js'
import { moduleName, type AppSettings } from './settings.js'

export interface DeployerDeps {
  /** Test hook: a pause at the start of one step (see Config.testStepPause). */
  stepPause?: { step: string; ms: number } | null
  paths: Paths
  releases: ReleaseStore
  deployments: DeploymentStore
  apps: AppStore
  events: EventStore
  supervisor: Supervisor
  log: Logger
}

class StepFailed extends Error {}

/** Replaces apps/APP/current atomically: a fresh symlink renamed over the old one, then the directory synced. */
export async function switchCurrent(paths: Paths, app: string, release: string): Promise<void> {
  const tmp = path.join(paths.app(app), `.current-${process.pid}-${crypto.randomBytes(4).toString('hex')}`)
  await fs.promises.symlink(`releases/${release}`, tmp)
  try {
    await fs.promises.rename(tmp, paths.current(app))
  } catch (err) {
    await fs.promises.rm(tmp, { force: true })
    throw err
  }
  await fsyncDir(paths.app(app))
}

/** Ecto migrations a release ships: lib/APP-VSN/priv/repo/migrations/*.exs (file names only). */
export function ectoMigrations(releaseDir: string, app: string): string[] {
  const lib = path.join(releaseDir, 'lib')
  const appDir = fs.existsSync(lib) ? fs.readdirSync(lib).find((d) => d.startsWith(`${app}-`)) : undefined
  if (!appDir) return []
  const dir = path.join(lib, appDir, 'priv', 'repo', 'migrations')
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.exs')).sort() : []
}

export class Deployer {
  private readonly running = new Map<string, Promise<Deployment>>()
  /** Called when a deployment or operation has finished (the crash policy resets its budget). */
  onSettled: (app: string) => void = () => {}

  constructor(private readonly deps: DeployerDeps) {}

  /** Resolves when the deployment has reached a final state. */
  finished(id: string): Promise<Deployment> | null {
    return this.running.get(id) ?? null
  }

  private begin(input: Omit<Deployment, 'state' | 'reason' | 'steps' | 'createdAt' | 'finishedAt' | 'id'>, work: (d: Deployment) => Promise<void>): Deployment {
    const id = `${new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14)}-${crypto.randomBytes(3).toString('hex')}`
    let d: Deployment
    try {
      d = this.deps.deployments.create({ ...input, id })
    } catch (err) {
      if (err instanceof LockedError) {
        throw problem('DEPLOYMENT_IN_PROGRESS', `App "${input.app}" is busy with deployment ${err.holder}; wait for it (GET /v1/apps/${input.app}/deployments/${err.holder}) and try again.`, { deployment: err.holder })
      }
      throw err
    }
    const log = this.deps.log.child({ app: d.app, deployment: d.id })
    log.info({ kind: d.kind, release: d.release, previous: d.previous }, `${d.kind} started`)
    const job = work(d)
      .catch((err: Error) => {
        log.error({ err }, `${d.kind} crashed`)
        d.state = 'failed'
        d.reason ??= `berth failed: ${err.message}`
      })
      .then(async () => {
        this.deps.deployments.finish(d)
        if (d.state === 'succeeded' && (d.kind === 'deploy' || d.kind === 'rollback')) {
          await recordDeployed(this.deps.paths, d.app, d.release, d.finishedAt!).catch((err) => log.warn({ err }, 'could not record the deployment in deployed.json'))
        }
        const steps = d.steps.filter((s) => s.endedAt).map((s) => ({ name: s.name, ms: Date.parse(s.endedAt!) - Date.parse(s.startedAt) }))
        const durationMs = Date.parse(d.finishedAt ?? new Date().toISOString()) - Date.parse(d.createdAt)
        this.deps.events.record({ app: d.app, actor: d.actor, action: d.kind, outcome: d.state, detail: { deployment: d.id, release: d.release, reason: d.reason, durationMs, steps } })
        log.info({ state: d.state, reason: d.reason }, `${d.kind} finished`)
        this.running.delete(d.id)
        this.onSettled(d.app)
        return d
      })
    this.running.set(d.id, job)
    return d
  }

  /** Runs one step: recorded as running before it starts, with its output and end time after. */
  private async step(d: Deployment, name: StepName, fn: () => Promise<string | null>): Promise<void> {
    const step = { name, state: 'running' as const, startedAt: new Date().toISOString(), endedAt: null as string | null, output: '' }
    d.steps.push(step)
    if (name !== 'rollback') d.state = name
    this.deps.deployments.save(d)
    const s = d.steps[d.steps.length - 1]!
    const pause = this.deps.stepPause
    if (pause && pause.step === name) await new Promise((r) => setTimeout(r, pause.ms))
    try {
      const out = await fn()
      Object.assign(s, { state: out === null ? 'skipped' : 'ok', output: out ?? '', endedAt: new Date().toISOString() })
    } catch (err) {
      Object.assign(s, { state: 'failed', output: (err as Error).message, endedAt: new Date().toISOString() })
      if (err instanceof StepFailed && (err as StepFailed & { output?: string }).output) s.output = (err as StepFailed & { output?: string }).output!
      this.deps.deployments.save(d)
      throw err
    }
    this.deps.deployments.save(d)
  }

  /** The migrate expression for a release: settings override; default App.Release.migrate() when the module exists. */
  migrateExpr(app: string, release: Release, settings: AppSettings): string | null {
    if (settings.migrateExpr !== null) return settings.migrateExpr.trim() === '' ? null : settings.migrateExpr
    const mod = moduleName(app)
    const beam = path.join(this.deps.paths.release(app, release.id), 'lib', `${app}-${release.version}`, 'ebin', `Elixir.${mod}.Release.beam`)
    return fs.existsSync(beam) ? `${mod}.Release.migrate()` : null
  }

  async deploy(app: string, release: Release, actor: string | null): Promise<Deployment> {
    const previous = await currentReleaseId(this.deps.paths, app)
    return this.begin({ app, kind: 'deploy', release: release.id, previous, warnings: [], actor }, (d) => this.runDeploy(d, release))
  }

  private async runDeploy(d: Deployment, release: Release): Promise<void> {
    const { apps, supervisor } = this.deps
    const settings = apps.settings(d.app)
    const expr = this.migrateExpr(d.app, release, settings)
    try {
      await this.step(d, 'migrating', async () => {
        if (!expr) return null
        const r = await supervisor.command(d.app, release.id, settings.commands.eval, [expr], settings.migrateTimeoutMs)
        const head = `$ bin/${d.app} ${settings.commands.eval} ${JSON.stringify(expr)}\n`
        if (r.timedOut) throw Object.assign(new StepFailed(`migration timed out after ${settings.migrateTimeoutMs} ms and was killed`), { output: `${head}${r.output}\n[killed after ${settings.migrateTimeoutMs} ms]` })
        if (r.code !== 0) throw Object.assign(new StepFailed(`migration exited with code ${r.code ?? r.signal}`), { output: `${head}${r.output}` })
        return `${head}${r.output}`
      })
    } catch (err) {
      d.state = 'failed'
      d.reason = `${(err as Error).message}; current release and running node are untouched`
      return
    }
    try {
      await this.switchStartVerify(d, release.id, settings)
      this.deps.apps.saveNode({ ...this.deps.apps.node(d.app)!, restarts: 0 })
      await this.retain(d.app, settings)
    } catch (err) {
      const why = (err as Error).message
      await this.autoRollback(d, settings, why)
    }
  }

  /** The steps deploy and rollback share: switch current, replace the node, verify; succeeded when all pass. */
  private async switchStartVerify(d: Deployment, release: string, settings: AppSettings): Promise<void> {
    const { supervisor } = this.deps
    await this.step(d, 'switching', async () => {
      await switchCurrent(this.deps.paths, d.app, release)
      return `current -> releases/${release}`
    })
    await this.step(d, 'starting', async () => {
      await supervisor.stop(d.app, settings, { desired: 'running' })
      await supervisor.start(d.app, release, settings)
      return `started ${release} under run_erl`
    })
    await this.step(d, 'verifying', () => supervisor.verify(d.app, settings))
    d.state = 'succeeded'
  }

  /** Puts the previous release back after a failed start/verify; ends the deployment rolled_back (or failed without one). */
  private async autoRollback(d: Deployment, settings: AppSettings, why: string): Promise<void> {
    const { supervisor } = this.deps
    if (!d.previous) {
      await supervisor.stop(d.app, settings).catch(() => {})
      d.state = 'failed'
      d.reason = `${why}; there is no previous release to roll back to, the node is stopped`
      return
    }
    try {
      await this.step(d, 'rollback', async () => {
        await switchCurrent(this.deps.paths, d.app, d.previous!)
        await supervisor.stop(d.app, settings, { desired: 'running' })
        await supervisor.start(d.app, d.previous!, settings)
        const verified = await supervisor.verify(d.app, { ...settings, stableWindowMs: 0 })
        return `current -> releases/${d.previous}\n${verified}`
      })
      d.state = 'rolled_back'
      d.reason = `${why}; rolled back to ${d.previous}`
    } catch (err) {
      d.state = 'failed'
      d.reason = `${why}; the rollback to ${d.previous} failed too: ${(err as Error).message}`
    }
  }

  /** Rollback to `to`, or to the last release that succeeded before the current one. No migrations run. */
  async rollback(app: string, to: Release | null, actor: string | null, opts: { runRollbackExpr?: boolean } = {}): Promise<Deployment> {
    const { paths, deployments, releases } = this.deps
    const current = await currentReleaseId(paths, app)
    let target = to
    if (!target) {
      const id = deployments.succeededReleases(app).find((r) => r !== current && releases.get(app, r))
      if (!id) throw problem('NO_ROLLBACK_TARGET', `App "${app}" has no earlier release that deployed successfully; name one with {"to": ID}.`)
      target = releases.get(app, id)!
    }
    if (target.id === current && this.deps.supervisor.isUp(app)) {
      throw problem('ROLLBACK_TO_CURRENT', `Release ${target.id} is already current and running.`)
    }
    const warnings: string[] = []
    if (current) {
      const leaving = ectoMigrations(paths.release(app, current), app)
      const kept = new Set(ectoMigrations(paths.release(app, target.id), app))
      const extra = leaving.filter((m) => !kept.has(m))
      if (extra.length > 0) {
        warnings.push(`release ${current} ran database migrations that ${target.id} does not have: ${extra.join(', ')}. They are not undone unless you ask (runRollbackExpr with a rollbackExpr setting); check the schema is compatible.`)
      }
    }
    const t = target
    return this.begin({ app, kind: 'rollback', release: t.id, previous: current, warnings, actor }, (d) => this.runRollback(d, t, opts))
  }

  private async runRollback(d: Deployment, target: Release, opts: { runRollbackExpr?: boolean }): Promise<void> {
    const { apps, supervisor } = this.deps
    const settings = apps.settings(d.app)
    try {
      await this.step(d, 'migrating', async () => {
        if (!opts.runRollbackExpr) return null
        if (!settings.rollbackExpr || !d.previous) throw new StepFailed('runRollbackExpr was asked for, but the app has no rollbackExpr setting')
        // The expression runs from the release being left: it is the one that knows its own migrations.
        const expr = settings.rollbackExpr.replaceAll('VERSION', target.version)
        const r = await supervisor.command(d.app, d.previous, settings.commands.eval, [expr], settings.migrateTimeoutMs)
        if (r.code !== 0 || r.timedOut) throw Object.assign(new StepFailed(`rollback expression failed (${r.timedOut ? 'timed out' : `exit ${r.code}`})`), { output: r.output })
        return r.output
      })
    } catch (err) {
      d.state = 'failed'
      d.reason = `${(err as Error).message}; nothing was changed`
      return
    }
    try {
      await this.switchStartVerify(d, target.id, settings)
    } catch (err) {
      await this.autoRollback(d, settings, (err as Error).message)
    }
  }

  /**
   * Keeps the newest `keepReleases` releases that deployed successfully, plus current and anything a deployment
   * uses; releases whose deployments all failed and that are older than current go too. Undeployed uploads stay.
   */
  private async retain(app: string, settings: AppSettings): Promise<void> {
    const { releases, deployments, paths } = this.deps
    const current = await currentReleaseId(paths, app)
    const succeeded = [...new Set(deployments.succeededReleases(app))]
    const keep = new Set([current, ...succeeded.slice(0, settings.keepReleases)])
    const all = releases.list(app)
    const currentIndex = all.findIndex((r) => r.id === current)
    const attempted = new Set(deployments.list(app, 1000).map((d) => d.release))
    for (const [i, r] of all.entries()) {
      if (keep.has(r.id)) continue
      const oldSuccess = succeeded.includes(r.id)
      const failedOlder = !oldSuccess && attempted.has(r.id) && currentIndex >= 0 && i > currentIndex
      if (!oldSuccess && !failedOlder) continue
      await deleteRelease(this.deps, app, r.id, 'berth').catch((err) => this.deps.log.warn({ app, release: r.id, err }, 'retention could not delete release'))
    }
  }

  /** Start/stop/restart of the current release, outside a deployment; takes the same lock. */
  async operate(app: string, action: 'start' | 'stop' | 'restart', actor: string | null): Promise<Deployment> {
    const current = await currentReleaseId(this.deps.paths, app)
    if (!current && action !== 'stop') throw problem('NOT_DEPLOYED', `App "${app}" has no current release; deploy one first.`)
    if (action === 'start' && this.deps.supervisor.isUp(app)) throw problem('ALREADY_RUNNING', `App "${app}" is already running.`)
    return this.begin({ app, kind: action, release: current ?? '-', previous: current, warnings: [], actor }, async (d) => {
      const settings = this.deps.apps.settings(app)
      const { supervisor } = this.deps
      if (action !== 'start') await this.step(d, 'starting', async () => (await supervisor.stop(app, settings, { desired: action === 'restart' ? 'running' : 'stopped' }), 'stopped'))
      if (action !== 'stop') {
        await this.step(d, 'starting', async () => (await supervisor.start(app, current!, settings), `started ${current}`))
        await this.step(d, 'verifying', () => supervisor.verify(app, { ...settings, stableWindowMs: Math.min(settings.stableWindowMs, 2000) }))
      }
      d.state = 'succeeded'
    })
  }

  /**
   * Start-up recovery: every deployment an earlier agent left unfinished gets a final state naming the step it
   * died in, and current is made to point at a complete, recorded release. Runs before the lock table is used.
   */
  async recover(): Promise<Deployment[]> {
    const { deployments, paths, releases, log } = this.deps
    deployments.clearStaleLocks()
    const fixed: Deployment[] = []
    for (const d of deployments.unfinished()) {
      d.state = 'failed'
      const step = d.steps.at(-1)?.name ?? 'pending'
      d.reason = `agent restarted during ${step}`
      const cur = await currentReleaseId(paths, d.app)
      if (cur && !releases.get(d.app, cur)) {
        // current names a release that is not recorded: put back what the deployment started from.
        if (d.previous) await switchCurrent(paths, d.app, d.previous)
      }
      deployments.finish(d)
      this.deps.events.record({ app: d.app, actor: 'berth', action: d.kind, outcome: 'failed', detail: { deployment: d.id, reason: d.reason } })
      log.warn({ app: d.app, deployment: d.id, step }, 'resolved deployment interrupted by an agent restart')
      fixed.push(d)
    }
    return fixed
  }
}

// The deployments of apps and the per-app lock: migrate → switch → start → verify, with automatic rollback
// when the new node fails, explicit rollbacks, operate (start/stop/restart), and the owner of every running
// deployment at shutdown (finished within the grace period, or aborted). States move only through machine.ts;
// the migration choice, recovery, retention and the proxied start live in modules of their own beside it.

import type { AppDirs } from '../isolation/app-dirs.js'
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { AppSettings } from '../apps/settings.js'
import { isBerthError, problem, StepFailed } from '../errors.js'
import { currentReleaseId, switchCurrent } from '../releases/current.js'
import { recordDeployed } from '../releases/history.js'
import type { Deployment, StepName } from '../store/deployments.js'
import type { AuditOutcome } from '../store/events.js'
import { deploymentId } from '../store/ids.js'
import type { Release } from '../store/releases.js'
import type { HealthMonitor } from '../supervision/health.js'
import { fail, isFinal, restored, succeed } from './machine.js'
import { chooseMigration, MIGRATE_FALSE, runEval, type MigrationChoice } from './migration.js'
import { isProxied, ProxiedStart, type ProxiedSettings } from './proxied.js'
import { recoverDeployments, type RecoveryDeps } from './recovery.js'
import { retainReleases } from './retention.js'
import { leftMigrationsWarning, previousGoodRelease } from './rollback-target.js'
import { codeOf, runStep, verifyNode, type StepOutcome } from './steps.js'

export { MIGRATE_FALSE, type MigrationChoice } from './migration.js'
export { previousGoodRelease } from './rollback-target.js'

export interface DeployOptions {
  /** false: the migrating step is recorded as skipped, with MIGRATE_FALSE as its output and a warning. */
  migrate?: boolean
  rollout?: string | null
}

/** What recovery needs (the stores, the node, the instances and proxy: see RecoveryDeps), and the health monitor. */
export interface DeployerDeps extends Omit<RecoveryDeps, 'operate'> {
  /** Test hook: a pause at the start of one step (see Config.testStepPause). */
  stepPause?: { step: string; ms: number } | null
  health: Pick<HealthMonitor, 'verified'>
  /** Retention removes a release's files in the app's own directories as the app (isolation/app-dirs.ts). */
  appDirs?: Pick<AppDirs, 'remove'>
}

export interface DeployerEvents {
  /** A deployment or operation of the app has ended (final, or left for recovery by a shutdown). */
  settled: [app: string]
}

interface Running {
  job: Promise<Deployment>
  abort: AbortController
}

type NewDeployment = Omit<Deployment, 'state' | 'reason' | 'reasonCode' | 'steps' | 'createdAt' | 'finishedAt' | 'id' | 'rollout'> & { rollout?: string | null }

export class Deployer extends EventEmitter<DeployerEvents> {
  private readonly running = new Map<string, Running>()
  private readonly proxied: ProxiedStart

  constructor(private readonly deps: DeployerDeps) {
    super()
    this.proxied = new ProxiedStart(deps)
  }

  /** Resolves when the deployment has reached a final state. */
  finished(id: string): Promise<Deployment> | null {
    return this.running.get(id)?.job ?? null
  }

  get inFlight(): number {
    return this.running.size
  }

  /**
   * Shutdown: lets running deployments finish for up to `graceMs`, then aborts them through their signal.
   * An aborted migration is killed and its deployment ends failed with nothing changed; one aborted after
   * the switch is left unfinished on purpose, so that the next start's recovery puts the previous release
   * back exactly as it does after kill -9. Resolves when every job has stopped touching the database.
   */
  async shutdown(graceMs: number): Promise<void> {
    const jobs = [...this.running.values()]
    if (jobs.length === 0) return
    this.deps.log.info({ deployments: jobs.length, graceMs }, 'waiting for running deployments')
    let timer: NodeJS.Timeout | undefined
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))
    await Promise.race([Promise.allSettled(jobs.map((j) => j.job)), graceOver])
    clearTimeout(timer)
    for (const j of this.running.values()) j.abort.abort()
    await Promise.allSettled(jobs.map((j) => j.job))
  }

  private begin(input: NewDeployment, work: (d: Deployment, signal: AbortSignal) => Promise<void>): Deployment {
    // Checked in the same synchronous turn as the insert: a DELETE of the release cannot slip in between.
    for (const r of [input.release, input.previous]) {
      if (r && r !== '-' && !this.deps.releases.get(input.app, r)) throw problem('RELEASE_NOT_FOUND', `App "${input.app}" has no release "${r}" any more; list them with GET /v1/apps/${input.app}/releases.`)
    }
    const d = this.deps.deployments.create({ ...input, id: deploymentId() })
    const log = this.deps.log.child({ app: d.app, deployment: d.id })
    log.info({ kind: d.kind, release: d.release, previous: d.previous }, `${d.kind} started`)
    const abort = new AbortController()
    const job = work(d, abort.signal)
      .catch((err: Error) => {
        if (!isBerthError(err)) log.error({ err }, `${d.kind} crashed`)
        // What the work recorded before it threw (a reason, a code) stays; a final state is never rewritten.
        if (!isFinal(d.state)) fail(d, d.reasonCode ?? codeOf(err), d.reason ?? (isBerthError(err) ? err.message : `berth failed: ${err.message}`))
      })
      .then(() => this.settle(d, abort.signal, log))
    this.running.set(d.id, { job, abort })
    void job.finally(() => this.proxied.untouchedLive(d.id))
    return d
  }

  /** The one end of every job: the final state and lock release, deployed.json, the audit event and its webhooks. */
  private async settle(d: Deployment, signal: AbortSignal, log: Logger): Promise<Deployment> {
    this.running.delete(d.id)
    if (signal.aborted && !isFinal(d.state)) {
      // Left for the next start's recovery (see shutdown); the reason says where it stopped.
      this.deps.deployments.save(d)
      log.warn({ state: d.state }, `${d.kind} aborted by shutdown; the next start recovers it`)
      this.emit('settled', d.app)
      return d
    }
    if (!isFinal(d.state)) fail(d, d.reasonCode, d.reason ?? `berth ended the ${d.kind} in ${d.state} without a final state`)
    this.deps.deployments.finish(d)
    if (d.state === 'succeeded' && (d.kind === 'deploy' || d.kind === 'rollback')) {
      await recordDeployed(this.deps.paths, d.app, d.release, d.finishedAt!).catch((err) => log.warn({ err }, 'could not record the deployment in deployed.json'))
    }
    const steps = d.steps.filter((s) => s.endedAt).map((s) => ({ name: s.name, ms: Date.parse(s.endedAt!) - Date.parse(s.startedAt) }))
    const durationMs = Date.parse(d.finishedAt ?? new Date().toISOString()) - Date.parse(d.createdAt)
    // Webhooks get this detail: the warnings (e.g. no migration ran) travel with the outcome.
    this.deps.events.record({ app: d.app, actor: d.actor, action: d.kind, outcome: d.state as AuditOutcome, detail: { deployment: d.id, release: d.release, reason: d.reason, reasonCode: d.reasonCode, warnings: d.warnings, durationMs, steps } })
    log.info({ state: d.state, reason: d.reason }, `${d.kind} finished`)
    this.emit('settled', d.app)
    return d
  }

  private step(d: Deployment, name: StepName, signal: AbortSignal, fn: () => Promise<StepOutcome>): Promise<void> {
    return runStep(this.deps, d, name, signal, fn)
  }

  /** The migration a deploy of `release` runs (see migration.ts); the dry run asks the same. */
  migration(app: string, release: Release, settings: AppSettings): MigrationChoice {
    return chooseMigration(this.deps.paths, app, release, settings)
  }

  /** How a deploy would start the node now (see proxied.ts); the dry run asks the same. */
  startPath(app: string, settings: AppSettings): 'direct' | 'proxied' | 'beside-live' {
    return this.proxied.startPath(app, settings)
  }

  /** `migrate: false` skips the migration (a fleet runs it on one host only); `rollout` tags the deployment. */
  async deploy(app: string, release: Release, actor: string | null, opts: DeployOptions = {}): Promise<Deployment> {
    const previous = await currentReleaseId(this.deps.paths, app)
    return this.begin({ app, kind: 'deploy', release: release.id, previous, warnings: [], actor, rollout: opts.rollout ?? null }, (d, signal) => this.runDeploy(d, release, signal, opts.migrate !== false))
  }

  private async runDeploy(d: Deployment, release: Release, signal: AbortSignal, migrate: boolean): Promise<void> {
    const { apps } = this.deps
    const settings = apps.settings(d.app)
    const choice = this.migration(d.app, release, settings)
    try {
      await this.step(d, 'migrating', signal, async () => {
        // Asked for by the caller (requireMigration does not refuse it), but never silent.
        if (!migrate) {
          d.warnings.push(`no migration ran for ${release.id}: migrate: false requested${d.rollout ? ` by rollout ${d.rollout}` : ''}${choice.expr ? ` (${choice.expr} was not run)` : ''}`)
          return { skipped: MIGRATE_FALSE }
        }
        if (choice.expr) return runEval(this.deps, d, release.id, choice.expr, settings, signal, 'MIGRATION_FAILED', choice.source === 'release' ? choice.note : undefined)
        if (choice.source === 'disabled') return { skipped: choice.note }
        // Nothing migrates and nobody said that is fine: a green deploy must not hide that.
        if (settings.requireMigration) {
          throw new StepFailed('MIGRATION_REQUIRED', `no migration would run (${choice.note}) and the app's requireMigration setting is on; set migrateExpr to the expression that migrates, or to "" if the app has no migrations`, `no migration step: ${choice.note}\nrequireMigration is on: the deploy stops here`)
        }
        d.warnings.push(`no migration ran for ${release.id}: ${choice.note}. If the app has no migrations, set migrateExpr to "" to say so; set migrateExpr to the expression that migrates otherwise; requireMigration: true makes such a deploy fail instead.`)
        return { skipped: `no migration step: ${choice.note}` }
      })
    } catch (err) {
      // Only what is true: a first deploy has no current release, and a stopped app no running node.
      const kept = !d.previous ? 'there was no current release; nothing was started' : this.deps.supervisor.isUp(d.app) ? 'current release and running node are untouched' : 'current release is untouched; its node was not running and was not started'
      return fail(d, codeOf(err), `${(err as Error).message}; ${kept}`)
    }
    try {
      await this.switchStartVerify(d, release.id, settings, signal)
    } catch (err) {
      if (signal.aborted) return
      return this.autoRollback(d, settings, err, signal)
    }
    const rec = this.deps.apps.node(d.app)
    if (rec) this.deps.apps.saveNode({ ...rec, restarts: 0 })
    await retainReleases(this.deps, d.app, settings)
  }

  /** The steps deploy and rollback share: switch current, replace the node, verify; succeeded when all pass. */
  private async switchStartVerify(d: Deployment, release: string, settings: AppSettings, signal: AbortSignal): Promise<void> {
    const { supervisor } = this.deps
    await this.step(d, 'switching', signal, async () => {
      await switchCurrent(this.deps.paths, d.app, release)
      return `current -> releases/${release}`
    })
    if (isProxied(this.deps, settings)) return this.proxied.start(d, release, settings, signal)
    await this.step(d, 'starting', signal, async () => {
      const forced = await supervisor.stop(d.app, settings, { desired: 'running', cause: `stopped by ${d.kind} to ${release}` })
      if (forced) d.warnings.push(forced)
      // The proxy was turned off: its listener goes, and the node listens where the app's env says.
      if (this.deps.proxy && (this.deps.proxy.status(d.app) || this.deps.proxy.isRunning(d.app))) await this.deps.proxy.stop(d.app)
      await supervisor.start(d.app, release, settings, null)
      return `started ${release} under run_erl`
    })
    await this.step(d, 'verifying', signal, () => verifyNode(this.deps, d.app, settings, signal))
    succeed(d)
  }

  /** Stops the node after a failed boot, and says in the reason whether that worked. */
  private async stopAfterFailure(app: string, settings: AppSettings): Promise<string> {
    try {
      await this.deps.supervisor.stop(app, settings, { cause: 'stopped after it failed verification' })
      return 'the node is stopped'
    } catch (err) {
      this.deps.log.error({ app, err }, 'could not stop the node after a failed deployment')
      return `stopping the node failed too (${(err as Error).message}); check it with GET /v1/apps/${app}`
    }
  }

  /**
   * Puts the previous release back after a failed switch, start or verify; ends the deployment rolled_back
   * (or failed without one). Behind the proxy, a new instance that never took traffic is only dropped.
   */
  private async autoRollback(d: Deployment, settings: AppSettings, err: unknown, signal: AbortSignal): Promise<void> {
    const { supervisor } = this.deps
    const why = (err as Error).message
    const code = codeOf(err)
    // Recorded before anything is put back: a shutdown meanwhile leaves it for recovery with the cause it failed from.
    d.reasonCode = code
    // The new instance may have died already (a crash on boot): what counts is that it never took traffic.
    const dropOnly = isProxied(this.deps, settings) && this.proxied.untouchedLive(d.id)
    if (!dropOnly && !d.previous) return fail(d, code, `${why}; there is no previous release to roll back to, ${await this.stopAfterFailure(d.app, settings)}`)
    try {
      if (dropOnly) {
        await this.proxied.dropNewInstance(d, settings as ProxiedSettings, signal)
      } else {
        await this.step(d, 'rollback', signal, async () => {
          await switchCurrent(this.deps.paths, d.app, d.previous!)
          const forced = await supervisor.stop(d.app, settings, { desired: 'running', cause: `stopped by the rollback to ${d.previous}` })
          if (forced) d.warnings.push(forced)
          await supervisor.start(d.app, d.previous!, settings)
          const verified = await verifyNode(this.deps, d.app, { ...settings, stableWindowMs: 0 }, signal)
          return `current -> releases/${d.previous}\n${verified}`
        })
      }
    } catch (again) {
      if (signal.aborted) return
      return fail(d, code, dropOnly ? `${why}; putting the previous release back failed: ${(again as Error).message}` : `${why}; the rollback to ${d.previous} failed too: ${(again as Error).message}`)
    }
    if (!d.previous) return fail(d, code, `${why}; the new instance is stopped`)
    restored(d, dropOnly ? `${why}; rolled back to ${d.previous}, which served throughout` : `${why}; rolled back to ${d.previous}`)
  }

  /** Rollback to `to`, or to the last release that succeeded before the current one. No migrations run. */
  async rollback(app: string, to: Release | null, actor: string | null, opts: { runRollbackExpr?: boolean; rollout?: string | null } = {}): Promise<Deployment> {
    const { paths, deployments, releases } = this.deps
    const current = await currentReleaseId(paths, app)
    const target = to ?? previousGoodRelease({ deployments, releases }, app, current)
    if (target.id === current && this.deps.supervisor.isUp(app)) {
      throw problem('ROLLBACK_TO_CURRENT', `Release ${target.id} is already current and running.`)
    }
    const warnings = leftMigrationsWarning(paths, app, current, target)
    return this.begin({ app, kind: 'rollback', release: target.id, previous: current, warnings, actor, rollout: opts.rollout ?? null }, (d, signal) => this.runRollback(d, target, opts, signal))
  }

  private async runRollback(d: Deployment, target: Release, opts: { runRollbackExpr?: boolean }, signal: AbortSignal): Promise<void> {
    const settings = this.deps.apps.settings(d.app)
    try {
      await this.step(d, 'reverting_migrations', signal, async () => {
        if (!opts.runRollbackExpr) return null
        if (!settings.rollbackExpr || !d.previous) throw problem('ROLLBACK_EXPR_MISSING', 'runRollbackExpr was asked for, but the app has no rollbackExpr setting')
        // The expression runs from the release being left: it is the one that knows its own migrations.
        return runEval(this.deps, d, d.previous, settings.rollbackExpr.replaceAll('VERSION', target.version), settings, signal, 'ROLLBACK_EXPR_FAILED')
      })
    } catch (err) {
      return fail(d, codeOf(err), `${(err as Error).message}; nothing was changed`)
    }
    try {
      await this.switchStartVerify(d, target.id, settings, signal)
    } catch (err) {
      if (signal.aborted) return
      await this.autoRollback(d, settings, err, signal)
    }
  }

  /**
   * Start/stop/restart of the current release, outside a deployment; takes the same lock. The lock is
   * checked before the node's state: during a stop the node is still up, and "already running" would be false.
   */
  async operate(app: string, action: 'start' | 'stop' | 'restart', actor: string | null): Promise<Deployment> {
    const current = await currentReleaseId(this.deps.paths, app)
    if (!current && action !== 'stop') throw problem('NOT_DEPLOYED', `App "${app}" has no current release; deploy one first.`)
    this.deps.deployments.assertIdle(app)
    if (action === 'start' && this.deps.supervisor.isUp(app)) throw problem('ALREADY_RUNNING', `App "${app}" is already running.`)
    return this.begin({ app, kind: action, release: current ?? '-', previous: current, warnings: [], actor }, (d, signal) => this.runOperate(d, action, current, signal))
  }

  private async runOperate(d: Deployment, action: 'start' | 'stop' | 'restart', current: string | null, signal: AbortSignal): Promise<void> {
    const { app } = d
    const settings = this.deps.apps.settings(app)
    const { supervisor } = this.deps
    // An operation verifies for at most 2 s of stable window: it starts a release that has run before.
    const quick = { ...settings, stableWindowMs: Math.min(settings.stableWindowMs, 2000) }
    if (action !== 'stop' && isProxied(this.deps, quick)) {
      // Behind the proxy a restart is a switch to a fresh instance of the same release: no request fails.
      try {
        await this.proxied.start(d, current!, quick, signal)
      } catch (err) {
        if (signal.aborted) throw err
        const code = codeOf(err)
        try {
          if (this.proxied.untouchedLive(d.id)) {
            await this.deps.instances!.stopStandby(app, settings, 'stopped after it failed verification')
            fail(d, code, `${(err as Error).message}; the new instance is stopped and the live one served throughout`)
          } else fail(d, code, `${(err as Error).message}; ${await this.stopAfterFailure(app, settings)}`)
        } catch (again) {
          // Stopping the new instance failed: the deployment fails with the first cause and the second as its reason.
          fail(d, code, isBerthError(again) ? again.message : `berth failed: ${(again as Error).message}`)
          throw again
        }
      }
      return
    }
    if (action !== 'start') {
      await this.step(d, 'stopping', signal, async () => {
        const wasUp = supervisor.isUp(app)
        const forced = await supervisor.stop(app, settings, { desired: action === 'restart' ? 'running' : 'stopped', cause: `stopped by ${action}` })
        // A node that had to be killed did not shut down cleanly: never a plain "stopped".
        if (forced) d.warnings.push(forced)
        return `${!wasUp ? 'was not running' : forced ? `stopped, forced: ${forced}` : 'stopped'}${await this.dropProxy(app)}`
      })
    }
    if (action !== 'stop') {
      await this.step(d, 'starting', signal, async () => {
        const dropped = action === 'start' ? await this.dropProxy(app) : ''
        await supervisor.start(app, current!, settings)
        return `started ${current}${dropped}`
      })
      try {
        await this.step(d, 'verifying', signal, () => verifyNode(this.deps, app, quick, signal))
      } catch (err) {
        if (signal.aborted) throw err
        // A node that failed its verification is not left in `starting` with nobody watching it.
        return fail(d, codeOf(err), `${(err as Error).message}; ${await this.stopAfterFailure(app, settings)}`)
      }
    }
    succeed(d)
  }

  /**
   * The proxy setting is off but its haproxy still runs: a stop, start or restart ends it (as a deploy does),
   * before the node starts, which may listen on the address it frees. Answers a note for the step's output.
   */
  private async dropProxy(app: string): Promise<string> {
    const listen = this.deps.proxy?.status(app)?.listen
    if (!listen) return ''
    await this.deps.proxy!.stop(app)
    return `; the proxy on ${listen} is stopped (the proxy setting is off)`
  }

  /** Start-up recovery, before anything else uses the lock table (see recovery.ts). */
  recover(): Promise<Deployment[]> {
    return recoverDeployments({ ...this.deps, operate: (app, action, actor) => this.operate(app, action, actor) })
  }
}

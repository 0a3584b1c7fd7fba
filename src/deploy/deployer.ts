// The deployment state machine and the per-app lock: migrate → switch → start → verify, with automatic
// rollback when the new node fails, explicit rollbacks, operate (start/stop/restart), crash recovery at start
// and the owner of every running deployment at shutdown (finished within the grace period, or aborted).
// With the proxy on, the new instance starts next to the live one and takes traffic only once verified.

import crypto from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { AppSettings } from '../apps/settings.js'
import type { AppStore } from '../apps/store.js'
import { isBerthError, problem, StepFailed } from '../errors.js'
import { deleteRelease } from '../intake/cleanup.js'
import { SLOTS, type Paths } from '../paths.js'
import type { ProxyControl } from '../proxy/proxy.js'
import { ectoMigrations, findMigrationModule } from '../releases/content.js'
import { currentReleaseId, switchCurrent } from '../releases/current.js'
import { recordDeployed } from '../releases/history.js'
import { BEFORE_SWITCH, FINAL, type Deployment, type DeploymentState, type DeploymentStore, type StepName } from '../store/deployments.js'
import { detectKind, failedAnswer, KINDS, resolveCommands } from '../releases/kinds.js'
import { releaseName } from '../releases/script.js'
import type { AuditOutcome, EventStore } from '../store/events.js'
import type { Release, ReleaseStore } from '../store/releases.js'
import type { HealthMonitor } from '../supervision/health.js'
import type { InstanceControl, InstanceSpec, NodeControl } from '../supervision/supervisor.js'
import { chooseRetired } from './retention.js'

const FINAL_STATES = new Set<DeploymentState>(FINAL)

/** The catalogue code a failure is recorded with (reasonCode); anything unexpected is INTERNAL. */
function codeOf(err: unknown): string {
  return isBerthError(err) ? err.code : 'INTERNAL'
}

/** Which migration a deploy runs (expr null: none) and where that comes from. */
export interface MigrationChoice {
  expr: string | null
  /**
   * setting: migrateExpr; disabled: migrateExpr is "" (the app says it has none, so nothing is said about
   * their absence); release: found in the release's metadata; none: nothing found.
   */
  source: 'setting' | 'disabled' | 'release' | 'none'
  /** What the expression is, or why there is none, in words for the step output and warnings. */
  note: string
}

export interface DeployOptions {
  /** false: the migrating step is recorded as skipped, with MIGRATE_FALSE as its output and a warning. */
  migrate?: boolean
  rollout?: string | null
}

/** The migrating step's output when the caller asked for no migration. */
export const MIGRATE_FALSE = 'migrate: false requested'

/** What a step's work answers: its output, null when it was skipped, or a skip with the reason why. */
type StepOutcome = string | null | { skipped: string }

export interface DeployerDeps {
  /** Test hook: a pause at the start of one step (see Config.testStepPause). */
  stepPause?: { step: string; ms: number } | null
  paths: Paths
  releases: ReleaseStore
  deployments: DeploymentStore
  apps: AppStore
  events: EventStore
  supervisor: NodeControl
  health: Pick<HealthMonitor, 'verified'>
  log: Logger
  /** Zero-downtime deploys (apps with the proxy setting): the second instance and the proxy. */
  instances?: InstanceControl
  proxy?: ProxyControl
}

export interface DeployerEvents {
  /** A deployment or operation of the app has ended (final, or left for recovery by a shutdown). */
  settled: [app: string]
}

interface Running {
  job: Promise<Deployment>
  abort: AbortController
}

export class Deployer extends EventEmitter<DeployerEvents> {
  private readonly running = new Map<string, Running>()
  /** Deployments whose new instance starts next to the live one: a failure before the switch only drops it. */
  private readonly sideBySide = new Set<string>()

  constructor(private readonly deps: DeployerDeps) {
    super()
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

  private begin(input: Omit<Deployment, 'state' | 'reason' | 'reasonCode' | 'steps' | 'createdAt' | 'finishedAt' | 'id' | 'rollout'> & { rollout?: string | null }, work: (d: Deployment, signal: AbortSignal) => Promise<void>): Deployment {
    const id = `${new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14)}-${crypto.randomBytes(3).toString('hex')}`
    // Checked in the same synchronous turn as the insert: a DELETE of the release cannot slip in between.
    for (const r of [input.release, input.previous]) {
      if (r && r !== '-' && !this.deps.releases.get(input.app, r)) throw problem('RELEASE_NOT_FOUND', `App "${input.app}" has no release "${r}" any more; list them with GET /v1/apps/${input.app}/releases.`)
    }
    const d = this.deps.deployments.create({ ...input, id })
    const log = this.deps.log.child({ app: d.app, deployment: d.id })
    log.info({ kind: d.kind, release: d.release, previous: d.previous }, `${d.kind} started`)
    const abort = new AbortController()
    const job = work(d, abort.signal)
      .catch((err: Error) => {
        if (!isBerthError(err)) log.error({ err }, `${d.kind} crashed`)
        d.state = 'failed'
        d.reason ??= isBerthError(err) ? err.message : `berth failed: ${err.message}`
        d.reasonCode ??= codeOf(err)
      })
      .then(async () => {
        this.running.delete(d.id)
        if (abort.signal.aborted && !FINAL_STATES.has(d.state)) {
          // Left for the next start's recovery (see shutdown); the reason says where it stopped.
          this.deps.deployments.save(d)
          log.warn({ state: d.state }, `${d.kind} aborted by shutdown; the next start recovers it`)
          this.emit('settled', d.app)
          return d
        }
        if (!FINAL_STATES.has(d.state)) {
          d.reason ??= `berth ended the ${d.kind} in ${d.state} without a final state`
          d.state = 'failed'
        }
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
      })
    this.running.set(d.id, { job, abort })
    void job.finally(() => this.sideBySide.delete(d.id))
    return d
  }

  /** Runs one step: recorded as running before it starts, with its output and end time after. */
  private async step(d: Deployment, name: StepName, signal: AbortSignal, fn: () => Promise<StepOutcome>): Promise<void> {
    if (signal.aborted) throw problem('ABORTED', `berth is shutting down; ${name} did not start`)
    const step = { name, state: 'running' as const, startedAt: new Date().toISOString(), endedAt: null as string | null, output: '' }
    d.steps.push(step)
    if (name !== 'rollback') d.state = name
    this.deps.deployments.save(d)
    const s = d.steps[d.steps.length - 1]!
    const pause = this.deps.stepPause
    if (pause && pause.step === name) await new Promise((r) => setTimeout(r, pause.ms))
    try {
      const out = await fn()
      const skipped = out === null || typeof out === 'object'
      Object.assign(s, { state: skipped ? 'skipped' : 'ok', output: out === null ? '' : typeof out === 'object' ? out.skipped : out, endedAt: new Date().toISOString() })
    } catch (err) {
      Object.assign(s, { state: 'failed', output: err instanceof StepFailed && err.output ? err.output : (err as Error).message, endedAt: new Date().toISOString() })
      if (signal.aborted && !BEFORE_SWITCH.has(name)) d.reason = `berth shut down during ${name}`
      this.deps.deployments.save(d)
      throw err
    }
    this.deps.deployments.save(d)
  }

  /**
   * The migration a deploy of `release` runs: the migrateExpr setting when there is one, otherwise
   * Mod.migrate() for the release's own *.Release module exporting migrate/0, read from the release's
   * metadata (releases/VSN/NAME.rel, the .app files and the .beam export tables), never from berth's app name.
   */
  migration(app: string, release: Release, settings: AppSettings): MigrationChoice {
    if (settings.migrateExpr !== null) {
      if (settings.migrateExpr.trim() === '') return { expr: null, source: 'disabled', note: 'migrateExpr is "": the app has no migrations' }
      return { expr: settings.migrateExpr, source: 'setting', note: 'the migrateExpr setting' }
    }
    // A kind without an eval before start (relx) runs none unless the commands setting gives it one.
    const kind = release.kind ?? detectKind(this.deps.paths.release(app, release.id), releaseName(this.deps.paths.release(app, release.id), app), release.version)
    if (resolveCommands(kind, settings.commands).eval === null) {
      return { expr: null, source: 'none', note: `${KINDS[kind].missing.eval ?? `a ${KINDS[kind].label} has no eval command`}: berth runs no migration for it unless the commands.eval and migrateExpr settings name one (or the application migrates when it starts)` }
    }
    const found = findMigrationModule(this.deps.paths.release(app, release.id), releaseName(this.deps.paths.release(app, release.id), app), release.version)
    if (!found.chosen) return { expr: null, source: 'none', note: found.note }
    return { expr: `${found.chosen.module}.migrate()`, source: 'release', note: found.note }
  }

  /** `migrate: false` skips the migration (a fleet runs it on one host only); `rollout` tags the deployment. */
  async deploy(app: string, release: Release, actor: string | null, opts: DeployOptions = {}): Promise<Deployment> {
    const previous = await currentReleaseId(this.deps.paths, app)
    return this.begin({ app, kind: 'deploy', release: release.id, previous, warnings: [], actor, rollout: opts.rollout ?? null }, (d, signal) => this.runDeploy(d, release, signal, opts.migrate !== false))
  }

  /** Runs `bin/APP eval EXPR` from a release as a step's work; a failure carries the eval's output. */
  private async evalStep(d: Deployment, release: string, expr: string, settings: AppSettings, signal: AbortSignal, failCode: 'MIGRATION_FAILED' | 'ROLLBACK_EXPR_FAILED', note?: string): Promise<string> {
    const { supervisor } = this.deps
    const evalCommand = supervisor.commandFor(d.app, release, settings, 'eval')
    const r = await supervisor.command(d.app, release, evalCommand, [expr], settings.migrateTimeoutMs, signal)
    const head = `${note ? `# ${note}\n` : ''}$ bin/${releaseName(this.deps.paths.release(d.app, release), d.app)} ${evalCommand} ${JSON.stringify(expr)}\n`
    const what = failCode === 'MIGRATION_FAILED' ? 'migration' : 'rollback expression'
    if (signal.aborted) throw new StepFailed('ABORTED', `the ${what} was killed: berth is shutting down`, `${head}${r.output}\n[killed: berth is shutting down]`)
    if (r.timedOut) throw new StepFailed(failCode === 'MIGRATION_FAILED' ? 'MIGRATION_TIMEOUT' : failCode, `${what} timed out after ${settings.migrateTimeoutMs} ms and was killed`, `${head}${r.output}\n[killed after ${settings.migrateTimeoutMs} ms]`)
    if (r.code !== 0) throw new StepFailed(failCode, `${what} exited with code ${r.code ?? r.signal}${supervisor.commandHint(d.app, release, settings, 'eval')}`, `${head}${r.output}`)
    const answer = failedAnswer(r.output)
    if (answer) throw new StepFailed(failCode, `${what} failed although ${evalCommand} exited 0: ${answer}`, `${head}${r.output}`)
    return `${head}${r.output}`
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
        if (choice.expr) return this.evalStep(d, release.id, choice.expr, settings, signal, 'MIGRATION_FAILED', choice.source === 'release' ? choice.note : undefined)
        if (choice.source === 'disabled') return { skipped: choice.note }
        // Nothing migrates and nobody said that is fine: a green deploy must not hide that.
        if (settings.requireMigration) {
          throw new StepFailed('MIGRATION_REQUIRED', `no migration would run (${choice.note}) and the app's requireMigration setting is on; set migrateExpr to the expression that migrates, or to "" if the app has no migrations`, `no migration step: ${choice.note}\nrequireMigration is on: the deploy stops here`)
        }
        d.warnings.push(`no migration ran for ${release.id}: ${choice.note}. If the app has no migrations, set migrateExpr to "" to say so; set migrateExpr to the expression that migrates otherwise; requireMigration: true makes such a deploy fail instead.`)
        return { skipped: `no migration step: ${choice.note}` }
      })
    } catch (err) {
      d.state = 'failed'
      // Only what is true: a first deploy has no current release, and a stopped app no running node.
      const kept = !d.previous ? 'there was no current release; nothing was started' : this.deps.supervisor.isUp(d.app) ? 'current release and running node are untouched' : 'current release is untouched; its node was not running and was not started'
      d.reason = `${(err as Error).message}; ${kept}`
      d.reasonCode = codeOf(err)
      return
    }
    try {
      await this.switchStartVerify(d, release.id, settings, signal)
      const rec = this.deps.apps.node(d.app)
      if (rec) this.deps.apps.saveNode({ ...rec, restarts: 0 })
      await this.retain(d.app, settings)
    } catch (err) {
      if (signal.aborted) return
      await this.autoRollback(d, settings, err, signal)
    }
  }

  /** The steps deploy and rollback share: switch current, replace the node, verify; succeeded when all pass. */
  private async switchStartVerify(d: Deployment, release: string, settings: AppSettings, signal: AbortSignal): Promise<void> {
    const { supervisor } = this.deps
    await this.step(d, 'switching', signal, async () => {
      await switchCurrent(this.deps.paths, d.app, release)
      return `current -> releases/${release}`
    })
    if (this.proxied(settings)) return this.proxiedStart(d, release, settings, signal)
    await this.step(d, 'starting', signal, async () => {
      const forced = await supervisor.stop(d.app, settings, { desired: 'running', cause: `stopped by ${d.kind} to ${release}` })
      if (forced) d.warnings.push(forced)
      // The proxy was turned off: its listener goes, and the node listens where the app's env says.
      if (this.deps.proxy?.status(d.app)) await this.deps.proxy.stop(d.app)
      await supervisor.start(d.app, release, settings, null)
      return `started ${release} under run_erl`
    })
    await this.step(d, 'verifying', signal, () => this.verify(d.app, settings, signal))
    d.state = 'succeeded'
  }

  private proxied(settings: AppSettings): settings is AppSettings & { proxy: NonNullable<AppSettings['proxy']> } {
    return !!settings.proxy && !!this.deps.proxy && !!this.deps.instances
  }

  /**
   * How a deploy would start the node now, for the dry run as for proxiedStart: `direct` stops the node and
   * starts the new one; `proxied` has no instance serving behind the proxy and starts one, then routes to it;
   * `beside-live` starts the new instance next to the live one, routes to it and drains the old one.
   */
  startPath(app: string, settings: AppSettings): 'direct' | 'proxied' | 'beside-live' {
    if (!this.proxied(settings)) return 'direct'
    return this.deps.instances!.liveInstance(app) && this.deps.supervisor.isUp(app) ? 'beside-live' : 'proxied'
  }

  /**
   * Starting behind the proxy. With a proxied live instance up: the new one starts in the other slot, is
   * verified on its own port, takes the new connections, and the old one drains and stops; the old one is
   * never touched before the switch. Without one (the first deploy behind the proxy, or the app was down):
   * the node starts as the live instance, and the proxy sends traffic to it once it is verified.
   */
  private async proxiedStart(d: Deployment, release: string, settings: AppSettings & { proxy: NonNullable<AppSettings['proxy']> }, signal: AbortSignal): Promise<void> {
    const { supervisor } = this.deps
    const instances = this.deps.instances!
    const proxy = this.deps.proxy!
    const live = instances.liveInstance(d.app)
    if (!live || this.startPath(d.app, settings) !== 'beside-live') {
      const slot = live?.slot ?? 'a'
      const inst: InstanceSpec = { slot, port: await instances.allocatePort(d.app, slot) }
      await this.step(d, 'starting', signal, async () => {
        const forced = await supervisor.stop(d.app, settings, { desired: 'running', cause: `stopped by ${d.kind} to ${release}` })
        if (forced) d.warnings.push(forced)
        await supervisor.start(d.app, release, settings, inst)
        return `started ${release} under run_erl in slot ${inst.slot} on 127.0.0.1:${inst.port} (no instance was serving)`
      })
      await this.step(d, 'verifying', signal, () => this.verify(d.app, settings, signal))
      await this.step(d, 'routing', signal, async () => {
        await proxy.ensure(d.app, settings.proxy, inst)
        return `${settings.proxy.listen} -> slot ${inst.slot} (127.0.0.1:${inst.port})`
      })
      d.state = 'succeeded'
      return
    }
    const slot = SLOTS.find((s) => s !== live.slot)!
    const inst: InstanceSpec = { slot, port: await instances.allocatePort(d.app, slot) }
    this.sideBySide.add(d.id)
    await this.step(d, 'starting', signal, async () => {
      // A second instance left behind (berth died mid-deploy and recovery could not stop it) is not kept.
      await instances.stopStandby(d.app, settings, 'replaced by a new deployment')
      await instances.startStandby(d.app, release, settings, inst)
      return `started ${release} under run_erl in slot ${inst.slot} on 127.0.0.1:${inst.port}; slot ${live.slot} keeps serving`
    })
    await this.step(d, 'verifying', signal, () => instances.verifyStandby(d.app, settings, signal))
    const drainUntil = Date.now() + settings.proxy.drainTimeoutMs
    await this.step(d, 'routing', signal, async () => {
      await proxy.ensure(d.app, settings.proxy, live)
      await proxy.switchTo(d.app, inst)
      instances.promote(d.app, Date.now() + settings.proxy.drainTimeoutMs)
      this.sideBySide.delete(d.id)
      return `${settings.proxy.listen} -> slot ${inst.slot} (127.0.0.1:${inst.port}); slot ${live.slot} drains`
    })
    if (settings.healthUrl) this.deps.health.verified(d.app, settings.healthUrl)
    // The new instance serves from here on: a failed drain is reported, never rolled back.
    await this.step(d, 'draining', signal, () => this.drainOld(d.app, live, drainUntil, settings, signal)).catch((err) => {
      if (signal.aborted) throw err
    })
    d.state = 'succeeded'
  }

  /** Lets the old instance's connections finish until drainUntil, closes what is left, then stops it. */
  private async drainOld(app: string, old: InstanceSpec, drainUntil: number, settings: AppSettings, signal: AbortSignal): Promise<string> {
    const started = Date.now()
    let note: string
    try {
      const cut = await this.deps.proxy!.drain(app, old.slot, drainUntil, signal)
      note = cut > 0 ? `closed ${cut} connection(s) still open after the drain timeout` : 'every connection finished'
    } catch (err) {
      if (signal.aborted) throw err
      note = `the proxy did not answer during the drain (${(err as Error).message})`
    }
    await this.deps.instances!.stopStandby(app, settings, 'stopped after its drain')
    return `slot ${old.slot} drained for ${Date.now() - started} ms: ${note}; stopped it`
  }

  /** Verifies the node and tells the health monitor that its URL has just been checked. */
  private async verify(app: string, settings: AppSettings, signal: AbortSignal): Promise<string> {
    const out = await this.deps.supervisor.verify(app, settings, signal)
    if (settings.healthUrl) this.deps.health.verified(app, settings.healthUrl)
    return out
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

  /** Puts the previous release back after a failed start/verify; ends the deployment rolled_back (or failed without one). */
  private async autoRollback(d: Deployment, settings: AppSettings, err: unknown, signal: AbortSignal): Promise<void> {
    const { supervisor } = this.deps
    const why = (err as Error).message
    d.reasonCode = codeOf(err)
    // The new instance may have died already (a crash on boot): what counts is that it never took traffic.
    if (this.proxied(settings) && this.sideBySide.delete(d.id)) return this.dropNewInstance(d, settings, why, signal)
    if (!d.previous) {
      d.state = 'failed'
      d.reason = `${why}; there is no previous release to roll back to, ${await this.stopAfterFailure(d.app, settings)}`
      return
    }
    try {
      await this.step(d, 'rollback', signal, async () => {
        await switchCurrent(this.deps.paths, d.app, d.previous!)
        const forced = await supervisor.stop(d.app, settings, { desired: 'running', cause: `stopped by the rollback to ${d.previous}` })
        if (forced) d.warnings.push(forced)
        await supervisor.start(d.app, d.previous!, settings)
        const verified = await this.verify(d.app, { ...settings, stableWindowMs: 0 }, signal)
        return `current -> releases/${d.previous}\n${verified}`
      })
      d.state = 'rolled_back'
      d.reason = `${why}; rolled back to ${d.previous}`
    } catch (again) {
      if (signal.aborted) return
      d.state = 'failed'
      d.reason = `${why}; the rollback to ${d.previous} failed too: ${(again as Error).message}`
    }
  }

  /**
   * A new instance failed before it took any traffic: it is stopped, current goes back, and the live
   * instance, which served throughout, is left exactly as it was (the proxy is pointed at it again in case
   * the switch was under way).
   */
  private async dropNewInstance(d: Deployment, settings: AppSettings & { proxy: NonNullable<AppSettings['proxy']> }, why: string, signal: AbortSignal): Promise<void> {
    const instances = this.deps.instances!
    try {
      await this.step(d, 'rollback', signal, async () => {
        await instances.stopStandby(d.app, settings, 'stopped after it failed verification')
        if (d.previous) await switchCurrent(this.deps.paths, d.app, d.previous)
        const live = instances.liveInstance(d.app)
        // Where the proxy runs now: putting things back includes the listener, and a new address may be the
        // very reason this failed (taken).
        const listen = this.deps.proxy!.status(d.app)?.listen ?? settings.proxy.listen
        if (live) await this.deps.proxy!.ensure(d.app, { ...settings.proxy, listen }, live)
        return `${d.previous ? `current -> releases/${d.previous}\n` : ''}stopped the new instance; the live instance${live ? ` in slot ${live.slot}` : ''} served throughout`
      })
      d.state = d.previous ? 'rolled_back' : 'failed'
      d.reason = d.previous ? `${why}; rolled back to ${d.previous}, which served throughout` : `${why}; the new instance is stopped`
    } catch (again) {
      if (signal.aborted) return
      d.state = 'failed'
      d.reason = `${why}; putting the previous release back failed: ${(again as Error).message}`
    }
  }

  /** Rollback to `to`, or to the last release that succeeded before the current one. No migrations run. */
  async rollback(app: string, to: Release | null, actor: string | null, opts: { runRollbackExpr?: boolean; rollout?: string | null } = {}): Promise<Deployment> {
    const { paths, deployments, releases } = this.deps
    const current = await currentReleaseId(paths, app)
    const target = to ?? previousGoodRelease({ deployments, releases }, app, current)
    if (target.id === current && this.deps.supervisor.isUp(app)) {
      throw problem('ROLLBACK_TO_CURRENT', `Release ${target.id} is already current and running.`)
    }
    const warnings: string[] = []
    if (current) {
      const leaving = ectoMigrations(paths.release(app, current), releaseName(paths.release(app, current), app))
      const kept = new Set(ectoMigrations(paths.release(app, target.id), releaseName(paths.release(app, target.id), app)))
      const extra = leaving.filter((m) => !kept.has(m))
      if (extra.length > 0) {
        warnings.push(`release ${current} ran database migrations that ${target.id} does not have: ${extra.join(', ')}. They are not undone unless you ask (runRollbackExpr with a rollbackExpr setting); check the schema is compatible.`)
      }
    }
    const t = target
    return this.begin({ app, kind: 'rollback', release: t.id, previous: current, warnings, actor, rollout: opts.rollout ?? null }, (d, signal) => this.runRollback(d, t, opts, signal))
  }

  private async runRollback(d: Deployment, target: Release, opts: { runRollbackExpr?: boolean }, signal: AbortSignal): Promise<void> {
    const { apps } = this.deps
    const settings = apps.settings(d.app)
    try {
      await this.step(d, 'reverting_migrations', signal, async () => {
        if (!opts.runRollbackExpr) return null
        if (!settings.rollbackExpr || !d.previous) throw problem('ROLLBACK_EXPR_MISSING', 'runRollbackExpr was asked for, but the app has no rollbackExpr setting')
        // The expression runs from the release being left: it is the one that knows its own migrations.
        return this.evalStep(d, d.previous, settings.rollbackExpr.replaceAll('VERSION', target.version), settings, signal, 'ROLLBACK_EXPR_FAILED')
      })
    } catch (err) {
      d.state = 'failed'
      d.reason = `${(err as Error).message}; nothing was changed`
      d.reasonCode = codeOf(err)
      return
    }
    try {
      await this.switchStartVerify(d, target.id, settings, signal)
    } catch (err) {
      if (signal.aborted) return
      await this.autoRollback(d, settings, err, signal)
    }
  }

  /** Deletes the releases retention no longer keeps (see retention.ts for which). */
  private async retain(app: string, settings: AppSettings): Promise<void> {
    const { releases, deployments, paths } = this.deps
    const retired = chooseRetired({
      newestFirst: releases.list(app).map((r) => r.id),
      current: await currentReleaseId(paths, app),
      succeededNewestFirst: deployments.succeededReleases(app),
      attempted: new Set(deployments.list(app, 1000).map((d) => d.release)),
      inUse: deployments.inUse(app),
      lastFailed: deployments.list(app, 1000).find((d) => (d.kind === 'deploy' || d.kind === 'rollback') && (d.state === 'failed' || d.state === 'rolled_back'))?.release ?? null,
      keep: settings.keepReleases,
    })
    for (const id of retired) {
      await deleteRelease(this.deps, app, id, 'berth').catch((err) => this.deps.log.warn({ app, release: id, err }, 'retention could not delete release'))
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
    return this.begin({ app, kind: action, release: current ?? '-', previous: current, warnings: [], actor }, async (d, signal) => {
      const settings = this.deps.apps.settings(app)
      const { supervisor } = this.deps
      if (action !== 'stop' && this.proxied(settings)) {
        // Behind the proxy a restart is a switch to a fresh instance of the same release: no request fails.
        try {
          await this.proxiedStart(d, current!, { ...settings, stableWindowMs: Math.min(settings.stableWindowMs, 2000) }, signal)
        } catch (err) {
          if (signal.aborted) throw err
          d.state = 'failed'
          d.reasonCode = codeOf(err)
          if (this.sideBySide.delete(d.id)) {
            await this.deps.instances!.stopStandby(app, settings, 'stopped after it failed verification')
            d.reason = `${(err as Error).message}; the new instance is stopped and the live one served throughout`
          } else d.reason = `${(err as Error).message}; ${await this.stopAfterFailure(app, settings)}`
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
          await this.step(d, 'verifying', signal, () => this.verify(app, { ...settings, stableWindowMs: Math.min(settings.stableWindowMs, 2000) }, signal))
        } catch (err) {
          if (signal.aborted) throw err
          // A node that failed its verification is not left in `starting` with nobody watching it.
          d.state = 'failed'
          d.reason = `${(err as Error).message}; ${await this.stopAfterFailure(app, settings)}`
          d.reasonCode = codeOf(err)
          return
        }
      }
      d.state = 'succeeded'
    })
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

  /**
   * At start, after the deployments are resolved and the instances adopted: each proxy is adopted, or started
   * when it died with berth, and pointed at the live instance; a second instance that was starting belongs to
   * no deployment any more and is stopped, one that was draining finishes its drain and then stops.
   */
  private async recoverProxies(): Promise<void> {
    const { instances, proxy, releases, apps, supervisor, log } = this.deps
    if (!instances || !proxy) return
    for (const { name } of releases.apps()) {
      const settings = apps.settings(name)
      try {
        const other = instances.standbyOf(name)
        const live = supervisor.isUp(name) ? instances.liveInstance(name) : null
        if (settings.proxy && (live || proxy.status(name))) await proxy.ensure(name, settings.proxy, live)
        if (other?.role === 'draining' && live && proxy.isRunning(name)) {
          // The old instance of a finished switch keeps its connections for the rest of its drain, as if
          // berth had not restarted; a deployment that starts meanwhile stops it first.
          void proxy
            .drain(name, other.slot, Date.parse(other.drainUntil ?? new Date().toISOString()))
            .catch((err) => log.warn({ app: name, err }, 'the proxy did not answer while the old instance drained'))
            .then(() => instances.stopStandby(name, settings, 'stopped after its drain'))
            .catch((err) => log.error({ app: name, err }, 'could not stop the drained instance'))
        } else if (other) await instances.stopStandby(name, settings, 'stopped at agent start: its deployment was resolved')
      } catch (err) {
        log.error({ app: name, err }, 'could not bring the proxy and instances to their state at agent start')
      }
    }
  }

  /**
   * Start-up recovery, before anything else uses the lock table. Every deployment an earlier agent left
   * unfinished ends in one defined state: when it got as far as switching, the release it started from is put
   * back as current (an interrupted deployment never leaves an unverified release live). Then the nodes are
   * made to match: a node still running current is re-adopted untouched; one running anything else, or dead
   * while it should run, is replaced through a recorded operation that verifies it, so that no node sits in
   * `starting` with nobody verifying it; one that was asked to stop is stopped.
   */
  async recover(): Promise<Deployment[]> {
    const { deployments, paths, releases, supervisor, apps, log } = this.deps
    deployments.clearStaleLocks()
    const fixed: Deployment[] = []
    for (const d of deployments.unfinished()) {
      const step = d.steps.at(-1)?.name ?? 'pending'
      const switched = d.steps.some((s) => !BEFORE_SWITCH.has(s.name))
      const notes = [`agent restarted during ${step}`]
      const cur = await currentReleaseId(paths, d.app)
      const rec = apps.node(d.app)
      // Behind the proxy, a deployment that got to routing with its instance recorded as live had passed
      // verification and takes the traffic: finishing it (the old instance is stopped below) is the safe way.
      const switchedTraffic = this.proxied(apps.settings(d.app)) && d.steps.some((s) => s.name === 'routing') && rec?.releaseId === d.release && !!rec.slot && apps.standby(d.app)?.role !== 'starting'
      if ((d.kind === 'deploy' || d.kind === 'rollback') && switchedTraffic) {
        if (cur !== d.release) await switchCurrent(paths, d.app, d.release)
        notes.push(`${d.release} had taken the traffic: kept it; the old instance finishes its drain and stops`)
        d.state = 'succeeded'
        d.reason = notes.join('; ')
        deployments.finish(d)
        await recordDeployed(paths, d.app, d.release, d.finishedAt ?? new Date().toISOString()).catch(() => {})
        this.deps.events.record({ app: d.app, actor: 'berth', action: d.kind, outcome: 'succeeded', detail: { deployment: d.id, reason: d.reason } })
        log.warn({ app: d.app, deployment: d.id, step }, 'finished a deployment interrupted by an agent restart after its switch')
        fixed.push(d)
        continue
      }
      if ((d.kind === 'deploy' || d.kind === 'rollback') && switched && d.previous && releases.get(d.app, d.previous)) {
        if (cur !== d.previous) await switchCurrent(paths, d.app, d.previous)
        notes.push(`put ${d.previous} back as current`)
      } else if (cur && !releases.get(d.app, cur) && d.previous) {
        // current names a release that is not recorded: put back what the deployment started from.
        await switchCurrent(paths, d.app, d.previous)
        notes.push(`put ${d.previous} back as current`)
      }
      d.state = 'failed'
      d.reason = notes.join('; ')
      deployments.finish(d)
      this.deps.events.record({ app: d.app, actor: 'berth', action: d.kind, outcome: 'failed', detail: { deployment: d.id, reason: d.reason } })
      log.warn({ app: d.app, deployment: d.id, step }, 'resolved deployment interrupted by an agent restart')
      fixed.push(d)
    }
    // Apps without a node record too: a node whose record went with a lost database is found and adopted.
    const { dead, adopted } = supervisor.adopt(releases.apps().map((a) => a.name))
    await this.recoverProxies()
    for (const rec of [...dead, ...adopted]) {
      const current = await currentReleaseId(paths, rec.app)
      const running = adopted.includes(rec)
      try {
        if (!current || rec.desired === 'stopped') {
          if (running) await supervisor.stop(rec.app, apps.settings(rec.app), { cause: 'stopped at agent start (asked to stay stopped)' })
        } else if (!running) {
          await this.operate(rec.app, 'start', 'berth')
          log.info({ app: rec.app, release: current }, 'node was down at agent start: starting it')
        } else if (rec.releaseId !== current) {
          await this.operate(rec.app, 'restart', 'berth')
          log.info({ app: rec.app, running: rec.releaseId, release: current }, 'node runs another release than current: replacing it')
        }
      } catch (err) {
        log.error({ app: rec.app, err }, 'could not bring the node to its desired state at agent start')
      }
    }
    for (const { name } of releases.apps()) {
      if (apps.node(name) || !(await currentReleaseId(paths, name))) continue
      // No record of a node and none found running: its environment may have been lost with the database, and a
      // node started without it could do harm (wrong database, no secrets). An operator starts it.
      log.warn({ app: name }, `the app has a current release but no node record and no node runs; not starting it: check its environment (berth env ${name} list), then start it (POST /v1/apps/${name}/start)`)
    }
    return fixed
  }
}

/** What a rollback without `to` goes back to: the newest release that deployed successfully and is not current. */
export function previousGoodRelease(deps: { releases: Pick<ReleaseStore, 'get'>; deployments: Pick<DeploymentStore, 'succeededReleases'> }, app: string, current: string | null): Release {
  const id = deps.deployments.succeededReleases(app).find((r) => r !== current && deps.releases.get(app, r))
  if (!id) throw problem('NO_ROLLBACK_TARGET', `App "${app}" has no earlier release that deployed successfully; name one with {"to": ID}.`)
  return deps.releases.get(app, id)!
}

// The crash policy: what happens when a node dies that should be running. Restart with exponential backoff,
// give up after too many crashes in a window (app errored), and roll back when the loop began soon after a deploy.

import type { Logger } from 'pino'
import type { Deployer } from '../deploy/deployer.js'
import { currentReleaseId } from '../intake/cleanup.js'
import type { Paths } from '../paths.js'
import type { AppStore } from '../store/apps.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { Supervisor } from './supervisor.js'

export interface PolicyDeps {
  paths: Paths
  apps: AppStore
  deployments: DeploymentStore
  events: EventStore
  supervisor: Supervisor
  deployer: Deployer
  log: Logger
}

export interface HealthInfo {
  url: string
  ok: boolean | null
  consecutiveFailures: number
  lastCheckAt: string | null
  lastError: string | null
}

export class CrashPolicy {
  private readonly crashes = new Map<string, number[]>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly health = new Map<string, HealthInfo & { checking: boolean; lastCheck: number }>()
  private readonly healthTimer: NodeJS.Timeout

  constructor(private readonly deps: PolicyDeps) {
    deps.supervisor.onCrash = (app, why) => this.crashed(app, why)
    this.healthTimer = setInterval(() => this.pollHealth(), 500)
    this.healthTimer.unref()
  }

  healthOf(app: string): HealthInfo | null {
    const h = this.health.get(app)
    if (!h) return null
    const { checking: _c, lastCheck: _l, ...info } = h
    return info
  }

  /**
   * Health over time: a running node's health URL is polled every healthIntervalMs; healthFailures failures
   * in a row kill the node, which then goes through the crash policy like any other death.
   */
  private pollHealth(): void {
    const { apps, supervisor, deployments, log, events } = this.deps
    for (const rec of apps.nodes()) {
      const app = rec.app
      const settings = apps.settings(app)
      if (!settings.healthUrl || supervisor.state(app) !== 'running' || deployments.lockedBy(app)) continue
      let h = this.health.get(app)
      if (!h || h.url !== settings.healthUrl) {
        h = { url: settings.healthUrl, ok: null, consecutiveFailures: 0, lastCheckAt: null, lastError: null, checking: false, lastCheck: Date.now() }
        this.health.set(app, h)
      }
      if (h.checking || Date.now() - h.lastCheck < settings.healthIntervalMs) continue
      h.checking = true
      h.lastCheck = Date.now()
      const entry = h
      void fetch(settings.healthUrl, { signal: AbortSignal.timeout(Math.min(5000, settings.healthIntervalMs)) })
        .then(async (res) => {
          await res.body?.cancel()
          if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`)
          Object.assign(entry, { ok: true, consecutiveFailures: 0, lastError: null })
        })
        .catch((err: Error) => {
          entry.ok = false
          entry.consecutiveFailures++
          entry.lastError = err.message
          if (entry.consecutiveFailures >= settings.healthFailures && supervisor.state(app) === 'running') {
            log.warn({ app, failures: entry.consecutiveFailures, error: err.message }, 'health check failing: killing the node')
            events.record({ app, actor: 'berth', action: 'node.unhealthy', outcome: 'error', detail: { url: entry.url, failures: entry.consecutiveFailures, error: err.message } })
            entry.consecutiveFailures = 0
            supervisor.kill(app)
          }
        })
        .finally(() => {
          entry.checking = false
          entry.lastCheckAt = new Date().toISOString()
        })
    }
  }

  /** Crash times inside the window; older ones no longer count, which is the "reset after a stable period". */
  private recent(app: string, windowMs: number, now = Date.now()): number[] {
    const list = (this.crashes.get(app) ?? []).filter((t) => now - t < windowMs)
    this.crashes.set(app, list)
    return list
  }

  crashed(app: string, why: string): void {
    const { deployments, apps, supervisor, log, events } = this.deps
    // A deployment in progress owns the node: its verify step sees the exit and rolls back itself.
    if (deployments.lockedBy(app)) return
    const settings = apps.settings(app)
    const policy = settings.restart
    const list = this.recent(app, policy.windowMs)
    list.push(Date.now())
    const rec = apps.node(app)
    if (list.length > policy.maxRestarts) {
      supervisor.setState(app, 'errored')
      events.record({ app, actor: 'berth', action: 'node.errored', outcome: 'error', detail: { crashes: list.length, windowMs: policy.windowMs, why } })
      log.error({ app, crashes: list.length }, 'crash loop: gave up restarting the node')
      if (rec) apps.saveNode({ ...rec, desired: 'stopped' })
      void this.maybeRollBack(app, list[0]!, policy.rollbackWithinMs)
      return
    }
    const delay = Math.min(policy.initialDelayMs * 2 ** (list.length - 1), policy.maxDelayMs)
    supervisor.setState(app, 'backoff')
    log.warn({ app, why, delayMs: delay, attempt: list.length }, 'node died; restarting after backoff')
    clearTimeout(this.timers.get(app))
    this.timers.set(
      app,
      setTimeout(() => {
        this.timers.delete(app)
        void this.restart(app)
      }, delay),
    )
  }

  private async restart(app: string): Promise<void> {
    const { apps, supervisor, deployments, paths, log, events } = this.deps
    const rec = apps.node(app)
    if (!rec || rec.desired !== 'running' || supervisor.isUp(app) || deployments.lockedBy(app)) return
    const current = await currentReleaseId(paths, app)
    if (!current) return
    try {
      apps.saveNode({ ...rec, restarts: rec.restarts + 1 })
      await supervisor.start(app, current, apps.settings(app))
      supervisor.markRunning(app)
      events.record({ app, actor: 'berth', action: 'node.restart', outcome: 'ok', detail: { release: current, restarts: rec.restarts + 1 } })
    } catch (err) {
      log.error({ app, err }, 'restart failed')
      this.crashed(app, `restart failed: ${(err as Error).message}`)
    }
  }

  /** Rolls back to the last good release when the crash loop began within `withinMs` of the last deployment. */
  private async maybeRollBack(app: string, loopStarted: number, withinMs: number): Promise<void> {
    const { deployments, deployer, log } = this.deps
    const last = deployments.list(app, 20).find((d) => (d.kind === 'deploy' || d.kind === 'rollback') && d.state === 'succeeded')
    if (!last?.finishedAt || loopStarted - Date.parse(last.finishedAt) > withinMs) return
    try {
      const d = await deployer.rollback(app, null, 'berth')
      log.warn({ app, deployment: d.id, to: d.release }, 'crash loop after a deployment: rolling back')
    } catch (err) {
      log.error({ app, err }, 'automatic rollback after crash loop was not possible')
    }
  }

  /** Forgets crash history after a deliberate deploy/start (a new release deserves a fresh budget). */
  reset(app: string): void {
    this.crashes.delete(app)
    clearTimeout(this.timers.get(app))
    this.timers.delete(app)
  }

  close(): void {
    clearInterval(this.healthTimer)
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }
}

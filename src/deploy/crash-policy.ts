// The crash policy: what happens when a node dies that should be running. Restart with exponential backoff,
// give up after too many crashes in a window (app errored), and roll back when the loop began soon after a
// deploy. It coordinates the supervisor and the deployer, so it sits beside the deployer, above supervision.

import type { Logger } from 'pino'
import type { AppStore } from '../apps/store.js'
import type { Paths } from '../paths.js'
import { currentReleaseId } from '../releases/current.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { Supervisor } from '../supervision/supervisor.js'
import type { Deployer } from './deployer.js'

export interface PolicyDeps {
  paths: Paths
  apps: AppStore
  deployments: DeploymentStore
  events: EventStore
  supervisor: Supervisor
  deployer: Deployer
  log: Logger
}

export class CrashPolicy {
  private readonly crashes = new Map<string, number[]>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly unsubscribe: (() => void)[] = []

  constructor(private readonly deps: PolicyDeps) {
    const onCrash = (app: string, why: string) => this.crashed(app, why)
    // A deliberate deploy or start gives the app a fresh budget.
    const onSettled = (app: string) => this.reset(app)
    deps.supervisor.on('crash', onCrash)
    deps.deployer.on('settled', onSettled)
    this.unsubscribe.push(() => deps.supervisor.off('crash', onCrash), () => deps.deployer.off('settled', onSettled))
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
    for (const off of this.unsubscribe.splice(0)) off()
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }
}

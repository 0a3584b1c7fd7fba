// Health over time: while a node runs, its health URL is polled every healthIntervalMs, and healthFailures
// failures in a row kill the node, whose death then reaches the crash policy like any other.

import type { Logger } from 'pino'
import type { AppStore } from '../apps/store.js'
import { problem } from '../errors.js'
import type { DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { Supervisor } from './supervisor.js'

export interface HealthInfo {
  url: string
  ok: boolean | null
  consecutiveFailures: number
  lastCheckAt: string | null
  lastError: string | null
}

export interface HealthDeps {
  apps: AppStore
  deployments: DeploymentStore
  events: EventStore
  supervisor: Supervisor
  log: Logger
}

export class HealthMonitor {
  private readonly health = new Map<string, HealthInfo & { checking: boolean; lastCheck: number }>()
  private readonly timer: NodeJS.Timeout

  constructor(private readonly deps: HealthDeps) {
    this.timer = setInterval(() => this.poll(), 500)
    this.timer.unref()
  }

  healthOf(app: string): HealthInfo | null {
    const h = this.health.get(app)
    if (!h) return null
    const { checking: _c, lastCheck: _l, ...info } = h
    return info
  }

  /** A deployment's verify step has just seen the URL answer: that is a check, and the clock starts there. */
  verified(app: string, url: string): void {
    this.health.set(app, { url, ok: true, consecutiveFailures: 0, lastCheckAt: new Date().toISOString(), lastError: null, checking: false, lastCheck: Date.now() })
  }

  private poll(): void {
    const { apps, supervisor, deployments, log, events } = this.deps
    for (const rec of apps.nodes()) {
      const app = rec.app
      const settings = apps.settings(app)
      // A deployment owns the node while it runs: its verify step does the checking then.
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
      // A redirect is an answer, not 2xx: followed, it would take the loopback-only check anywhere (169.254.169.254).
      void fetch(settings.healthUrl, { signal: AbortSignal.timeout(Math.min(5000, settings.healthIntervalMs)), redirect: 'manual' })
        .then(async (res) => {
          await res.body?.cancel()
          if (res.status < 200 || res.status >= 300) throw problem('HEALTH_CHECK_FAILED', `HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (a redirect; berth does not follow them)' : ''}`)
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

  close(): void {
    clearInterval(this.timer)
  }
}

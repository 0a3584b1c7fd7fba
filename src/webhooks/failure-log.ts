// Warnings about failing webhook deliveries, at most one per hook per interval: the first failure at once,
// then a summary with the count of the failures in between, and a line when the hook delivers again.

import type { Logger } from 'pino'

/** The default interval between two warnings about the same hook. */
export const FAILURE_LOG_INTERVAL_MS = 5 * 60_000

interface HookFailures {
  /** When the last warning about this hook was written. */
  loggedAt: number
  /** Failures since that warning, not yet written. */
  unlogged: number
  /** Every failure since the hook last delivered. */
  total: number
  since: number
}

export class FailureLog {
  private readonly hooks = new Map<string, HookFailures>()

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = FAILURE_LOG_INTERVAL_MS,
    private readonly clock: () => number = Date.now,
  ) {}

  failed(webhook: string, fields: { delivery: string; attempts: number; error: string; final: boolean }): void {
    const t = this.clock()
    const f = this.hooks.get(webhook)
    if (!f) {
      this.hooks.set(webhook, { loggedAt: t, unlogged: 0, total: 1, since: t })
      this.log.warn({ webhook, ...fields }, `webhook delivery failed; further failures of this hook are summarised every ${Math.round(this.intervalMs / 1000)} s`)
      return
    }
    f.total++
    f.unlogged++
    if (t - f.loggedAt < this.intervalMs) return
    this.log.warn({ webhook, failures: f.unlogged, failingSince: new Date(f.since).toISOString(), last: fields }, `webhook deliveries failed ${f.unlogged} times more`)
    f.loggedAt = t
    f.unlogged = 0
  }

  delivered(webhook: string): void {
    const f = this.hooks.get(webhook)
    if (!f) return
    this.hooks.delete(webhook)
    this.log.info({ webhook, failures: f.total, failingSince: new Date(f.since).toISOString() }, 'webhook delivers again')
  }

  forget(webhook: string): void {
    this.hooks.delete(webhook)
  }
}

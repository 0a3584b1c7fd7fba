// The audit trail: who did what to which app, when, with what outcome. Append-only, and the one typed
// vocabulary of actions and outcomes that the app log, metrics and webhooks subscribe to.
// Callers must pass details that are safe to show any reader of the app: never tokens or env values.

import type { Logger } from 'pino'
import type { Database } from './db.js'
import { now } from './db.js'
import type { Deployment, DeploymentState } from './deployments.js'

export type AuditAction =
  | Deployment['kind']
  | 'release.upload'
  | 'release.delete'
  | 'release.import'
  | 'node.start'
  | 'node.exit'
  | 'node.restart'
  | 'node.errored'
  | 'node.unhealthy'
  | 'settings.update'
  | 'env.replace'
  | 'env.update'
  | 'rpc'
  | 'session.open'
  | 'session.end'
  | 'webhook.create'
  | 'token.create'
  | 'proxy.start'
  | 'proxy.exit'
  | 'proxy.retire'
  | 'edge.start'
  | 'edge.exit'
  | 'edge.route'
  | 'edge.remove'
  | 'edge.pause'
  | 'edge.resume'
  | 'certificate.install'
  | 'certificate.issue'
  | 'certificate.renew'
  | 'certificate.remove'

/** ok/error for single actions; a deployment's final state for deployments, rollbacks and operations. */
export type AuditOutcome = 'ok' | 'error' | Extract<DeploymentState, 'succeeded' | 'failed' | 'rolled_back'>

export const AUDIT_ACTIONS: readonly AuditAction[] = ['deploy', 'rollback', 'start', 'stop', 'restart', 'release.upload', 'release.delete', 'release.import', 'node.start', 'node.exit', 'node.restart', 'node.errored', 'node.unhealthy', 'settings.update', 'env.replace', 'env.update', 'rpc', 'session.open', 'session.end', 'webhook.create', 'token.create', 'proxy.start', 'proxy.exit', 'proxy.retire', 'edge.start', 'edge.exit', 'edge.route', 'edge.remove', 'edge.pause', 'edge.resume', 'certificate.install', 'certificate.issue', 'certificate.renew', 'certificate.remove']

/**
 * Detail fields that only tokens with the console scope (or admin) may read: an rpc expression may carry a
 * secret (a password being rotated, a customer's data). The per-app log file never holds them.
 */
export const CONSOLE_DETAIL: Partial<Record<AuditAction, readonly string[]>> = { rpc: ['expr'] }

/** The event without the fields of CONSOLE_DETAIL, for a reader without the console scope. */
export function withoutConsoleDetail<T extends { action: AuditAction; detail: Record<string, unknown> | null }>(e: T): T {
  const hidden = CONSOLE_DETAIL[e.action]
  if (!hidden || !e.detail || !hidden.some((k) => k in e.detail!)) return e
  const detail = Object.fromEntries(Object.entries(e.detail).filter(([k]) => !hidden.includes(k)))
  return { ...e, detail }
}

export interface AuditEvent {
  seq: number
  app: string | null
  at: string
  actor: string | null
  action: AuditAction
  outcome: AuditOutcome
  detail: Record<string, unknown> | null
}

/** What subscribers get for every event that names an app; `line` is the form of the app's own log file. */
export interface RecordedEvent {
  app: string
  at: string
  actor: string | null
  action: AuditAction
  outcome: AuditOutcome
  detail: Record<string, unknown> | null
  line: string
}

export type EventListener = (e: RecordedEvent) => void

export class EventStore {
  private readonly listeners: EventListener[] = []

  constructor(
    private readonly db: Database,
    private readonly log?: Logger,
  ) {}

  /** Tells `listener` about every event with an app, after it is stored; returns the unsubscribe. */
  subscribe(listener: EventListener): () => void {
    this.listeners.push(listener)
    return () => {
      const i = this.listeners.indexOf(listener)
      if (i >= 0) this.listeners.splice(i, 1)
    }
  }

  record(e: { app?: string | null; actor?: string | null; action: AuditAction; outcome: AuditOutcome; detail?: Record<string, unknown> }): void {
    const at = now()
    const detail = e.detail ? JSON.stringify(e.detail) : null
    this.db.prepare('INSERT INTO events (app, at, actor, action, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)').run(e.app ?? null, at, e.actor ?? null, e.action, e.outcome, detail)
    if (!e.app) return
    // berth.log is read with the read scope (GET logs?source=berth): it gets the detail a reader may see.
    const logged = withoutConsoleDetail({ action: e.action, detail: e.detail ?? null }).detail
    const line = `${at} [berth] ${e.action} ${e.outcome} by ${e.actor ?? '-'}${logged ? ` ${JSON.stringify(logged)}` : ''}`
    const event: RecordedEvent = { app: e.app, at, actor: e.actor ?? null, action: e.action, outcome: e.outcome, detail: e.detail ?? null, line }
    // The event is stored: a subscriber that fails (a full disk for the app log, a webhook bug) must not
    // turn the domain call that recorded it into a failure, nor keep the other subscribers from hearing it.
    // A snapshot: a subscriber may unsubscribe while it hears the event (an event stream dropping a slow
    // client does), and splicing the live array would skip the subscriber after it.
    for (const l of [...this.listeners]) {
      try {
        l(event)
      } catch (err) {
        this.log?.error({ err, action: e.action, app: e.app }, 'an audit event subscriber failed')
      }
    }
  }

  list(app: string, limit = 100): AuditEvent[] {
    const rows = this.db.prepare('SELECT * FROM events WHERE app = ? ORDER BY seq DESC LIMIT ?').all(app, limit) as (Omit<AuditEvent, 'detail'> & { detail: string | null })[]
    return rows.map((r) => ({ ...r, detail: r.detail ? JSON.parse(r.detail) : null }))
  }
}

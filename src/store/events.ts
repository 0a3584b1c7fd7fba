// The audit trail: who did what to which app, when, with what outcome. Append-only.
// Callers must pass details that are safe to show any reader of the app: never tokens or env values.

import type { Database } from './db.js'
import { now } from './db.js'

export interface AuditEvent {
  seq: number
  app: string | null
  at: string
  actor: string | null
  action: string
  outcome: 'ok' | 'error' | string
  detail: Record<string, unknown> | null
}

export class EventStore {
  /** Told about every event with an app: the app's own log file, the metrics. */
  readonly listeners: ((e: { app: string; at: string; action: string; outcome: string; detail: Record<string, unknown> | null; line: string }) => void)[] = []

  constructor(private readonly db: Database) {}

  record(e: { app?: string | null; actor?: string | null; action: string; outcome: string; detail?: Record<string, unknown> }): void {
    const at = now()
    const detail = e.detail ? JSON.stringify(e.detail) : null
    this.db.prepare('INSERT INTO events (app, at, actor, action, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)').run(e.app ?? null, at, e.actor ?? null, e.action, e.outcome, detail)
    if (!e.app) return
    const line = `${at} [berth] ${e.action} ${e.outcome} by ${e.actor ?? '-'}${detail ? ` ${detail}` : ''}`
    for (const l of this.listeners) l({ app: e.app, at, action: e.action, outcome: e.outcome, detail: e.detail ?? null, line })
  }

  list(app: string, limit = 100): AuditEvent[] {
    const rows = this.db.prepare('SELECT * FROM events WHERE app = ? ORDER BY seq DESC LIMIT ?').all(app, limit) as (Omit<AuditEvent, 'detail'> & { detail: string | null })[]
    return rows.map((r) => ({ ...r, detail: r.detail ? JSON.parse(r.detail) : null }))
  }
}

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
  /** Also told about every event with an app (berth writes them to the app's own log). */
  onRecord: (e: { app: string; at: string; line: string }) => void = () => {}

  constructor(private readonly db: Database) {}

  record(e: { app?: string | null; actor?: string | null; action: string; outcome: string; detail?: Record<string, unknown> }): void {
    const at = now()
    const detail = e.detail ? JSON.stringify(e.detail) : null
    this.db.prepare('INSERT INTO events (app, at, actor, action, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)').run(e.app ?? null, at, e.actor ?? null, e.action, e.outcome, detail)
    if (e.app) this.onRecord({ app: e.app, at, line: `${at} [berth] ${e.action} ${e.outcome} by ${e.actor ?? '-'}${detail ? ` ${detail}` : ''}` })
  }

  list(app: string, limit = 100): AuditEvent[] {
    const rows = this.db.prepare('SELECT * FROM events WHERE app = ? ORDER BY seq DESC LIMIT ?').all(app, limit) as (Omit<AuditEvent, 'detail'> & { detail: string | null })[]
    return rows.map((r) => ({ ...r, detail: r.detail ? JSON.parse(r.detail) : null }))
  }
}

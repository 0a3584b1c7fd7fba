// Repository for the `sessions` table: one row per console session, written when it opens and completed
// when it ends, so an agent that dies mid-session leaves a row that says so (see interruptOpen).

import type { Database } from './db.js'
import { now } from './db.js'

export type SessionKind = 'remote' | 'attach'

export interface SessionRecord {
  id: string
  app: string
  kind: SessionKind
  actor: string | null
  release: string | null
  startedAt: string
  endedAt: string | null
  endReason: string | null
  exitCode: number | null
  bytesIn: number
  bytesOut: number
  /** Path of the asciicast file relative to the app's directory, or null once retention removed it. */
  recording: string | null
}

interface Row {
  id: string
  app: string
  kind: SessionKind
  actor: string | null
  release_id: string | null
  started_at: string
  ended_at: string | null
  end_reason: string | null
  exit_code: number | null
  bytes_in: number
  bytes_out: number
  recording: string | null
}

function toRecord(r: Row): SessionRecord {
  return {
    id: r.id,
    app: r.app,
    kind: r.kind,
    actor: r.actor,
    release: r.release_id,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    endReason: r.end_reason,
    exitCode: r.exit_code,
    bytesIn: r.bytes_in,
    bytesOut: r.bytes_out,
    recording: r.recording,
  }
}

export class SessionStore {
  constructor(private readonly db: Database) {}

  insert(s: Pick<SessionRecord, 'id' | 'app' | 'kind' | 'actor' | 'release' | 'startedAt' | 'recording'>): void {
    this.db
      .prepare(
        `INSERT INTO sessions (id, seq, app, kind, actor, release_id, started_at, recording)
         VALUES (@id, (SELECT coalesce(max(seq), 0) + 1 FROM sessions), @app, @kind, @actor, @release, @startedAt, @recording)`,
      )
      .run(s)
  }

  finish(id: string, f: { endedAt: string; endReason: string; exitCode: number | null; bytesIn: number; bytesOut: number; recording: string | null }): void {
    this.db
      .prepare('UPDATE sessions SET ended_at = @endedAt, end_reason = @endReason, exit_code = @exitCode, bytes_in = @bytesIn, bytes_out = @bytesOut, recording = @recording WHERE id = @id')
      .run({ id, ...f })
  }

  get(app: string, id: string): SessionRecord | null {
    const r = this.db.prepare('SELECT * FROM sessions WHERE app = ? AND id = ?').get(app, id) as Row | undefined
    return r ? toRecord(r) : null
  }

  /** Newest first. */
  list(app: string, limit = 100): SessionRecord[] {
    return (this.db.prepare('SELECT * FROM sessions WHERE app = ? ORDER BY seq DESC LIMIT ?').all(app, limit) as Row[]).map(toRecord)
  }

  /** Ended sessions whose recordings fall outside the newest `keep` recordings of the app. */
  recordingsBeyond(app: string, keep: number): { id: string; recording: string }[] {
    return this.db
      .prepare(
        `SELECT id, recording FROM sessions
         WHERE app = ? AND recording IS NOT NULL AND ended_at IS NOT NULL
           AND id NOT IN (SELECT id FROM sessions WHERE app = ? AND recording IS NOT NULL ORDER BY seq DESC LIMIT ?)
         ORDER BY seq`,
      )
      .all(app, app, keep) as { id: string; recording: string }[]
  }

  clearRecording(id: string): void {
    this.db.prepare('UPDATE sessions SET recording = NULL WHERE id = ?').run(id)
  }

  /** Rows a previous agent left open (it stopped mid-session): their processes died with its ptys. */
  interruptOpen(): number {
    return this.db.prepare(`UPDATE sessions SET ended_at = ?, end_reason = 'interrupted' WHERE ended_at IS NULL`).run(now()).changes
  }
}

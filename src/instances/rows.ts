// The slot rows in berth.db: the live node (nodes), the second instance (instances), the route (routes) and
// each slot's port (instance_ports). SQL only; instances.ts says what they mean and who may change them.

import type { Slot } from '../paths.js'
import { deepFreeze, RowCache, type Database } from '../store/db.js'

/** An instance's slot and private loopback port (its PORT). null wherever it stands means the proxy is off. */
export interface InstanceSpec {
  slot: Slot
  port: number
}

export interface NodeRecord {
  app: string
  releaseId: string
  pid: number | null
  startTicks: number | null
  desired: 'running' | 'stopped'
  startedAt: string | null
  restarts: number
  lastExit: string | null
  /** With the proxy on: the live instance's slot and private port; null (or absent) with the proxy off. */
  slot?: Slot | null
  port?: number | null
}

/** A proxied app's second instance: starting before the switch, or draining after it. */
export interface StandbyRecord {
  app: string
  slot: Slot
  port: number
  releaseId: string
  pid: number | null
  startTicks: number | null
  role: 'starting' | 'draining'
  startedAt: string | null
  drainUntil: string | null
}

export class InstanceRows {
  /** Node rows per app, frozen, while the database did not change: every GET of an app's status reads one. */
  private readonly nodeOf: RowCache<string, Readonly<NodeRecord> | null>

  constructor(private readonly db: Database) {
    this.nodeOf = new RowCache(db)
  }

  /** The node row; frozen (shared between callers). */
  node(app: string): Readonly<NodeRecord> | null {
    return this.nodeOf.get(app, () => this.readNode(app))
  }

  private readNode(app: string): Readonly<NodeRecord> | null {
    const r = this.db.prepare('SELECT * FROM nodes WHERE app = ?').get(app) as Record<string, unknown> | undefined
    if (!r) return null
    return deepFreeze({
      app: r.app as string,
      releaseId: r.release_id as string,
      pid: r.pid as number | null,
      startTicks: r.start_ticks as number | null,
      desired: r.desired as NodeRecord['desired'],
      startedAt: r.started_at as string | null,
      restarts: r.restarts as number,
      lastExit: r.last_exit as string | null,
      slot: (r.slot as Slot | null) ?? null,
      port: (r.port as number | null) ?? null,
    })
  }

  nodes(): Readonly<NodeRecord>[] {
    return (this.db.prepare('SELECT app FROM nodes').all() as { app: string }[]).map((r) => this.node(r.app)!)
  }

  saveNode(n: NodeRecord): void {
    this.db
      .prepare(
        `INSERT INTO nodes (app, release_id, pid, start_ticks, desired, started_at, restarts, last_exit, slot, port)
         VALUES (@app, @releaseId, @pid, @startTicks, @desired, @startedAt, @restarts, @lastExit, @slot, @port)
         ON CONFLICT(app) DO UPDATE SET release_id = @releaseId, pid = @pid, start_ticks = @startTicks, desired = @desired,
           started_at = @startedAt, restarts = @restarts, last_exit = @lastExit, slot = @slot, port = @port`,
      )
      .run({ ...n, slot: n.slot ?? null, port: n.port ?? null })
  }

  standby(app: string): StandbyRecord | null {
    const r = this.db.prepare('SELECT * FROM instances WHERE app = ?').get(app) as Record<string, unknown> | undefined
    if (!r) return null
    return {
      app: r.app as string,
      slot: r.slot as Slot,
      port: r.port as number,
      releaseId: r.release_id as string,
      pid: r.pid as number | null,
      startTicks: r.start_ticks as number | null,
      role: r.role as StandbyRecord['role'],
      startedAt: r.started_at as string | null,
      drainUntil: r.drain_until as string | null,
    }
  }

  standbys(): StandbyRecord[] {
    return (this.db.prepare('SELECT app FROM instances').all() as { app: string }[]).map((r) => this.standby(r.app)!)
  }

  saveStandby(s: StandbyRecord): void {
    this.db
      .prepare(
        `INSERT INTO instances (app, slot, port, release_id, pid, start_ticks, role, started_at, drain_until)
         VALUES (@app, @slot, @port, @releaseId, @pid, @startTicks, @role, @startedAt, @drainUntil)
         ON CONFLICT(app) DO UPDATE SET slot = @slot, port = @port, release_id = @releaseId, pid = @pid, start_ticks = @startTicks,
           role = @role, started_at = @startedAt, drain_until = @drainUntil`,
      )
      .run(s)
  }

  deleteStandby(app: string): void {
    this.db.prepare('DELETE FROM instances WHERE app = ?').run(app)
  }

  /** Both rows of a switch in one transaction: a berth killed at any point sees the one before or the one after. */
  promote(app: string, live: NodeRecord, draining: StandbyRecord | null): void {
    this.db.transaction(() => {
      this.saveNode(live)
      if (draining) this.saveStandby(draining)
      else this.deleteStandby(app)
    }).immediate()
  }

  route(app: string): InstanceSpec | null {
    const r = this.db.prepare('SELECT slot, port FROM routes WHERE app = ?').get(app) as { slot: Slot; port: number } | undefined
    return r ? { slot: r.slot, port: r.port } : null
  }

  saveRoute(app: string, to: InstanceSpec | null): void {
    if (!to) this.db.prepare('DELETE FROM routes WHERE app = ?').run(app)
    else this.db.prepare('INSERT INTO routes (app, slot, port) VALUES (?, ?, ?) ON CONFLICT(app) DO UPDATE SET slot = excluded.slot, port = excluded.port').run(app, to.slot, to.port)
  }

  /** Every recorded slot port: the app's own (by slot) and the set no other slot may be given. */
  ports(): { app: string; slot: Slot; port: number }[] {
    return this.db.prepare('SELECT app, slot, port FROM instance_ports').all() as { app: string; slot: Slot; port: number }[]
  }

  /**
   * Records `port` as the slot's. A port recorded for another slot moves to this one only with `steal` (an
   * instance found running on it: the record was wrong, the process is the fact).
   */
  savePort(app: string, slot: Slot, port: number, steal = false): void {
    this.db.transaction(() => {
      if (steal) this.db.prepare('DELETE FROM instance_ports WHERE port = ? AND NOT (app = ? AND slot = ?)').run(port, app, slot)
      this.db.prepare('INSERT INTO instance_ports (app, slot, port) VALUES (?, ?, ?) ON CONFLICT(app, slot) DO UPDATE SET port = excluded.port').run(app, slot, port)
    })()
  }
}

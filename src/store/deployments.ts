// Deployments (and rollbacks) with their steps, and the per-app lock that allows one at a time.
// Every state change is written before the work it announces starts, so a restarted agent knows where it stopped.

import { problem } from '../errors.js'
import type { Database } from './db.js'
import { deepFreeze, now, RowCache } from './db.js'

/** A deploy's steps in order. */
export const STEPS = ['migrating', 'switching', 'starting', 'verifying'] as const
/**
 * Every step name, each saying what it does: a rollback's `reverting_migrations` runs the rollbackExpr
 * setting, `stopping` stops the node (stop, restart), and `rollback` puts the previous release back after
 * a failed start. With the proxy on, `routing` moves new connections to the verified instance and `draining`
 * lets the old one finish its connections, then stops it. While a step runs it is also the deployment's
 * state, except `rollback`.
 */
export const STEP_NAMES = [...STEPS, 'reverting_migrations', 'stopping', 'rollback', 'routing', 'draining'] as const
export type StepName = (typeof STEP_NAMES)[number]
/** Steps that change nothing of current or the node: a deployment interrupted in one has nothing to put back. */
export const BEFORE_SWITCH: ReadonlySet<StepName> = new Set(['migrating', 'reverting_migrations'])
export type DeploymentState = 'pending' | Exclude<StepName, 'rollback'> | 'succeeded' | 'failed' | 'rolled_back'
export const FINAL: DeploymentState[] = ['succeeded', 'failed', 'rolled_back']

export interface Step {
  name: StepName
  state: 'running' | 'ok' | 'failed' | 'skipped'
  startedAt: string
  endedAt: string | null
  output: string
}

export interface Deployment {
  id: string
  app: string
  kind: 'deploy' | 'rollback' | 'start' | 'stop' | 'restart'
  release: string
  previous: string | null
  state: DeploymentState
  reason: string | null
  /** The catalogue code (errors.ts) of what made it fail, e.g. MIGRATION_REQUIRED; null otherwise. */
  reasonCode: string | null
  warnings: string[]
  steps: Step[]
  actor: string | null
  /** The fleet rollout this deployment is part of (see src/fleet), null outside one. */
  rollout: string | null
  createdAt: string
  finishedAt: string | null
}

interface Row {
  id: string
  app: string
  kind: Deployment['kind']
  release_id: string
  previous_id: string | null
  state: DeploymentState
  reason: string | null
  reason_code: string | null
  warnings: string
  steps: string
  actor: string | null
  rollout: string | null
  created_at: string
  finished_at: string | null
}

function toDeployment(r: Row): Deployment {
  return {
    id: r.id,
    app: r.app,
    kind: r.kind,
    release: r.release_id,
    previous: r.previous_id,
    state: r.state,
    reason: r.reason,
    reasonCode: r.reason_code,
    warnings: JSON.parse(r.warnings) as string[],
    steps: JSON.parse(r.steps) as Step[],
    actor: r.actor,
    rollout: r.rollout ?? null,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  }
}

export class DeploymentStore {
  /**
   * lastRelease per app, frozen: status polls ask it many times a second and deployments change a few times
   * a day. Kept while the database does not change (db.ts generation(): this process's writes and those of
   * another connection, such as `berth import` while berth runs).
   */
  private readonly lastReleaseOf: RowCache<string, Readonly<Deployment> | null>
  /** list() without a rollout, by app and limit, frozen: what GET /v1/apps/{app}/deployments answers. */
  private readonly listOf: RowCache<string, readonly Readonly<Deployment>[]>

  constructor(
    private readonly db: Database,
    /** This agent process; locks of other owners are stale by definition once we run. */
    readonly owner: string,
  ) {
    this.lastReleaseOf = new RowCache(db)
    this.listOf = new RowCache(db)
  }

  /** Creates the deployment and takes the app's lock in one transaction; DEPLOYMENT_IN_PROGRESS when held. */
  create(d: Omit<Deployment, 'state' | 'reason' | 'reasonCode' | 'steps' | 'createdAt' | 'finishedAt' | 'rollout'> & { rollout?: string | null }): Deployment {
    const full: Deployment = { ...d, rollout: d.rollout ?? null, state: 'pending', reason: null, reasonCode: null, steps: [], createdAt: now(), finishedAt: null }
    this.db.transaction(() => {
      this.assertIdle(d.app)
      this.db.prepare('INSERT INTO locks (app, owner, deployment, taken_at) VALUES (?, ?, ?, ?)').run(d.app, this.owner, d.id, now())
      this.db
        .prepare(
          `INSERT INTO deployments (id, app, kind, release_id, previous_id, state, warnings, steps, actor, rollout, created_at)
           VALUES (?, ?, ?, ?, ?, 'pending', ?, '[]', ?, ?, ?)`,
        )
        .run(d.id, d.app, d.kind, d.release, d.previous, JSON.stringify(d.warnings), d.actor, full.rollout, full.createdAt)
    }).immediate()
    return full
  }

  /**
   * Records a deployment that happened before the database was rebuilt from disk (see intake/reimport.ts):
   * final, without steps, its reason saying where the fact comes from. Takes no lock.
   */
  recordImported(d: { id: string; app: string; release: string; at: string; reason: string; actor: string }): void {
    this.db
      .prepare(
        `INSERT INTO deployments (id, app, kind, release_id, previous_id, state, reason, warnings, steps, actor, created_at, finished_at)
         VALUES (?, ?, 'deploy', ?, NULL, 'succeeded', ?, '[]', '[]', ?, ?, ?)`,
      )
      .run(d.id, d.app, d.release, d.reason, d.actor, d.at, d.at)
  }

  count(app: string): number {
    return (this.db.prepare('SELECT count(*) AS n FROM deployments WHERE app = ?').get(app) as { n: number }).n
  }

  save(d: Deployment): void {
    this.db
      .prepare('UPDATE deployments SET state = ?, reason = ?, reason_code = ?, warnings = ?, steps = ?, previous_id = ?, finished_at = ? WHERE id = ?')
      .run(d.state, d.reason, d.reasonCode, JSON.stringify(d.warnings), JSON.stringify(d.steps), d.previous, d.finishedAt, d.id)
  }

  /** Final state and lock release in one transaction. */
  finish(d: Deployment): void {
    d.finishedAt = now()
    this.db.transaction(() => {
      this.save(d)
      this.db.prepare('DELETE FROM locks WHERE app = ? AND deployment = ?').run(d.app, d.id)
    }).immediate()
  }

  get(app: string, id: string): Deployment | null {
    const r = this.db.prepare('SELECT * FROM deployments WHERE app = ? AND id = ?').get(app, id) as Row | undefined
    return r ? toDeployment(r) : null
  }

  /** Newest first; frozen (shared between callers). */
  list(app: string, limit = 50, rollout?: string): readonly Readonly<Deployment>[] {
    if (rollout !== undefined) {
      return deepFreeze((this.db.prepare('SELECT * FROM deployments WHERE app = ? AND rollout = ? ORDER BY seq DESC LIMIT ?').all(app, rollout, limit) as Row[]).map(toDeployment))
    }
    return this.listOf.get(`${app}\0${limit}`, () => deepFreeze((this.db.prepare('SELECT * FROM deployments WHERE app = ? ORDER BY seq DESC LIMIT ?').all(app, limit) as Row[]).map(toDeployment)))
  }

  /**
   * The newest deploy or rollback among the app's last `within` deployments (starts, stops and restarts are
   * skipped): one row parsed, not `within`, because status polls ask this on every call.
   */
  lastRelease(app: string, within = 20): Readonly<Deployment> | null {
    const read = () => {
      const r = this.db
        .prepare(
          `SELECT * FROM deployments WHERE seq = (SELECT max(seq) FROM (SELECT seq, kind FROM deployments WHERE app = ? ORDER BY seq DESC LIMIT ?) WHERE kind IN ('deploy', 'rollback'))`,
        )
        .get(app, within) as Row | undefined
      return r ? deepFreeze(toDeployment(r)) : null
    }
    return within === 20 ? this.lastReleaseOf.get(app, read) : read()
  }

  last(app: string): Readonly<Deployment> | null {
    return this.list(app, 1)[0] ?? null
  }

  /** Deployments left unfinished by an earlier agent process. */
  unfinished(): Deployment[] {
    return (this.db.prepare(`SELECT * FROM deployments WHERE state NOT IN ('succeeded','failed','rolled_back') ORDER BY seq`).all() as Row[]).map(toDeployment)
  }

  /** Releases that unfinished deployments of the app name, as target or as the one to go back to. */
  inUse(app: string): Set<string> {
    const rows = this.db.prepare(`SELECT release_id, previous_id FROM deployments WHERE app = ? AND state NOT IN ('succeeded','failed','rolled_back')`).all(app) as { release_id: string; previous_id: string | null }[]
    return new Set(rows.flatMap((r) => [r.release_id, r.previous_id].filter((x): x is string => x !== null)))
  }

  /** DEPLOYMENT_IN_PROGRESS naming what holds the app's lock (a deploy, a stop, ...), when anything does. */
  assertIdle(app: string): void {
    const held = this.lockedBy(app)
    if (!held) return
    const kind = this.get(app, held)?.kind ?? 'deployment'
    const what = kind === 'deploy' || kind === 'rollback' ? `a ${kind}` : `a ${kind} of the node`
    throw problem('DEPLOYMENT_IN_PROGRESS', `App "${app}" is busy with ${what} (${held}); wait for it (GET /v1/apps/${app}/deployments/${held}) and try again.`, { deployment: held, kind })
  }

  lockedBy(app: string): string | null {
    const r = this.db.prepare('SELECT deployment FROM locks WHERE app = ?').get(app) as { deployment: string } | undefined
    return r?.deployment ?? null
  }

  /** Drops locks held by other (dead) agent processes. */
  clearStaleLocks(): number {
    return this.db.prepare('DELETE FROM locks WHERE owner != ?').run(this.owner).changes
  }

  /** Release ids of succeeded deployments, newest first (rollback targets, retention). */
  succeededReleases(app: string): string[] {
    return (this.db.prepare(`SELECT release_id FROM deployments WHERE app = ? AND state = 'succeeded' ORDER BY seq DESC`).all(app) as { release_id: string }[]).map((r) => r.release_id)
  }
}

// The conductor of `berth fleet deploy` and `berth fleet rollback`: upload everywhere first, then the canary
// and the batches; on the first failure touch no further host and put back every host this rollout moved.

import { failureOf, FINAL_STATES, followDeployment, type Agent, type AgentApp, type Deployment, type FollowOptions } from './agent.js'
import { batchCount, type Fleet } from './file.js'
import { chunks, planPhases, type Phase } from './phases.js'
import { rolloutId as newRolloutId } from '../store/ids.js'

export type HostOutcome =
  /** Moved to the release (deploy) or the target (rollback) by this run, and verified. */
  | 'done'
  /** Already on it: left alone (a resumed rollout). */
  | 'skipped'
  /** Its deployment failed before the switch, or after it with nothing to go back to. */
  | 'failed'
  /** Its deployment failed after the switch and the agent put the previous release back itself. */
  | 'rolled_back'
  | 'unreachable'
  /** The agent refused the request (another deployment of the app in progress, a scope, a limit). */
  | 'refused'
  | 'upload_failed'
  /** Never touched: the rollout halted before its turn. */
  | 'not_deployed'
  /** Moved by this rollout, then put back to what it ran before after the halt. */
  | 'put_back'
  | 'put_back_failed'

export interface HostResult {
  host: string
  url: string
  outcome: HostOutcome
  /** The release this rollout moves the host to (its id on that host). */
  release: string | null
  /** What the host ran before this rollout. */
  before: string | null
  /** This rollout's deployment (or rollback) on the host. */
  deployment: string | null
  /** The rollback that put the host back after a halt. */
  putBack: string | null
  code: string | null
  reason: string | null
}

export interface Halt {
  host: string
  code: string
  reason: string
}

export interface RolloutResult {
  kind: 'deploy' | 'rollback'
  app: string
  rollout: string
  release: string | null
  ok: boolean
  halted: Halt | null
  phases: Phase[]
  hosts: HostResult[]
}

export type RolloutEvent =
  | { type: 'upload'; host: string; sent: number; total: number }
  | { type: 'uploaded'; host: string; release: string; created: boolean }
  | { type: 'plan'; rollout: string; release: string; phases: Phase[]; skipped: string[] }
  | { type: 'start'; host: string; deployment: Deployment; migrate: boolean }
  | { type: 'step'; host: string; deployment: Deployment }
  | { type: 'end'; host: string; result: HostResult }
  | { type: 'halt'; halt: Halt }
  | { type: 'put-back'; host: string; to: string | null }

export interface RolloutOptions {
  fleet: Fleet
  /** One per host, in the fleet file's order. */
  agents: Agent[]
  /** The rollout id to tag deployments with; by default a resumed rollout's own, or a new one. */
  rollout?: string
  follow: FollowOptions
  onEvent?: (e: RolloutEvent) => void
}

function result(agent: Agent, outcome: HostOutcome, extra: Partial<HostResult> = {}): HostResult {
  return { host: agent.host.name, url: agent.host.url, outcome, release: null, before: null, deployment: null, putBack: null, code: null, reason: null, ...extra }
}

/** The outcome of a deployment that has ended. */
function ended(d: Deployment): { outcome: HostOutcome; reason: string | null } {
  if (d.state === 'succeeded') return { outcome: 'done', reason: null }
  return { outcome: d.state === 'rolled_back' ? 'rolled_back' : 'failed', reason: d.reason ?? `${d.kind} ${d.state}` }
}

/** Calls each agent at once; answers what each call gave, or how it failed. */
async function everyHost<T>(agents: Agent[], fn: (a: Agent) => Promise<T>): Promise<({ ok: true; value: T } | { ok: false; error: unknown })[]> {
  return Promise.all(agents.map((a) => fn(a).then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))))
}

/** The result for a call that failed: unreachable or refused, with the agent's code and sentence. */
function failedCall(agent: Agent, err: unknown, extra: Partial<HostResult> = {}): HostResult {
  const f = failureOf(err)
  return result(agent, f.unreachable ? 'unreachable' : f.broken ? 'failed' : 'refused', { code: f.code, reason: f.detail, ...extra })
}

function isIdle(app: AgentApp | null): boolean {
  return !app?.lastDeployment || FINAL_STATES.includes(app.lastDeployment.state)
}

class Conductor {
  readonly results = new Map<string, HostResult>()
  /** Hosts this rollout moved, in the order they moved: the ones a halt puts back, last first. */
  readonly moved: string[] = []
  halted: Halt | null = null

  constructor(
    readonly opts: RolloutOptions,
    readonly rollout: string,
  ) {}

  agent(host: string): Agent {
    return this.opts.agents.find((a) => a.host.name === host)!
  }

  emit(e: RolloutEvent): void {
    this.opts.onEvent?.(e)
  }

  set(r: HostResult): void {
    this.results.set(r.host, r)
  }

  halt(r: HostResult): void {
    if (this.halted) return
    this.halted = { host: r.host, code: r.code ?? r.outcome.toUpperCase(), reason: r.reason ?? r.outcome }
    this.emit({ type: 'halt', halt: this.halted })
  }

  /** Runs one request that starts a deployment on a host, and follows it to its end. */
  async run(agent: Agent, base: HostResult, start: () => Promise<Deployment>, migrate: boolean): Promise<HostResult> {
    let d: Deployment
    try {
      d = await start()
    } catch (err) {
      return failedCall(agent, err, { release: base.release, before: base.before })
    }
    this.emit({ type: 'start', host: agent.host.name, deployment: d, migrate })
    try {
      const last = await followDeployment(agent, d, this.opts.follow, (u) => this.emit({ type: 'step', host: agent.host.name, deployment: u }))
      return { ...base, ...ended(last), deployment: d.id, code: last.reasonCode ?? (last.state === 'succeeded' ? null : 'DEPLOYMENT_FAILED') }
    } catch (err) {
      const f = failureOf(err)
      return { ...base, outcome: f.unreachable ? 'unreachable' : f.broken ? 'failed' : 'refused', deployment: d.id, code: f.code, reason: `${f.detail} (while following deployment ${d.id})` }
    }
  }

  /**
   * Puts back, batch by batch and last moved first, every host this rollout moved, and every failed host
   * whose current is not what it ran before. A host that ran nothing before has its node stopped.
   */
  async putBack(failed: HostResult[]): Promise<void> {
    const size = batchCount(this.opts.fleet.batch, this.opts.fleet.hosts.length)
    const hosts = [...[...this.moved].reverse(), ...failed.filter((f) => f.outcome === 'failed' || f.outcome === 'unreachable').map((f) => f.host)]
    for (const group of chunks([...new Set(hosts)], size)) {
      await Promise.all(group.map((host) => this.putBackOne(host)))
    }
  }

  private async putBackOne(host: string): Promise<void> {
    const agent = this.agent(host)
    const r = this.results.get(host)!
    const wasMoved = this.moved.includes(host)
    let app: AgentApp | null
    try {
      app = await agent.app()
    } catch (err) {
      const f = failureOf(err)
      if (!wasMoved && f.unreachable) return
      this.set({ ...r, outcome: wasMoved ? 'put_back_failed' : r.outcome, reason: `${r.reason ? `${r.reason}; ` : ''}could not put it back: ${f.detail}`, code: r.code ?? f.code })
      return
    }
    if (app && app.current === r.before && (r.before === null || app.node.state === 'running')) {
      if (wasMoved) this.set({ ...r, outcome: 'put_back' })
      return
    }
    if (!wasMoved && !isIdle(app)) return
    this.emit({ type: 'put-back', host, to: r.before })
    const back = await this.run(agent, { ...r }, () => (r.before === null ? agent.stop() : agent.rollback({ to: r.before, rollout: this.rollout })), false)
    const ok = back.outcome === 'done'
    const what = r.before === null ? 'it ran no release before: its node was stopped' : `put back to ${r.before}`
    this.set({
      ...r,
      outcome: wasMoved ? (ok ? 'put_back' : 'put_back_failed') : r.outcome,
      putBack: back.deployment,
      reason: ok ? (wasMoved ? what : `${r.reason}; ${what}`) : `${r.reason ? `${r.reason}; ` : ''}putting it back failed: ${back.reason ?? back.outcome}`,
    })
  }

  finish(kind: 'deploy' | 'rollback', release: string | null, phases: Phase[]): RolloutResult {
    const hosts = this.opts.agents.map((a) => this.results.get(a.host.name) ?? result(a, 'not_deployed'))
    const ok = !this.halted && hosts.every((h) => h.outcome === 'done' || h.outcome === 'skipped')
    return { kind, app: this.opts.fleet.app, rollout: this.rollout, release, ok, halted: this.halted, phases, hosts }
  }
}

/**
 * `berth fleet deploy`: uploads `file` to every host (nothing deploys unless all took it), skips hosts already
 * on the release, then deploys phase by phase (see phases.ts). A resumed rollout keeps its rollout id, and
 * the hosts it had moved count as moved for a halt.
 */
export async function deployFleet(opts: RolloutOptions & { file: string; sha256: string }): Promise<RolloutResult> {
  const { fleet, agents } = opts
  const emit = (e: RolloutEvent) => opts.onEvent?.(e)
  const uploads = await everyHost(agents, async (a) => {
    const up = await a.upload(opts.file, opts.sha256, (sent, total) => emit({ type: 'upload', host: a.host.name, sent, total }))
    emit({ type: 'uploaded', host: a.host.name, release: up.id, created: up.created })
    return up
  })
  const early = new Conductor(opts, opts.rollout ?? newRolloutId())
  if (uploads.some((u) => !u.ok)) {
    uploads.forEach((u, i) => {
      if (u.ok) return
      const r = failedCall(agents[i]!, u.error)
      early.set({ ...r, outcome: r.outcome === 'unreachable' ? 'unreachable' : 'upload_failed' })
      early.halt(r)
    })
    return early.finish('deploy', null, [])
  }
  const releases = uploads.map((u) => (u as { value: { id: string } }).value.id)

  const states = await everyHost(agents, (a) => a.app())
  if (states.some((s) => !s.ok)) {
    states.forEach((s, i) => {
      if (s.ok) return
      const r = failedCall(agents[i]!, s.error, { release: releases[i]! })
      early.set(r)
      early.halt(r)
    })
    return early.finish('deploy', releases[0]!, [])
  }
  const apps = states.map((s) => (s as { value: AgentApp | null }).value)
  const onRelease = apps.map((app, i) => !!app && app.current === releases[i] && app.node.state === 'running' && isIdle(app))

  // A rerun after a halt or a kill: the hosts an earlier run of this release moved tell its rollout id.
  const earlier = apps.map((app, i) => (onRelease[i] && app!.lastDeployment?.kind === 'deploy' && app!.lastDeployment.release === releases[i] && app!.lastDeployment.state === 'succeeded' ? app!.lastDeployment.rollout : null))
  const rolloutId = opts.rollout ?? earlier.find((r): r is string => !!r) ?? early.rollout
  const c = new Conductor(opts, rolloutId)
  const pending: string[] = []
  agents.forEach((a, i) => {
    const resumed = onRelease[i] && earlier[i] === rolloutId
    const before = resumed ? (apps[i]!.lastDeployment!.previous ?? null) : (apps[i]?.current ?? null)
    if (onRelease[i]) {
      c.set(result(a, 'skipped', { release: releases[i]!, before, reason: `already on ${releases[i]}` }))
      if (resumed) c.moved.push(a.host.name)
    } else {
      c.set(result(a, 'not_deployed', { release: releases[i]!, before }))
      pending.push(a.host.name)
    }
  })
  const phases = planPhases(fleet, pending, onRelease.some(Boolean))
  emit({ type: 'plan', rollout: rolloutId, release: releases[0]!, phases, skipped: agents.filter((_, i) => onRelease[i]).map((a) => a.host.name) })

  for (const phase of phases) {
    const done = await Promise.all(
      phase.hosts.map(async (host) => {
        const agent = c.agent(host)
        const base = c.results.get(host)!
        const migrate = phase.migrate.includes(host)
        const r = await c.run(agent, base, () => agent.deploy({ release: base.release!, migrate, rollout: rolloutId }), migrate)
        c.set(r)
        if (r.outcome === 'done') c.moved.push(host)
        emit({ type: 'end', host, result: r })
        return r
      }),
    )
    const failed = done.filter((r) => r.outcome !== 'done')
    if (failed.length > 0) {
      c.halt(failed[0]!)
      await c.putBack(failed)
      break
    }
  }
  return c.finish('deploy', releases[0]!, phases)
}

/**
 * `berth fleet rollback`: every host to `to` (an id or a version), or without it to the release the first
 * host on the fleet's most common release ran before it, canary first and then batch by batch; stops at
 * the first failure. Hosts already on the target are skipped, so a halted rollback resumes with --to.
 */
export async function rollbackFleet(opts: RolloutOptions & { to?: string }): Promise<RolloutResult> {
  const { fleet, agents } = opts
  const c = new Conductor(opts, opts.rollout ?? newRolloutId())
  const states = await everyHost(agents, (a) => a.app())
  if (states.some((s) => !s.ok)) {
    states.forEach((s, i) => {
      if (s.ok) return
      const r = failedCall(agents[i]!, s.error)
      c.set(r)
      c.halt(r)
    })
    return c.finish('rollback', null, [])
  }
  const apps = states.map((s) => (s as { value: AgentApp | null }).value)
  let target = opts.to ?? null
  if (target === null) {
    const majority = mostCommon(apps.map((a) => a?.current ?? null))
    const i = apps.findIndex((a) => a?.current === majority && majority !== null)
    if (i >= 0) {
      try {
        const history = await agents[i]!.deployments()
        target = history.find((d) => (d.kind === 'deploy' || d.kind === 'rollback') && d.state === 'succeeded' && d.release !== majority)?.release ?? null
      } catch (err) {
        const r = failedCall(agents[i]!, err)
        c.set(r)
        c.halt(r)
        return c.finish('rollback', null, [])
      }
    }
    if (target === null) {
      const r = result(agents[0]!, 'refused', { code: 'NO_ROLLBACK_TARGET', reason: 'no host of the fleet has an earlier release that deployed successfully; name one with --to ID' })
      c.halt(r)
      return c.finish('rollback', null, [])
    }
  }
  // Each host names the target by its own id; a host without it stops the rollback before anything moves.
  const resolved = await everyHost(agents, (a) => a.release(target!))
  const missing = resolved.findIndex((r) => !r.ok || r.value === null)
  if (missing >= 0) {
    const r0 = resolved[missing]!
    const r = r0.ok ? result(agents[missing]!, 'refused', { code: 'RELEASE_NOT_FOUND', reason: `the host has no release ${target}` }) : failedCall(agents[missing]!, r0.error)
    c.set(r)
    c.halt(r)
    return c.finish('rollback', target, [])
  }
  const ids = resolved.map((r) => (r as { value: { id: string } }).value.id)
  const pending: string[] = []
  agents.forEach((a, i) => {
    const app = apps[i]
    const on = !!app && app.current === ids[i] && app.node.state === 'running' && isIdle(app)
    c.set(result(a, on ? 'skipped' : 'not_deployed', { release: ids[i]!, before: app?.current ?? null, reason: on ? `already on ${ids[i]}` : null }))
    if (!on) pending.push(a.host.name)
  })
  const phases = planPhases({ ...fleet, migrate: 'every' }, pending, true).map((p) => ({ ...p, migrate: [] }))
  c.emit({ type: 'plan', rollout: c.rollout, release: ids[0]!, phases, skipped: agents.filter((a) => !pending.includes(a.host.name)).map((a) => a.host.name) })
  for (const phase of phases) {
    const done = await Promise.all(
      phase.hosts.map(async (host) => {
        const agent = c.agent(host)
        const base = c.results.get(host)!
        const r = await c.run(agent, base, () => agent.rollback({ to: base.release!, rollout: c.rollout }), false)
        c.set(r)
        c.emit({ type: 'end', host, result: r })
        return r
      }),
    )
    const failed = done.find((r) => r.outcome !== 'done')
    if (failed) {
      c.halt(failed)
      break
    }
  }
  return c.finish('rollback', ids[0]!, phases)
}

/** The most common non-null value (the first of them on a tie), or null. */
export function mostCommon(values: (string | null)[]): string | null {
  const counts = new Map<string, number>()
  for (const v of values) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1)
  let best: string | null = null
  for (const [v, n] of counts) if (best === null || n > counts.get(best)!) best = v
  return best
}

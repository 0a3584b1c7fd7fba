// What the conductor needs of one host's agent, as an interface the CLI implements over HTTP (and tests fake),
// and following a deployment on it until it ends, with the host counted as gone after a grace period.

import type { Deployment } from '../store/deployments.js'
import type { FleetHost } from './file.js'

export type { Deployment }

/** The parts of GET /v1/apps/{app} a rollout reads. */
export interface AgentApp {
  current: string | null
  node: { state: string; release: string | null }
  lastDeployment: Deployment | null
}

export interface UploadedRelease {
  id: string
  version: string
  /** false: the agent had these bytes already. */
  created: boolean
}

/**
 * One host's agent for one app. Failures are thrown as errors with `status` (null: the host did not
 * answer), `code` (the agent's problem code) and `detail`, as the CLI's ApiError carries them.
 */
export interface Agent {
  readonly host: FleetHost
  upload(file: string, sha256: string, onProgress: (sent: number, total: number) => void): Promise<UploadedRelease>
  /** The app on this host; null when the host has never seen it (APP_NOT_FOUND). */
  app(): Promise<AgentApp | null>
  /** A release by id or version; null when the host has no such release. */
  release(idOrVersion: string): Promise<{ id: string; version: string } | null>
  deployments(): Promise<Deployment[]>
  deploy(body: { release: string; migrate: boolean; rollout: string }): Promise<Deployment>
  rollback(body: { to?: string; rollout: string }): Promise<Deployment>
  stop(): Promise<Deployment>
  deployment(id: string): Promise<Deployment>
}

/**
 * Codes of a host that broke the protocol: an answer without its shape, one past the size cap, a deployment
 * past its deadline. Such a host is failed (the rollout halts and puts back), not "refused".
 */
export const BROKEN_CODES: readonly string[] = ['INVALID_RESPONSE', 'ANSWER_TOO_LARGE', 'DEPLOYMENT_DEADLINE']

export interface Failure {
  /** The host did not answer (refused, timed out, reset). */
  unreachable: boolean
  /** The host answered in a way no berth does (BROKEN_CODES). */
  broken: boolean
  code: string
  detail: string
}

/** What went wrong with a call to an agent, in the words the summary prints. */
export function failureOf(err: unknown): Failure {
  const e = err as { status?: unknown; code?: unknown; detail?: unknown; message?: unknown } | null
  const code = typeof e?.code === 'string' ? e.code : 'INTERNAL'
  const detail = typeof e?.detail === 'string' ? e.detail : typeof e?.message === 'string' ? e.message : String(err)
  return { unreachable: e?.status === null, broken: BROKEN_CODES.includes(code), code, detail }
}

export const FINAL_STATES: readonly string[] = ['succeeded', 'failed', 'rolled_back']

export interface FollowOptions {
  pollMs: number
  /** How long a host may stop answering while it runs a deployment before the rollout counts it as gone. */
  unreachableMs: number
  /** How long one deployment may take in all before its host counts as failed (DEPLOYMENT_DEADLINE). */
  deadlineMs: number
}

export const DEFAULT_DEADLINE_MS = 30 * 60_000

/** A deployment that outlived the fleet's deadline: its host answered, so it is failed, not unreachable. */
export class DeadlinePassed extends Error {
  override name = 'DeadlinePassed'
  readonly code = 'DEPLOYMENT_DEADLINE'
  readonly status = undefined
  constructor(readonly detail: string) {
    super(detail)
  }
}

/**
 * What the CLI uses. A phase ends on its slowest host's last poll, so the interval adds up once per phase:
 * 100 ms keeps that small next to a boot, at ten cheap GETs a second per host deploying.
 */
export const DEFAULT_FOLLOW: FollowOptions = { pollMs: 100, unreachableMs: 30_000, deadlineMs: DEFAULT_DEADLINE_MS }

/** Polls a deployment until it ends; throws the last failure when the host stops answering for too long. */
export async function followDeployment(agent: Agent, first: Deployment, opts: FollowOptions, onUpdate?: (d: Deployment) => void): Promise<Deployment> {
  let d = first
  let unreachableSince: number | null = null
  const started = Date.now()
  while (!FINAL_STATES.includes(d.state)) {
    if (Date.now() - started > opts.deadlineMs) {
      throw new DeadlinePassed(`deployment ${d.id} did not end within ${Math.round(opts.deadlineMs / 1000)} s (the fleet's deadline); it was ${d.state}`)
    }
    await new Promise((r) => setTimeout(r, opts.pollMs))
    try {
      d = await agent.deployment(d.id)
      unreachableSince = null
      onUpdate?.(d)
    } catch (err) {
      if (!failureOf(err).unreachable) throw err
      unreachableSince ??= Date.now()
      if (Date.now() - unreachableSince > opts.unreachableMs) throw err
    }
  }
  return d
}

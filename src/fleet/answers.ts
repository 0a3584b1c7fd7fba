// The shape every agent answer must have before the conductor acts on it: a broken or hostile agent that
// answers `{}` (or a deployment of another id) is a failed host, never a host polled for `undefined` forever.

import type { AgentApp, Deployment, UploadedRelease } from './agent.js'

/** The code of an answer without the shape its route promises; the host counts as failed. */
export const INVALID_RESPONSE = 'INVALID_RESPONSE'

// Listed here, not imported from the store: the CLI must not load the server's modules (nor SQLite).
const STATES = ['pending', 'migrating', 'switching', 'starting', 'verifying', 'reverting_migrations', 'stopping', 'routing', 'draining', 'succeeded', 'failed', 'rolled_back'] as const satisfies readonly Deployment['state'][]
const KINDS = ['deploy', 'rollback', 'start', 'stop', 'restart'] as const satisfies readonly Deployment['kind'][]
/** Ids as berth makes them (release ids, deployment ids): nothing that could turn into another path. */
const ID = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/

export class InvalidAnswer extends Error {
  override name = 'InvalidAnswer'
  readonly code = INVALID_RESPONSE
  readonly status: number
  readonly detail: string
  constructor(host: string, what: string) {
    super(`${host} answered without ${what}`)
    this.status = 200
    this.detail = this.message
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isId = (v: unknown): v is string => typeof v === 'string' && ID.test(v)
const isNullableString = (v: unknown) => v === null || v === undefined || typeof v === 'string'

export function checkDeployment(host: string, v: unknown, id?: string): Deployment {
  if (!isObject(v)) throw new InvalidAnswer(host, 'a deployment object')
  if (!isId(v.id)) throw new InvalidAnswer(host, 'a deployment id')
  if (id !== undefined && v.id !== id) throw new InvalidAnswer(host, `deployment ${id} (it answered ${v.id})`)
  if (!(STATES as readonly unknown[]).includes(v.state)) throw new InvalidAnswer(host, `a known state for deployment ${v.id}`)
  if (!(KINDS as readonly unknown[]).includes(v.kind)) throw new InvalidAnswer(host, `a known kind for deployment ${v.id}`)
  if (typeof v.release !== 'string' || !isNullableString(v.previous) || !isNullableString(v.reason) || !isNullableString(v.reasonCode) || !isNullableString(v.rollout)) throw new InvalidAnswer(host, `the fields of deployment ${v.id}`)
  if (!Array.isArray(v.steps) || !v.steps.every((s) => isObject(s) && typeof s.name === 'string' && typeof s.state === 'string' && typeof (s.output ?? '') === 'string')) throw new InvalidAnswer(host, `the steps of deployment ${v.id}`)
  if (!Array.isArray(v.warnings ?? []) || !((v.warnings ?? []) as unknown[]).every((w) => typeof w === 'string')) throw new InvalidAnswer(host, `the warnings of deployment ${v.id}`)
  return { warnings: [], ...v } as unknown as Deployment
}

export function checkApp(host: string, v: unknown): AgentApp {
  if (!isObject(v) || !isNullableString(v.current) || !isObject(v.node) || typeof v.node.state !== 'string') throw new InvalidAnswer(host, 'the app (current, node.state)')
  if (v.lastDeployment !== null && v.lastDeployment !== undefined) checkDeployment(host, v.lastDeployment)
  return { ...v, current: v.current ?? null, lastDeployment: v.lastDeployment ?? null } as unknown as AgentApp
}

export function checkRelease(host: string, v: unknown): { id: string; version: string } {
  if (!isObject(v) || !isId(v.id) || typeof v.version !== 'string') throw new InvalidAnswer(host, 'a release (id, version)')
  return { id: v.id, version: v.version }
}

export function checkDeployments(host: string, v: unknown): Deployment[] {
  if (!isObject(v) || !Array.isArray(v.deployments)) throw new InvalidAnswer(host, 'a list of deployments')
  return v.deployments.map((d) => checkDeployment(host, d))
}

export function checkUpload(host: string, v: unknown, status: number): UploadedRelease {
  const r = checkRelease(host, v)
  return { ...r, created: status === 201 }
}

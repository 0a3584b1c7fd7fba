// The shapes of berth's JSON answers as the client commands read them (see openapi.yaml).

import type { Release as StoredRelease } from '../store/releases.js'
import type { NodeStatus as SupervisorStatus } from '../supervision/supervisor.js'
import type { HealthInfo } from '../supervision/health.js'
import type { ProxyView } from '../proxy/proxy.js'

// Type-only imports: the wire shapes are the server's own types (one source of truth, checked by tsc),
// without loading any server module (or SQLite's native addon) into the CLI at run time.
export type { Deployment, Step } from '../store/deployments.js'
import type { Deployment } from '../store/deployments.js'
export type { Plan } from '../deploy/plan.js'

export type Release = StoredRelease & { current: boolean }

/** Not imported from the store: that would load SQLite into the CLI. */
export const FINAL_STATES = ['succeeded', 'failed', 'rolled_back']

export type NodeStatus = SupervisorStatus & { health?: HealthInfo | null }

export interface App {
  name: string
  current: string | null
  node: NodeStatus
  lastDeployment: Deployment | null
  /** With the proxy setting: the listener, the live instance and any starting or draining one. */
  proxy?: ProxyView | null
}

export interface AppSummary {
  name: string
  createdAt: string
  releases: number
}

export type { AuditEvent as Event } from '../store/events.js'
export type { SessionRecord } from '../store/sessions.js'
export type { Delivery, Webhook } from '../webhooks/webhooks.js'
import type { SessionRecord } from '../store/sessions.js'

export type Session = SessionRecord & { active: boolean }

export interface RpcResult {
  code: number | null
  output: string
  timedOut: boolean
  ms: number
}

export type { CertificateView as Certificate } from '../edge/certs.js'

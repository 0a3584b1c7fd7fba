// The shapes of berth's JSON answers as the client commands read them (see openapi.yaml): only the fields
// they print, typed from the wire format rather than the server's modules.

export interface Release {
  id: string
  app: string
  version: string
  sha256: string
  size: number
  uploadedAt: string
  uploadedBy: string | null
  current: boolean
}

export interface Step {
  name: string
  state: 'running' | 'ok' | 'failed' | 'skipped'
  startedAt: string
  endedAt: string | null
  output: string
}

export interface Deployment {
  id: string
  app: string
  kind: string
  release: string
  previous: string | null
  state: string
  reason: string | null
  warnings: string[]
  steps: Step[]
  actor: string | null
  createdAt: string
  finishedAt: string | null
}

export const FINAL_STATES = ['succeeded', 'failed', 'rolled_back']

export interface NodeStatus {
  state: string
  release: string | null
  pid: number | null
  beamPid: number | null
  startedAt: string | null
  uptimeMs: number | null
  restarts: number
  lastExit: string | null
  health?: { url: string; ok: boolean | null; consecutiveFailures: number; lastError: string | null } | null
}

export interface App {
  name: string
  current: string | null
  node: NodeStatus
  lastDeployment: Deployment | null
}

export interface AppSummary {
  name: string
  createdAt: string
  releases: number
}

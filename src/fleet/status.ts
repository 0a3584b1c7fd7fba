// `berth fleet status`: one row per host (reachable or not, current release and version, node state, last
// deployment with its rollout), with the hosts that run another release than most of the fleet marked.

import { failureOf, type Agent } from './agent.js'
import type { Fleet } from './file.js'
import { mostCommon } from './rollout.js'

export interface HostStatus {
  host: string
  url: string
  reachable: boolean
  /** Why the host could not be read (unreachable, or a refusal such as a wrong token). */
  error: { code: string; detail: string } | null
  current: string | null
  version: string | null
  node: string | null
  lastDeployment: { id: string; kind: string; release: string; state: string; rollout: string | null; reason: string | null; createdAt: string } | null
  /** Runs another release than the fleet's most common one. */
  differs: boolean
}

export interface FleetStatus {
  app: string
  /** The release most of the reachable hosts run. */
  majority: string | null
  reachable: number
  unreachable: number
  hosts: HostStatus[]
}

const versionOf = (id: string) => id.replace(/-[0-9a-f]{12}$/, '')

export async function fleetStatus(fleet: Fleet, agents: Agent[]): Promise<FleetStatus> {
  const rows = await Promise.all(
    agents.map(async (a): Promise<HostStatus> => {
      const base = { host: a.host.name, url: a.host.url, differs: false }
      try {
        const app = await a.app()
        const d = app?.lastDeployment ?? null
        return {
          ...base,
          reachable: true,
          error: null,
          current: app?.current ?? null,
          version: app?.current ? versionOf(app.current) : null,
          node: app?.node.state ?? null,
          lastDeployment: d ? { id: d.id, kind: d.kind, release: d.release, state: d.state, rollout: d.rollout ?? null, reason: d.reason, createdAt: d.createdAt } : null,
        }
      } catch (err) {
        const f = failureOf(err)
        // A refusal (401, 403) comes from a host that answers; only silence counts as unreachable.
        return { ...base, reachable: !f.unreachable, error: { code: f.code, detail: f.detail }, current: null, version: null, node: null, lastDeployment: null }
      }
    }),
  )
  const majority = mostCommon(rows.filter((r) => r.reachable && !r.error).map((r) => r.current))
  for (const r of rows) r.differs = r.reachable && !r.error && r.current !== majority
  const reachable = rows.filter((r) => r.reachable).length
  return { app: fleet.app, majority, reachable, unreachable: rows.length - reachable, hosts: rows }
}

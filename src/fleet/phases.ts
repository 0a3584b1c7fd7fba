// The order of a rollout: the canaries one at a time, then the rest in batches, and which hosts migrate.
// Pure, so the planner is tested without agents.

import { batchCount, type Fleet } from './file.js'

export interface Phase {
  /** Deployed together; the next phase starts only when every one of these has succeeded. */
  hosts: string[]
  /** The hosts of this phase whose deployment runs the migration. */
  migrate: string[]
}

/**
 * The phases for the hosts still to deploy (`pending`, in fleet order). With migrate: once the first host
 * migrates, alone, unless the migration already ran (`migrated`: a host is already on the release).
 */
export function planPhases(fleet: Pick<Fleet, 'canary' | 'batch' | 'migrate' | 'hosts'>, pending: string[], migrated: boolean): Phase[] {
  const phases: Phase[] = pending.slice(0, fleet.canary).map((h) => ({ hosts: [h], migrate: [] }))
  const size = batchCount(fleet.batch, fleet.hosts.length)
  const rest = pending.slice(fleet.canary)
  for (let i = 0; i < rest.length; i += size) phases.push({ hosts: rest.slice(i, i + size), migrate: [] })
  if (fleet.migrate === 'every') for (const p of phases) p.migrate = [...p.hosts]
  else if (!migrated && phases[0]) {
    // The migrating host goes alone: no host may run the new code before its migration has finished.
    if (phases[0].hosts.length > 1) phases.unshift({ hosts: phases[0].hosts.splice(0, 1), migrate: [] })
    phases[0].migrate = [...phases[0].hosts]
  }
  return phases
}

/** Groups of at most `size`, in order: how hosts are put back and rolled back. */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += Math.max(1, size)) out.push(items.slice(i, i + Math.max(1, size)))
  return out
}

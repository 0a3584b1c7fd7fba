// A node's exit as the kernel's OOM killer caused it under the app's memoryMax: told apart from a crash by
// the OOM kills of the app's cgroup (isolation/limits.ts, injected) at the node's start against its exit.

import type { Handle } from './types.js'

/** The signal or exit code is kept for whoever digs. */
export function oomExitReason(why: string, memoryMax: number | null): string {
  return `out of memory under its limit (${memoryMax === null ? 'memoryMax' : `memoryMax ${memoryMax} bytes`}; ${why})`
}

/**
 * why, or the OOM reason when the count grew since the handle's mark. Both instances of a proxied app share
 * its cgroup, so every handle of the app (`handles`) moves its mark to now: one kill is told once.
 */
export function explainExit(l: Handle, why: string, now: number | null, handles: (Handle | undefined)[], memoryMax: () => number | null): string {
  const before = l.oomKills
  for (const h of handles) if (h) h.oomKills = now
  if (now === null || before === null || now <= before) return why
  return oomExitReason(why, memoryMax())
}

// What the app page says of the app's resource limits, as text from GET /v1/apps/{app}'s `limits`: what is
// asked and how it is enforced, what is not and why, usage and OOM kills. No DOM: test/web-facts.test.ts.

import { bytes, duration } from './format.js'
import type { Limits } from './schemas.js'

type Asked = NonNullable<Limits['settings']>

/** The limits asked for, one phrase each ("memory 512.0 MiB", "1.5 cores", "weight 50", "1024 tasks"). */
export function limitsText(s: Limits['settings']): string {
  if (!s) return 'none'
  const parts = [
    s.memoryMax !== null ? `memory ${bytes(s.memoryMax)}` : null,
    s.cpuQuota !== null ? `${s.cpuQuota / 100} core${s.cpuQuota === 100 ? '' : 's'}` : null,
    s.cpuWeight !== null ? `CPU weight ${s.cpuWeight}` : null,
    s.tasksMax !== null ? `${s.tasksMax} tasks` : null,
  ]
  return parts.filter(Boolean).join(' · ') || 'none'
}

export function enforcementText(l: Limits): string {
  if (!l.settings) return 'no limits set'
  const on = Object.keys(l.enforced)
  if (on.length === 0) return 'none enforced here'
  return `${on.join(', ')} through ${l.via === 'cgroup2' ? 'cgroup v2' : l.via === 'cgroup1' ? 'cgroup v1' : 'RLIMIT_NPROC'}`
}

/** Usage beside the ceilings: "120.0 MiB of 512.0 MiB · 35 tasks · CPU 12s"; null without a cgroup. */
export function usageText(l: Limits): string | null {
  const u = l.usage
  if (!u) return null
  const max = (l.settings as Asked | null)?.memoryMax ?? null
  const parts = [
    u.memoryBytes !== null ? `memory ${u.memoryBytes ? bytes(u.memoryBytes) : '0 B'}${max !== null ? ` of ${bytes(max)}` : ''}` : null,
    u.tasks !== null ? `${u.tasks} tasks` : null,
    u.cpuUsageUsec !== null ? `CPU ${duration(Math.round(u.cpuUsageUsec / 1000))}` : null,
  ]
  return parts.filter(Boolean).join(' · ') || null
}

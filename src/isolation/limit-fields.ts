// The vocabulary of an app's resource limits, shared by their validation (apps/limits-settings.ts, above)
// and their enforcement (limits.ts, here): kept in isolation so that the launcher's layer needs nothing above it.

/** null in a field: no ceiling of that kind. The setting itself is null when no field is set. */
export interface LimitSettings {
  /** Bytes of memory the app's processes together may use before the kernel kills one (its BEAM). */
  memoryMax: number | null
  /** Relative share of CPU time under contention, 1 to 10000 (cgroup v2's cpu.weight; 100 is everyone's default). */
  cpuWeight: number | null
  /** Hard ceiling in percent of one core: 150 is one and a half cores. */
  cpuQuota: number | null
  /** Processes and threads together; a BEAM alone runs some 20 to 40 threads, so less than 16 could never boot. */
  tasksMax: number | null
}

export const LIMIT_FIELDS = ['memoryMax', 'cpuWeight', 'cpuQuota', 'tasksMax'] as const
export type LimitField = (typeof LIMIT_FIELDS)[number]

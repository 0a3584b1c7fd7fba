// The limits setting: an app's memory, CPU and task ceilings as the operator states them, with their
// validation. What enforces them (cgroups, rlimits) is src/isolation/limits.ts; this only says what is asked.

import { problem } from '../errors.js'
import { LIMIT_FIELDS, type LimitSettings } from '../isolation/limit-fields.js'

export { LIMIT_FIELDS, type LimitField, type LimitSettings } from '../isolation/limit-fields.js'

const NO_LIMITS: LimitSettings = { memoryMax: null, cpuWeight: null, cpuQuota: null, tasksMax: null }
/** Below this not even a shell and run_erl start, so a smaller value is a typo (bytes meant as MiB). */
export const MIN_MEMORY = 4 * 1024 ** 2
const MAX_MEMORY = 2 ** 50
const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }
/** "512M", "2G", "1.5G", "512MiB", "64k": binary multiples, as systemd's MemoryMax= and the kernel read them. */
const SIZE = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?B)?$/

const invalid = (field: string, detail: string) => problem('VALIDATION_FAILED', detail, { field })

function whole(field: string, v: unknown, min: number, max: number, example: string): number | null {
  if (v === null) return null
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(field, `Setting ${field} must be a whole number from ${min} to ${max} (${example}), or null for no limit.`)
  return v
}

/** A number of bytes, or a size with a binary unit; stored as bytes. */
export function memoryBytes(v: unknown): number | null {
  if (v === null) return null
  let bytes = typeof v === 'number' ? v : NaN
  const m = typeof v === 'string' ? SIZE.exec(v.trim()) : null
  if (m) bytes = Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()])
  if (!Number.isInteger(bytes) || bytes < MIN_MEMORY || bytes > MAX_MEMORY) {
    throw invalid('limits.memoryMax', `Setting limits.memoryMax must be a number of bytes from ${MIN_MEMORY} (4M) to 2^50, or a size like "512M" or "2G" (K, M, G, T are powers of 1024), or null for no limit.`)
  }
  return bytes
}

/** The limits setting: null, or an object whose fields go over the current ones; all fields null is null. */
export function limitsSetting(v: unknown, current: LimitSettings | null): LimitSettings | null {
  if (v === null) return null
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid('limits', 'Setting limits must be null or an object like {"memoryMax": "512M", "cpuQuota": 150, "tasksMax": 1024}.')
  const next: LimitSettings = { ...NO_LIMITS, ...(current ?? {}) }
  for (const [k, f] of Object.entries(v as Record<string, unknown>)) {
    switch (k) {
      case 'memoryMax': next.memoryMax = memoryBytes(f); break
      case 'cpuWeight': next.cpuWeight = whole('limits.cpuWeight', f, 1, 10_000, '100 is the default share'); break
      case 'cpuQuota': next.cpuQuota = whole('limits.cpuQuota', f, 1, 100_000, 'percent of one core: 150 is 1.5 cores'); break
      case 'tasksMax': next.tasksMax = whole('limits.tasksMax', f, 16, 4_194_304, 'processes and threads; a BEAM runs 20 to 40 threads'); break
      default:
        throw invalid(`limits.${k}`, `Unknown limits setting "${k}"; known: ${LIMIT_FIELDS.join(', ')}.`)
    }
  }
  return LIMIT_FIELDS.every((f) => next[f] === null) ? null : next
}

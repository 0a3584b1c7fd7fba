// Validation of an app's environment: variable names, the names berth reserves for itself, value limits.
// Values are secrets: nothing here logs or returns them.

import { problem } from '../errors.js'

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
/** Names berth sets itself; an app may not override them. */
const RESERVED = /^(RELEASE_TMP|ERL_CRASH_DUMP|RELEASE_ROOT|ERL_EPMD_ADDRESS|BERTH_.*)$/

export function validateEnvName(k: string): void {
  if (!ENV_NAME.test(k)) throw problem('VALIDATION_FAILED', `Environment name "${k.slice(0, 60)}" is not a valid variable name.`)
  if (RESERVED.test(k)) throw problem('VALIDATION_FAILED', `Environment name "${k}" is set by berth itself.`)
}

export function validateEnv(env: unknown): Record<string, string> {
  if (!env || typeof env !== 'object' || Array.isArray(env)) throw problem('VALIDATION_FAILED', 'The environment must be a JSON object of strings.')
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env as Record<string, unknown>)) {
    validateEnvName(k)
    if (typeof v !== 'string' || v.includes('\0') || v.length > 65536) throw problem('VALIDATION_FAILED', `Environment value of ${k} must be a string without NUL bytes (at most 64 KiB).`)
    out[k] = v
  }
  return out
}

/** A change of single variables: `set` validated like a whole environment, `unset` names, none in both. */
export function validateEnvChange(change: { set?: unknown; unset?: unknown }): { set: Record<string, string>; unset: string[] } {
  const set = change.set === undefined ? {} : validateEnv(change.set)
  const unset = change.unset ?? []
  if (!Array.isArray(unset) || unset.some((n) => typeof n !== 'string')) throw problem('VALIDATION_FAILED', '"unset" must be an array of variable names.')
  for (const n of unset as string[]) {
    validateEnvName(n)
    if (Object.hasOwn(set, n)) throw problem('VALIDATION_FAILED', `Environment name "${n}" is both set and unset; give it in one of them.`)
  }
  return { set, unset: [...new Set(unset as string[])] }
}

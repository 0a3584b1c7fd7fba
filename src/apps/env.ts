// Validation of an app's environment: variable names, the names berth reserves for itself, value limits.
// Values are secrets: nothing here logs or returns them.

import { problem } from '../errors.js'

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
/** Names berth sets itself; an app may not override them. */
const RESERVED = /^(RELEASE_TMP|ERL_CRASH_DUMP|RELEASE_ROOT|ERL_EPMD_ADDRESS|BERTH_.*)$/

export function validateEnv(env: unknown): Record<string, string> {
  if (!env || typeof env !== 'object' || Array.isArray(env)) throw problem('VALIDATION_FAILED', 'The environment must be a JSON object of strings.')
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env as Record<string, unknown>)) {
    if (!ENV_NAME.test(k)) throw problem('VALIDATION_FAILED', `Environment name "${k.slice(0, 60)}" is not a valid variable name.`)
    if (RESERVED.test(k)) throw problem('VALIDATION_FAILED', `Environment name "${k}" is set by berth itself.`)
    if (typeof v !== 'string' || v.includes('\0') || v.length > 65536) throw problem('VALIDATION_FAILED', `Environment value of ${k} must be a string without NUL bytes (at most 64 KiB).`)
    out[k] = v
  }
  return out
}

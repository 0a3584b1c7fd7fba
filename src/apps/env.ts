// Validation of an app's environment: variable names, the names berth reserves for itself, value limits,
// and the size the whole environment may reach before the node could not be started (exec's E2BIG).
// Values are secrets: nothing here logs or returns them.

import fs from 'node:fs'
import { problem } from '../errors.js'
import { checkNoNul } from './text.js'

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
/** Names berth sets itself; an app may not override them. */
const RESERVED = /^(RELEASE_TMP|ERL_CRASH_DUMP|RELEASE_ROOT|ERL_EPMD_ADDRESS|BERTH_.*)$/

/**
 * One value, in UTF-8 bytes. Linux refuses any single argument or NAME=value string over MAX_ARG_STRLEN
 * (32 pages, 128 KiB) with E2BIG; half of that leaves room for the name and for berth's prefix to
 * ERL_AFLAGS. Counted in bytes: 64 Ki characters of "€" are 192 KiB.
 */
export const MAX_VALUE_BYTES = 64 * 1024
/** The kernel's floor for the exec limit (ARG_MAX with a tiny stack limit) and its cap (3/4 of 8 MiB). */
const EXEC_FLOOR = 128 * 1024
const EXEC_CAP = 6 * 1024 * 1024
const POINTER_BYTES = 8

/**
 * The exec limit (what `getconf ARG_MAX` says): a quarter of the stack size limit, which the node inherits
 * from berth, between the kernel's floor and cap. Read from /proc/self/limits; 2 MiB (the limit under the
 * usual 8 MiB stack) when that cannot be read.
 */
export function execLimit(limitsFile = '/proc/self/limits'): number {
  try {
    const m = /^Max stack size\s+(\S+)/m.exec(fs.readFileSync(limitsFile, 'utf8'))
    if (!m) return 2 * 1024 * 1024
    const stack = m[1] === 'unlimited' ? Infinity : Number(m[1])
    if (!Number.isFinite(stack) && m[1] !== 'unlimited') return 2 * 1024 * 1024
    return Math.max(EXEC_FLOOR, Math.min(EXEC_CAP, Math.floor(stack / 4)))
  } catch {
    return 2 * 1024 * 1024
  }
}

/**
 * What the app's environment may take of the exec limit: half. The other half is for what every start adds
 * on top of it: berth's own variables (PATH, HOME, RELEASE_TMP, ERL_AFLAGS, the RUN_ERL_* ones, PORT…, about
 * 1 KiB), what the release's start script and erlexec export (RELEASE_*, BINDIR, ROOTDIR…, a few KiB), erl's
 * command line (boot and config paths, the cookie) and a stack limit lowered by a few MiB later. 1 MiB with
 * the usual 8 MiB stack; 2.7 MB, which failed every start with E2BIG, is well over it.
 */
export function envLimit(limit = execLimit()): number {
  return Math.floor(limit / 2)
}

/**
 * The bytes an environment takes of the exec limit: each NAME=value string with its NUL and its pointer.
 * ERL_AFLAGS counts twice: erlexec copies its content onto the BEAM's command line as well.
 */
export function envBytes(env: Record<string, string>): number {
  let n = 0
  for (const [k, v] of Object.entries(env)) n += Buffer.byteLength(k) + 1 + Buffer.byteLength(v) + 1 + POINTER_BYTES
  if (env.ERL_AFLAGS !== undefined) n += Buffer.byteLength(env.ERL_AFLAGS) + 1 + POINTER_BYTES
  return n
}

/** Refuses an environment the node could not be started with (413 ENV_TOO_LARGE, naming both sizes). */
export function checkEnvSize(env: Record<string, string>, exec = execLimit()): void {
  const size = envBytes(env)
  const limit = envLimit(exec)
  if (size <= limit) return
  throw problem('ENV_TOO_LARGE', `The environment would take ${size} bytes of the process start limit, over the ${limit} an app may use (half of this host's exec limit, ARG_MAX ${exec} bytes; the rest is for what berth and the release's scripts add). The node could not be started with it (E2BIG). Keep large data in files and put their paths in the environment.`, { size, limit })
}

export function validateEnvName(k: string): void {
  if (!ENV_NAME.test(k)) throw problem('VALIDATION_FAILED', `Environment name "${k.slice(0, 60).replace(/[^\x21-\x7e]/g, '?')}" is not a valid variable name.`, { field: 'name' })
  if (RESERVED.test(k)) throw problem('VALIDATION_FAILED', `Environment name "${k}" is set by berth itself.`, { field: 'name' })
}

export function validateEnv(env: unknown): Record<string, string> {
  if (!env || typeof env !== 'object' || Array.isArray(env)) throw problem('VALIDATION_FAILED', 'The environment must be a JSON object of strings.')
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env as Record<string, unknown>)) {
    validateEnvName(k)
    if (typeof v !== 'string') throw problem('VALIDATION_FAILED', `Environment value of ${k} must be a string without NUL bytes (at most 64 KiB).`, { field: k })
    checkNoNul(v, `Environment value of ${k}`)
    const bytes = Buffer.byteLength(v)
    if (bytes > MAX_VALUE_BYTES) throw problem('ENV_TOO_LARGE', `Environment value of ${k} is ${bytes} bytes in UTF-8, over the ${MAX_VALUE_BYTES} one variable may hold (Linux refuses any single variable over 128 KiB at exec). Keep large data in a file and put its path in the environment.`, { field: k, size: bytes, limit: MAX_VALUE_BYTES })
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

// The fleet file (YAML): the inventory of hosts a rollout conducts, its canary, batch size and migration rule,
// parsed and validated once with every mistake named by its place in the file (FLEET_FILE_INVALID).

import YAML from 'yaml'
import { problem } from '../errors.js'
import { APP_NAME } from '../paths.js'

export interface FleetHost {
  name: string
  /** The agent's base URL, without a trailing slash. */
  url: string
  /** The environment variable holding this host's token (default BERTH_TOKEN); the file never holds a token. */
  tokenEnv: string
}

/** A number of hosts, or a share of the fleet's hosts (rounded up, at least one). */
export type BatchSize = { count: number } | { percent: number }

export type MigrateRule = 'once' | 'every'

export interface Fleet {
  app: string
  hosts: FleetHost[]
  /** Hosts deployed first, one at a time, before any batch. */
  canary: number
  batch: BatchSize
  /** once: the first host deployed migrates (the hosts share one database); every: each host migrates. */
  migrate: MigrateRule
  /** How long one host's deployment may take in all; past it the host is failed and the rollout halts. */
  deadlineMs: number
}

/** What --canary, --batch and --migrate may override, as the command line gives it. */
export interface FleetOverrides {
  canary?: string
  batch?: string
  migrate?: string
  deadline?: string
}

export const DEFAULT_TOKEN_ENV = 'BERTH_TOKEN'
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
const TOP_KEYS = new Set(['app', 'hosts', 'canary', 'batch', 'migrate', 'deadline'])
export const DEFAULT_DEADLINE = '30m'
const HOST_KEYS = new Set(['name', 'url', 'tokenEnv'])

function invalid(where: string, what: string): never {
  throw problem('FLEET_FILE_INVALID', `${where}: ${what}`)
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** `2`, `"2"` or `"25%"`; anything else is a mistake named at `where`. */
export function parseBatch(v: unknown, where: string): BatchSize {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1) return { count: v }
  if (typeof v === 'string') {
    const n = /^([1-9][0-9]{0,5})$/.exec(v.trim())
    if (n) return { count: Number(n[1]) }
    const p = /^([1-9][0-9]?|100)%$/.exec(v.trim())
    if (p) return { percent: Number(p[1]) }
  }
  return invalid(where, `batch must be a whole number of hosts (at least 1) or a percentage such as "25%", not ${JSON.stringify(v)}`)
}

function parseCanary(v: unknown, where: string): number {
  const n = typeof v === 'string' && /^[0-9]{1,6}$/.test(v.trim()) ? Number(v) : v
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0) return n
  return invalid(where, `canary must be a whole number of hosts (0 or more), not ${JSON.stringify(v)}`)
}

/** `90s`, `30m`, `1h`, `500ms`, or a bare number of seconds: at least a second, at most a day. */
export function parseDeadline(v: unknown, where: string): number {
  const m = /^([0-9]{1,9})(ms|s|m|h)?$/.exec(String(typeof v === 'number' || typeof v === 'string' ? v : '').trim())
  const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'] : NaN
  if (Number.isFinite(ms) && ms >= 1000 && ms <= 86_400_000) return ms
  return invalid(where, `deadline must be a duration from 1s to 24h such as "30m" or "90s", not ${JSON.stringify(v)}`)
}

function parseMigrate(v: unknown, where: string): MigrateRule {
  if (v === 'once' || v === 'every') return v
  return invalid(where, `migrate must be "once" (the first host migrates; the hosts share a database) or "every" (each host migrates), not ${JSON.stringify(v)}`)
}

function parseHost(v: unknown, i: number, file: string): FleetHost {
  const where = `${file}: hosts[${i}]`
  if (!isObject(v)) invalid(where, 'each host must be a mapping with name and url')
  for (const k of Object.keys(v)) if (!HOST_KEYS.has(k)) invalid(where, `unknown key "${k.slice(0, 40)}" (a host has name, url and tokenEnv)`)
  const { name, url, tokenEnv } = v
  if (typeof name !== 'string' || !HOST_NAME.test(name)) invalid(where, `name must be 1 to 64 letters, digits, ".", "_" or "-", not ${JSON.stringify(name)}`)
  if (typeof url !== 'string') invalid(`${where} (${name})`, 'url is missing: the agent\'s address, e.g. https://web-1.internal:4100')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return invalid(`${where} (${name})`, `url ${JSON.stringify(url.slice(0, 100))} is not a URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') invalid(`${where} (${name})`, 'url must be http:// or https://')
  // A token in the URL would end up in output and logs; tokens come from the environment only.
  if (parsed.username || parsed.password) invalid(`${where} (${name})`, 'url must not carry credentials: put the token in the variable tokenEnv names')
  if (parsed.search || parsed.hash) invalid(`${where} (${name})`, 'url must be the agent\'s base address, without ? or #')
  if (tokenEnv !== undefined && (typeof tokenEnv !== 'string' || !ENV_NAME.test(tokenEnv))) invalid(`${where} (${name})`, `tokenEnv must name an environment variable, e.g. BERTH_TOKEN_WEB1, not ${JSON.stringify(tokenEnv)}`)
  return { name, url: url.replace(/\/+$/, ''), tokenEnv: (tokenEnv as string | undefined) ?? DEFAULT_TOKEN_ENV }
}

/** Parses and validates a fleet file's text; `file` names it in every error. Overrides replace the file's values. */
export function parseFleet(text: string, file: string, overrides: FleetOverrides = {}): Fleet {
  const doc = YAML.parseDocument(text, { uniqueKeys: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const at = e.linePos?.[0] ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : ''
    invalid(file, `not valid YAML${at}: ${e.message.split('\n')[0]}`)
  }
  const raw: unknown = doc.toJS()
  if (!isObject(raw)) invalid(file, 'the fleet file must be a mapping with app and hosts')
  for (const k of Object.keys(raw)) if (!TOP_KEYS.has(k)) invalid(file, `unknown key "${k.slice(0, 40)}" (a fleet file has app, hosts, canary, batch and migrate)`)
  const { app, hosts } = raw
  if (typeof app !== 'string' || !APP_NAME.test(app)) invalid(file, `app must be the app's name (${APP_NAME.source}), not ${JSON.stringify(app)}`)
  if (!Array.isArray(hosts) || hosts.length === 0) invalid(file, 'hosts must be a list with at least one host')
  const parsed = hosts.map((h, i) => parseHost(h, i, file))
  for (const key of ['name', 'url'] as const) {
    const seen = new Set<string>()
    for (const h of parsed) {
      if (seen.has(h[key])) invalid(file, `two hosts have the ${key} ${JSON.stringify(h[key])}: each host appears once`)
      seen.add(h[key])
    }
  }
  const canary = overrides.canary !== undefined ? parseCanary(overrides.canary, '--canary') : raw.canary === undefined ? 1 : parseCanary(raw.canary, file)
  const batch = overrides.batch !== undefined ? parseBatch(overrides.batch, '--batch') : raw.batch === undefined ? { count: 1 } : parseBatch(raw.batch, file)
  const migrate = overrides.migrate !== undefined ? parseMigrate(overrides.migrate, '--migrate') : raw.migrate === undefined ? 'once' : parseMigrate(raw.migrate, file)
  if (canary > parsed.length) invalid(overrides.canary !== undefined ? '--canary' : file, `canary is ${canary} but the fleet has ${parsed.length} host${parsed.length === 1 ? '' : 's'}`)
  // The migration of `once` runs on the first canary, alone, before any host runs the new code without it.
  if (migrate === 'once' && canary === 0) invalid(overrides.canary !== undefined ? '--canary' : file, 'migrate: once needs canary: 1 or more (the first canary runs the migration, alone); use migrate: every to deploy without a canary')
  const deadlineMs = overrides.deadline !== undefined ? parseDeadline(overrides.deadline, '--deadline') : parseDeadline(raw.deadline ?? DEFAULT_DEADLINE, file)
  return { app, hosts: parsed, canary, batch, migrate, deadlineMs }
}

/** How many hosts one batch holds in a fleet of `total`. */
export function batchCount(batch: BatchSize, total: number): number {
  if ('count' in batch) return batch.count
  return Math.max(1, Math.ceil((batch.percent / 100) * total))
}

/**
 * Each host's token from the variable its tokenEnv names. A missing one is refused before any host is
 * touched; the error names the variables, never a value.
 */
export function hostTokens(fleet: Fleet, env: NodeJS.ProcessEnv): Map<string, string> {
  const tokens = new Map<string, string>()
  const missing: string[] = []
  for (const h of fleet.hosts) {
    const t = env[h.tokenEnv]
    if (t) tokens.set(h.name, t)
    else missing.push(`${h.name} (${h.tokenEnv})`)
  }
  if (missing.length > 0) throw problem('FLEET_TOKEN_MISSING', `No token for ${missing.join(', ')}: set each variable to a token of that host with the deploy, operate and read scopes (berth token create prints one).`)
  return tokens
}

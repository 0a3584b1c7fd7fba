// Per-app settings: their defaults, validation and merge, including overrides of the command names a
// release answers to (each kind of release has its own defaults, see releases/kinds.ts). Below deploy.

import { problem } from '../errors.js'
import { checkNoNul, checkUrlChars } from './text.js'
import { COMMAND_ROLES, type CommandMap } from '../releases/kinds.js'
import { limitsSetting, type LimitSettings } from './limits-settings.js'
import { proxySetting, type ProxySettings } from './proxy-settings.js'

export { DEFAULT_PROXY, type ProxySettings } from './proxy-settings.js'
export type { LimitSettings } from './limits-settings.js'


export interface AppSettings {
  /**
   * The name of the releases this app runs (their bin/NAME); null: the app's own name. Two apps with the same
   * releaseName (`shop`, `shop-staging`) take the same tarball, each with its own node, cookie and data.
   */
  releaseName: string | null
  /**
   * Expression for `bin/APP eval`; null: the default, the release's own *.Release module that exports
   * migrate/0 (found from its metadata, see releases/content.ts). "" says the app has no migrations.
   */
  migrateExpr: string | null
  /** A deploy in which no migration would run, unless migrateExpr is "", fails before anything changes. */
  requireMigration: boolean
  migrateTimeoutMs: number
  /** Expression to run on rollback when the request asks for it, e.g. "Hello.Release.rollback(\"VERSION\")"; VERSION is replaced. */
  rollbackExpr: string | null
  healthUrl: string | null
  /** While the node runs, the health URL is polled this often; this many failures in a row count as a crash. */
  healthIntervalMs: number
  healthFailures: number
  stableWindowMs: number
  bootTimeoutMs: number
  stopTimeoutMs: number
  keepReleases: number
  /** run_erl rotates the console log at this size, keeping this many files (applies from the next start). */
  consoleLogMaxBytes: number
  consoleLogGenerations: number
  /** Overrides of the release kind's command names, e.g. {"start": "foreground"}; roles not named keep the kind's. */
  commands: Partial<CommandMap>
  /** null: no proxy, one node that listens where the app's env says (stopped, then started, at each deploy). */
  proxy: ProxySettings | null
  /**
   * Where users reach the app (http(s), e.g. behind a load balancer or DNS name berth cannot know); null: the
   * dashboard derives it from proxy.listen, if any. Only shown and linked, never fetched by berth.
   */
  publicUrl: string | null
  /** Memory, CPU and task ceilings of the app's processes (isolation/limits.ts enforces them); null: none. */
  limits: LimitSettings | null
  restart: {
    /** First backoff delay; doubles up to maxDelayMs. */
    initialDelayMs: number
    maxDelayMs: number
    /** This many crashes within windowMs: stop trying, mark the app errored. */
    maxRestarts: number
    windowMs: number
    /** A crash loop starting within this long after a deployment rolls back to the last good release. */
    rollbackWithinMs: number
  }
}

export const DEFAULT_SETTINGS: AppSettings = {
  releaseName: null,
  migrateExpr: null,
  requireMigration: false,
  migrateTimeoutMs: 5 * 60_000,
  rollbackExpr: null,
  healthUrl: null,
  healthIntervalMs: 10_000,
  healthFailures: 3,
  stableWindowMs: 10_000,
  bootTimeoutMs: 60_000,
  stopTimeoutMs: 15_000,
  keepReleases: 5,
  consoleLogMaxBytes: 10 * 1024 * 1024,
  consoleLogGenerations: 5,
  commands: {},
  proxy: null,
  publicUrl: null,
  limits: null,
  restart: { initialDelayMs: 1000, maxDelayMs: 30_000, maxRestarts: 5, windowMs: 5 * 60_000, rollbackWithinMs: 10 * 60_000 },
}

const COMMAND = /^[a-z_]{1,32}$/
/** An OTP release name, as intake accepts it (no hyphens: it is an Erlang atom and an application name). */
const RELEASE_NAME = /^[a-z][a-z0-9_]{0,63}$/

/** The name of the releases `app` takes: its releaseName setting, else its own name. */
export function expectedReleaseName(app: string, settings: Pick<AppSettings, 'releaseName'>): string {
  return settings.releaseName ?? app
}

function num(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw problem('VALIDATION_FAILED', `Setting ${name} must be a whole number between ${min} and ${max}.`)
  }
  return v
}

function str(v: unknown, name: string): string | null {
  if (v === null) return null
  if (typeof v !== 'string' || v.length > 4000) throw problem('VALIDATION_FAILED', `Setting ${name} must be a string (at most 4000 characters) or null.`)
  // Expressions go to `bin/APP eval` as an argument: stored with a NUL, every deploy would fail later.
  checkNoNul(v, `Setting ${name}`)
  return v
}

const LOOPBACK_URL = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//

/** healthUrl: http:// on loopback, one line, a URL that fetch takes as it is written. */
function healthUrl(v: unknown): string | null {
  const u = str(v, 'healthUrl')
  if (u === null) return null
  checkUrlChars(u, 'Setting healthUrl')
  let parsed: URL | null = null
  try {
    parsed = new URL(u)
  } catch {
    // answered below
  }
  if (!parsed || !LOOPBACK_URL.test(u)) {
    throw problem('VALIDATION_FAILED', 'Setting healthUrl must be an http:// URL on the loopback interface, e.g. http://127.0.0.1:4000/health.', { field: 'healthUrl' })
  }
  return u
}

/** An absolute http(s) URL without credentials: pages link to it, so no javascript: or data: URL gets stored. */
function publicUrl(v: unknown): string | null {
  if (v === null) return null
  let url: URL | null = null
  try {
    if (typeof v === 'string' && v.length <= 2000 && !/[\s\u0000-\u001f\u007f]/.test(v)) url = new URL(v)
  } catch {
    url = null
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) {
    throw problem('VALIDATION_FAILED', 'Setting publicUrl must be an http:// or https:// URL without user or password (at most 2000 characters), e.g. "https://shop.example.com/", or null.', { field: 'publicUrl' })
  }
  return v as string
}

/** Merges a partial update over current settings, validating every field it touches. */
export function mergeSettings(current: AppSettings, patch: Record<string, unknown>): AppSettings {
  const next: AppSettings = structuredClone(current)
  for (const [k, v] of Object.entries(patch)) {
    switch (k) {
      case 'releaseName':
        if (v !== null && (typeof v !== 'string' || !RELEASE_NAME.test(v))) throw problem('VALIDATION_FAILED', 'Setting releaseName must be the name of a release (its bin/NAME: a lower case letter, then letters, digits and "_", at most 64), or null for the app\'s own name.')
        next.releaseName = v
        break
      case 'migrateExpr': next.migrateExpr = str(v, k); break
      case 'rollbackExpr': next.rollbackExpr = str(v, k); break
      case 'requireMigration':
        if (typeof v !== 'boolean') throw problem('VALIDATION_FAILED', 'Setting requireMigration must be true or false.')
        next.requireMigration = v
        break
      case 'healthUrl': next.healthUrl = healthUrl(v); break
      case 'migrateTimeoutMs': next.migrateTimeoutMs = num(v, k, 1000, 24 * 3600_000); break
      case 'stableWindowMs': next.stableWindowMs = num(v, k, 0, 3600_000); break
      case 'healthIntervalMs': next.healthIntervalMs = num(v, k, 200, 3600_000); break
      case 'healthFailures': next.healthFailures = num(v, k, 1, 1000); break
      case 'bootTimeoutMs': next.bootTimeoutMs = num(v, k, 1000, 3600_000); break
      case 'stopTimeoutMs': next.stopTimeoutMs = num(v, k, 500, 600_000); break
      case 'keepReleases': next.keepReleases = num(v, k, 1, 1000); break
      case 'consoleLogMaxBytes': next.consoleLogMaxBytes = num(v, k, 1000, 1024 ** 3); break
      case 'consoleLogGenerations': next.consoleLogGenerations = num(v, k, 1, 100); break
      case 'commands': {
        if (!v || typeof v !== 'object') throw problem('VALIDATION_FAILED', 'Setting commands must be an object.')
        for (const [c, name] of Object.entries(v as Record<string, unknown>)) {
          const role = COMMAND_ROLES.find((r) => r === c)
          if (!role) throw problem('VALIDATION_FAILED', `Unknown command "${c}"; known: ${COMMAND_ROLES.join(', ')}.`)
          // null puts the release kind's own name back.
          if (name === null) delete next.commands[role]
          else if (typeof name !== 'string' || !COMMAND.test(name)) throw problem('VALIDATION_FAILED', `Command ${c} must be a bin/APP subcommand name like "foreground", or null for the release kind's default.`)
          else next.commands[role] = name
        }
        break
      }
      case 'restart': {
        if (!v || typeof v !== 'object') throw problem('VALIDATION_FAILED', 'Setting restart must be an object.')
        const r = v as Record<string, unknown>
        for (const [rk, rv] of Object.entries(r)) {
          if (!Object.hasOwn(next.restart, rk)) throw problem('VALIDATION_FAILED', `Unknown restart setting "${rk}".`)
          next.restart[rk as keyof AppSettings['restart']] = num(rv, `restart.${rk}`, rk === 'maxRestarts' ? 1 : 0, 24 * 3600_000)
        }
        break
      }
      case 'proxy': next.proxy = proxySetting(v, current.proxy); break
      case 'publicUrl': next.publicUrl = publicUrl(v); break
      case 'limits': next.limits = limitsSetting(v, current.limits); break
      default:
        throw problem('VALIDATION_FAILED', `Unknown setting "${k}".`)
    }
  }
  return next
}

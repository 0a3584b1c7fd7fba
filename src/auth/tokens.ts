// Bearer tokens: creation, listing, revocation, expiry and verification against the `tokens` table.
// A token is `berth_<id>_<secret>`; only sha256(secret) is stored, and secrets are compared in constant time.

import crypto from 'node:crypto'
import type { Database } from '../store/db.js'
import { deepFreeze, now, RowCache } from '../store/db.js'
import { tokenId } from '../store/ids.js'
import { problem, type BerthError } from '../errors.js'
import { APP_NAME } from '../paths.js'

export const SCOPES = ['read', 'deploy', 'operate', 'console', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export interface TokenInfo {
  id: string
  name: string
  scopes: Scope[]
  /** null: every app */
  apps: string[] | null
  createdAt: string
  lastUsedAt: string | null
  /** null: never expires */
  expiresAt: string | null
}

/** Why a token stopped being valid, for whoever held something open with it. */
export type TokenEnd = { reason: 'token revoked' | 'token expired'; problem: BerthError }

interface Row {
  id: string
  name: string
  secret_hash: Buffer
  scopes: string
  apps: string | null
  created_at: string
  last_used_at: string | null
  expires_at: string | null
}

export class TokenInputError extends Error {
  override name = 'TokenInputError'
}

const TOKEN = /^berth_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/
// Writing last_used_at on every request would cost an fsync each; once a minute is precise enough to audit.
const TOUCH_INTERVAL_MS = 60_000

function hash(secret: string): Buffer {
  // The one-shot form: no Hash object per request.
  return crypto.hash('sha256', secret, 'buffer')
}

function toInfo(r: Row): TokenInfo {
  return {
    id: r.id,
    name: r.name,
    scopes: r.scopes.split(',') as Scope[],
    apps: r.apps === null ? null : r.apps.split(','),
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    expiresAt: r.expires_at,
  }
}

const UNITS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const MAX_LIFETIME_MS = 3650 * UNITS.d

/** `--expires 30d`: a whole number and one of s, m, h, d; returns milliseconds. */
export function parseLifetime(raw: string): number {
  const m = /^(\d{1,7})([smhd])$/.exec(raw.trim())
  const ms = m ? Number(m[1]) * UNITS[m[2] as keyof typeof UNITS] : 0
  if (!m || ms < 1000 || ms > MAX_LIFETIME_MS) throw new TokenInputError(`--expires must be a whole number of s, m, h or d between 1s and 3650d (e.g. 30d or 12h), got "${raw}"`)
  return ms
}

export function isExpired(token: Pick<TokenInfo, 'expiresAt'>, at = Date.now()): boolean {
  return token.expiresAt !== null && Date.parse(token.expiresAt) <= at
}

/** The problem of a token that was valid when something was opened with it and no longer is. */
export function tokenEnded(token: TokenInfo, why: 'revoked' | 'expired'): TokenEnd {
  return why === 'revoked'
    ? { reason: 'token revoked', problem: problem('UNAUTHORIZED', `Token "${token.name}" was revoked; what it had open was closed. Authenticate again with a valid token.`) }
    : { reason: 'token expired', problem: problem('UNAUTHORIZED', `Token "${token.name}" expired at ${token.expiresAt}; what it had open was closed. Create a new token with \`berth token create\`.`) }
}

export function parseScopes(raw: string): Scope[] {
  const scopes = [...new Set(raw.split(',').map((s) => s.trim()).filter(Boolean))]
  if (scopes.length === 0) throw new TokenInputError(`--scopes needs at least one of ${SCOPES.join(', ')}`)
  for (const s of scopes) {
    if (!(SCOPES as readonly string[]).includes(s)) throw new TokenInputError(`unknown scope "${s}"; scopes are ${SCOPES.join(', ')}`)
  }
  return scopes as Scope[]
}

export function hasScope(token: TokenInfo, scope: Scope): boolean {
  return token.scopes.includes('admin') || token.scopes.includes(scope)
}

export function allowsApp(token: TokenInfo, app: string): boolean {
  return token.apps === null || token.apps.includes(app)
}

/** Token rows kept between requests at most; beyond it the cache starts over (unknown ids are kept too). */
const ROWS_KEPT = 1000

/** A row as verify() needs it, made once per read of the row. */
interface Known {
  row: Row
  info: Readonly<TokenInfo>
  /** expires_at in ms; Infinity when it never expires. */
  expiresAtMs: number
}

export class TokenStore {
  private readonly touched = new Map<string, number>()
  /**
   * Rows by token id, as read: every authenticated request needs one. Dropped whenever the database changed
   * under another connection (`berth token create/revoke` runs in its own process) and on this process's own
   * writes (store/db.ts generation()), so a revocation counts from the next request as it did when every
   * request read the table.
   */
  private readonly rows: RowCache<string, Known | null>

  constructor(private readonly db: Database) {
    this.rows = new RowCache(db, ROWS_KEPT)
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM tokens').get() as { n: number }).n
  }

  /** Creates a token and returns it in clear, once; only its hash is kept. */
  create(input: { name: string; scopes: Scope[]; apps?: string[] | null; lifetimeMs?: number | null }): { token: string; info: TokenInfo } {
    if (!TOKEN_NAME.test(input.name)) throw new TokenInputError(`token name "${input.name}" must be 1-64 letters, digits, ".", "_" or "-"`)
    const apps = input.apps && input.apps.length > 0 ? [...new Set(input.apps)] : null
    for (const a of apps ?? []) {
      if (!APP_NAME.test(a)) throw new TokenInputError(`app name "${a}" must match ${APP_NAME.source}`)
    }
    const id = tokenId()
    const secret = crypto.randomBytes(32).toString('base64url')
    const row: Row = {
      id,
      name: input.name,
      secret_hash: hash(secret),
      scopes: input.scopes.join(','),
      apps: apps ? apps.join(',') : null,
      created_at: now(),
      last_used_at: null,
      expires_at: input.lifetimeMs ? new Date(Date.now() + input.lifetimeMs).toISOString() : null,
    }
    try {
      this.db
        .prepare('INSERT INTO tokens (id, name, secret_hash, scopes, apps, created_at, expires_at) VALUES (@id, @name, @secret_hash, @scopes, @apps, @created_at, @expires_at)')
        .run(row)
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new TokenInputError(`a token named "${input.name}" already exists; revoke it first or pick another name`)
      throw err
    }
    return { token: `berth_${id}_${secret}`, info: toInfo(row) }
  }

  list(): TokenInfo[] {
    return (this.db.prepare('SELECT * FROM tokens ORDER BY created_at, name').all() as Row[]).map(toInfo)
  }

  revoke(name: string): boolean {
    return this.db.prepare('DELETE FROM tokens WHERE name = ?').run(name).changes > 0
  }

  /**
   * The token's info when `presented` is a live token; otherwise throws UNAUTHORIZED, saying "expired" only
   * to someone who holds the secret. Never throws anything else on bad input.
   */
  verify(presented: string, at = Date.now()): TokenInfo {
    const m = TOKEN.exec(presented)
    const known = m ? this.known(m[1]!) : undefined
    // Hash even when the id is unknown so that both paths cost the same.
    const presentedHash = hash(m?.[2] ?? '')
    const stored = known?.row.secret_hash ?? Buffer.alloc(presentedHash.length)
    if (!m || !crypto.timingSafeEqual(presentedHash, stored) || !known) {
      throw problem('UNAUTHORIZED', 'The bearer token is not valid (revoked, mistyped or from another berth).')
    }
    const { info } = known
    if (known.expiresAtMs <= at) throw problem('UNAUTHORIZED', `Token "${info.name}" expired at ${info.expiresAt}; create a new one with \`berth token create\`.`)
    this.touch(info.id)
    return info
  }

  /** Of the given token ids, those that still exist, with their expiry: what the watch polls. */
  present(ids: readonly string[]): Map<string, string | null> {
    const out = new Map<string, string | null>()
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500)
      const rows = this.db.prepare(`SELECT id, expires_at FROM tokens WHERE id IN (${chunk.map(() => '?').join(',')})`).all(...chunk) as { id: string; expires_at: string | null }[]
      for (const r of rows) out.set(r.id, r.expires_at)
    }
    return out
  }

  private known(id: string): Known | undefined {
    return (
      this.rows.get(id, () => {
        const row = this.db.prepare('SELECT * FROM tokens WHERE id = ?').get(id) as Row | undefined
        if (!row) return null
        const info = deepFreeze(toInfo(row))
        return { row, info, expiresAtMs: info.expiresAt === null ? Infinity : Date.parse(info.expiresAt) }
      }) ?? undefined
    )
  }

  private touch(id: string): void {
    const t = Date.now()
    if ((this.touched.get(id) ?? 0) + TOUCH_INTERVAL_MS > t) return
    this.touched.set(id, t)
    this.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(now(), id)
  }
}

// App environments at rest: each value sealed with AES-256-GCM under a key from the key ring (never in berth.db),
// bound to its app and variable name, with the key's id beside it. Owns the env_values table and its migrations.

import crypto from 'node:crypto'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import type { Database } from '../store/db.js'
import type { Keyring } from './keyring.js'

const NONCE_BYTES = 12
const TAG_BYTES = 16

interface Row {
  name: string
  key_id: string
  nonce: Buffer
  sealed: Buffer
}

/** Binds a value to where it belongs: a sealed value moved to another app or name fails authentication. */
function aad(app: string, name: string): Buffer {
  return Buffer.from(`berth-env-v1\0${app}\0${name}`, 'utf8')
}

export function sealValue(key: Buffer, app: string, name: string, value: string): { nonce: Buffer; sealed: Buffer } {
  const nonce = crypto.randomBytes(NONCE_BYTES)
  const c = crypto.createCipheriv('aes-256-gcm', key, nonce)
  c.setAAD(aad(app, name))
  const sealed = Buffer.concat([c.update(value, 'utf8'), c.final(), c.getAuthTag()])
  return { nonce, sealed }
}

/** null when the value does not authenticate (altered, moved, or sealed under another key with the same id). */
export function openValue(key: Buffer, app: string, name: string, nonce: Buffer, sealed: Buffer): string | null {
  if (nonce.length !== NONCE_BYTES || sealed.length < TAG_BYTES) return null
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', key, nonce)
    d.setAAD(aad(app, name))
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]).toString('utf8')
  } catch {
    return null
  }
}

export interface VaultReport {
  /** Apps whose values were in clear in berth.db (before migration 010) and are now sealed. */
  sealed: string[]
  /** Values moved from an older key to the current one. */
  reencrypted: number
  /** Values sealed under a key berth does not have, per app. */
  unreadable: { app: string; names: string[]; keyIds: string[] }[]
}

export class EnvVault {
  private checkpointTimer: NodeJS.Timeout | null = null

  constructor(
    private readonly db: Database,
    readonly keyring: Keyring,
    private readonly log: Logger,
  ) {
    // For this connection: what SQLite deletes or overwrites (an old sealed value, the clear env column it
    // replaces) is zeroed in its page instead of lingering in free space, where a copy of the file would keep it.
    db.pragma('secure_delete = ON')
  }

  names(app: string): string[] {
    return (this.db.prepare('SELECT name FROM env_values WHERE app = ? ORDER BY name').all(app) as { name: string }[]).map((r) => r.name)
  }

  /**
   * The app's values, for a child's environment only. Throws ENV_KEY_MISSING when a value was sealed under a
   * key that is not in the ring (a database copied without its key, a wrong key file) and ENV_TAMPERED when
   * one does not authenticate: a node started without some of its variables would fail in obscure ways.
   */
  read(app: string): Record<string, string> {
    const rows = this.db.prepare('SELECT name, key_id, nonce, sealed FROM env_values WHERE app = ? ORDER BY name').all(app) as Row[]
    const out: Record<string, string> = {}
    const missing: Row[] = []
    const tampered: string[] = []
    for (const r of rows) {
      const key = this.key(r.key_id)
      if (!key) {
        missing.push(r)
        continue
      }
      const value = openValue(key, app, r.name, r.nonce, r.sealed)
      if (value === null) tampered.push(r.name)
      else out[r.name] = value
    }
    if (missing.length > 0) {
      const ids = [...new Set(missing.map((r) => r.key_id))]
      throw problem(
        'ENV_KEY_MISSING',
        `The environment of "${app}" cannot be read: ${missing.map((r) => r.name).join(', ')} ${missing.length === 1 ? 'was' : 'were'} encrypted with key ${ids.join(', ')}, which is not in ${this.keyring.source.file} (it holds ${this.keyring.ids.join(', ')}). The key file is missing or is not the one berth.db was written with: restore that key (README "Secrets at rest"), or set the variables again (berth env ${app} set ...).`,
        { app, names: missing.map((r) => r.name), keyIds: ids },
      )
    }
    if (tampered.length > 0) {
      throw problem(
        'ENV_TAMPERED',
        `The environment of "${app}" does not authenticate: ${tampered.join(', ')} ${tampered.length === 1 ? 'was' : 'were'} altered in berth.db, or moved there from another app or variable. berth does not use ${tampered.length === 1 ? 'it' : 'them'}: set ${tampered.length === 1 ? 'it' : 'them'} again (berth env ${app} set ...).`,
        { app, names: tampered },
      )
    }
    return out
  }

  /**
   * For a size check only: each value as it is when its key is at hand, else a stand-in of the same byte
   * length (GCM's ciphertext is as long as the text), so that a value whose key is missing still counts and a
   * PATCH that sets it again is not refused for the missing key.
   */
  private sizedValues(app: string): Record<string, string> {
    const rows = this.db.prepare('SELECT name, key_id, nonce, sealed FROM env_values WHERE app = ?').all(app) as Row[]
    const out: Record<string, string> = {}
    for (const r of rows) {
      const key = this.key(r.key_id)
      out[r.name] = (key && openValue(key, app, r.name, r.nonce, r.sealed)) ?? 'x'.repeat(Math.max(0, r.sealed.length - TAG_BYTES))
    }
    return out
  }

  /** Replaces the whole environment in one transaction. */
  replace(app: string, env: Record<string, string>): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM env_values WHERE app = ?').run(app)
      this.writeAll(app, env)
    }).immediate()
  }

  /** Sets and removes single variables, leaving the others as they are (sealed under whatever key). */
  merge(app: string, set: Record<string, string>, unset: string[], check?: (env: Record<string, string>) => void): { names: string[]; removed: string[] } {
    return this.db.transaction(() => {
      const before = new Set(this.names(app))
      const removed = unset.filter((n) => before.has(n)).sort()
      if (check) {
        // The whole environment after the change, inside the transaction: many small PATCHes add up too.
        const env = this.sizedValues(app)
        for (const n of unset) delete env[n]
        check(Object.assign(env, set))
      }
      for (const n of unset) this.db.prepare('DELETE FROM env_values WHERE app = ? AND name = ?').run(app, n)
      this.writeAll(app, set)
      return { names: this.names(app), removed }
    }).immediate()
  }

  /**
   * Inside a write transaction: the key ring is read again here, so that once `berth keys rotate` has put
   * a new key in front, no value is sealed under the old one after its re-encryption pass has run (that pass
   * waits for this transaction, or this one sees the new file).
   */
  private writeAll(app: string, env: Record<string, string>): void {
    this.keyring.refresh()
    const { id, key } = this.keyring.current
    const upsert = this.db.prepare(
      `INSERT INTO env_values (app, name, key_id, nonce, sealed) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(app, name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, sealed = excluded.sealed`,
    )
    for (const [name, value] of Object.entries(env)) {
      const { nonce, sealed } = sealValue(key, app, name, value)
      upsert.run(app, name, id, nonce, sealed)
    }
  }

  private key(id: string): Buffer | undefined {
    const key = this.keyring.get(id)
    if (key) return key
    // Perhaps rotated by the CLI since this ring was read.
    return this.keyring.refresh() ? this.keyring.get(id) : undefined
  }

  /**
   * At start (and by `berth keys rotate`): seals the values an older berth kept in clear in apps.env, and
   * re-encrypts values sealed under an older key of the ring with the current one, in one transaction; then
   * checkpoints the WAL so that the clear text is in no file. Values under keys berth does not have are left
   * as they are (a restored key makes them readable again) and reported.
   */
  secure(): VaultReport {
    this.keyring.refresh()
    const report = this.db.transaction((): VaultReport => {
      const sealed = this.sealClearValues()
      const reencrypted = this.reencrypt()
      return { sealed, reencrypted, unreadable: this.unreadable() }
    }).immediate()
    // An older berth wrote the clear values without secure_delete: replaced ones may linger in free space.
    // VACUUM rewrites the file with none (once: only an upgrade finds clear values).
    if (report.sealed.length > 0) this.db.exec('VACUUM')
    if (report.sealed.length > 0 || report.reencrypted > 0) this.checkpoint()
    return report
  }

  private sealClearValues(): string[] {
    const rows = this.db.prepare(`SELECT name, env FROM apps WHERE env <> '{}'`).all() as { name: string; env: string }[]
    for (const r of rows) {
      let env: Record<string, string> = {}
      try {
        env = JSON.parse(r.env) as Record<string, string>
      } catch {
        this.log.error({ app: r.name }, 'the clear environment column of the app is not JSON; it was dropped, set the environment again')
      }
      // The column is newer than any sealed rows: only a berth from before encryption writes it.
      this.db.prepare('DELETE FROM env_values WHERE app = ?').run(r.name)
      this.writeAll(r.name, Object.fromEntries(Object.entries(env).filter(([, v]) => typeof v === 'string')))
      this.db.prepare(`UPDATE apps SET env = '{}' WHERE name = ?`).run(r.name)
    }
    return rows.map((r) => r.name)
  }

  private reencrypt(): number {
    const { id: current, key: currentKey } = this.keyring.current
    const rows = this.db.prepare('SELECT app, name, key_id, nonce, sealed FROM env_values WHERE key_id <> ?').all(current) as (Row & { app: string })[]
    let n = 0
    for (const r of rows) {
      const key = this.keyring.get(r.key_id)
      if (!key) continue
      const value = openValue(key, r.app, r.name, r.nonce, r.sealed)
      // Left for read() to report: re-sealing would make a tampered value authentic.
      if (value === null) continue
      const { nonce, sealed } = sealValue(currentKey, r.app, r.name, value)
      this.db.prepare('UPDATE env_values SET key_id = ?, nonce = ?, sealed = ? WHERE app = ? AND name = ?').run(current, nonce, sealed, r.app, r.name)
      n++
    }
    return n
  }

  /** Values sealed under keys that are not in the ring, per app. */
  unreadable(): VaultReport['unreadable'] {
    const ids = this.keyring.ids
    const rows = this.db.prepare('SELECT app, name, key_id FROM env_values ORDER BY app, name').all() as { app: string; name: string; key_id: string }[]
    const out = new Map<string, { app: string; names: string[]; keyIds: string[] }>()
    for (const r of rows.filter((x) => !ids.includes(x.key_id))) {
      const e = out.get(r.app) ?? { app: r.app, names: [], keyIds: [] }
      e.names.push(r.name)
      if (!e.keyIds.includes(r.key_id)) e.keyIds.push(r.key_id)
      out.set(r.app, e)
    }
    return [...out.values()]
  }

  /** Key ids in use and how many values each seals. */
  usage(): { keyId: string; values: number }[] {
    return (this.db.prepare('SELECT key_id AS keyId, count(*) AS "values" FROM env_values GROUP BY key_id ORDER BY key_id').all() as { keyId: string; values: number }[])
  }

  /**
   * Moves the WAL into the database and truncates it, so the pages that held clear values (or values under a
   * retired key) are in no file. While another connection (berth token, berth keys) holds the WAL open, the
   * daemon tries again every 10 s for 5 minutes; `once` (the CLI) only says so.
   */
  checkpoint(opts: { once?: boolean } = {}, attempt = 1): boolean {
    const [r] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[]
    if (!r || r.busy === 0) return true
    if (opts.once || attempt >= 30) {
      this.log.error('the WAL (berth.db-wal) could not be checkpointed: another connection holds it open. It may keep environment values in clear or under a retired key until the next checkpoint (berth checkpoints at every start)')
      return false
    }
    this.log.warn({ attempt }, 'another connection holds the WAL open: checkpointing it again in 10 s')
    this.checkpointTimer = setTimeout(() => this.checkpoint(opts, attempt + 1), 10_000)
    this.checkpointTimer.unref()
    return false
  }

  close(): void {
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer)
  }
}

// Per-app settings and environment, and the audit of changes to them. The environment holds secrets:
// callers get values only to build a child's environment; users see names. (Node rows: instances/.)
// The values are sealed at rest by secrets/env-vault.ts.
// Settings are also copied to apps/APP/settings.json, so that a lost berth.db does not change how deploys run.

import fs from 'node:fs/promises'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { InstanceRows, type NodeRecord, type StandbyRecord } from '../instances/rows.js'
import type { Paths } from '../paths.js'
import type { EnvVault } from '../secrets/env-vault.js'
import { deepFreeze, RowCache, type Database } from '../store/db.js'
import type { EventStore } from '../store/events.js'
import type { AddressClaim } from './addresses.js'
import { parseListenAddress } from './addresses.js'
import { checkEnvSize, validateEnv, validateEnvChange } from './env.js'
import { writeSettingsFile } from './settings-file.js'
import type { HostClaim } from './proxy-settings.js'
import { DEFAULT_SETTINGS, mergeSettings, type AppSettings } from './settings.js'

// Node rows are slot state, owned by instances/: the types and methods here pass through for older callers.
export type { NodeRecord, StandbyRecord } from '../instances/rows.js'

export class AppStore {
  /** Per app, the last write of its settings.json: writes run one after another, each with the latest row. */
  private readonly fileWrites = new Map<string, Promise<string | null>>()
  /**
   * Merged settings and node rows per app, frozen, as long as the database did not change (store/db.ts
   * generation()): every GET of an app's status needs both, and merging the settings validates every field.
   */
  private readonly settingsOf: RowCache<string, AppSettings>
  /** The node rows' owner; the methods below that read or write them pass through to it. */
  private readonly instanceRows: InstanceRows

  constructor(
    private readonly db: Database,
    private readonly events: EventStore,
    /** Without it (unit tests) the settings live in the database only. */
    private readonly files: { paths: Paths; log: Logger } | null = null,
    /** Without it (unit tests, berth import) the environment can be listed but not read or changed. */
    private readonly vault: EnvVault | null = null,
  ) {
    this.settingsOf = new RowCache(db)
    this.instanceRows = new InstanceRows(db)
  }

  /** The app's settings over the defaults; frozen (shared between callers). */
  settings(app: string): AppSettings {
    return this.settingsOf.get(app, () => deepFreeze(mergeSettings(DEFAULT_SETTINGS, this.storedSettings(app) ?? {})))
  }

  /**
   * Stores only the fields that differ from the defaults, so new defaults reach apps that never set them.
   * `check` sees the merged settings before they are written, in the same transaction as the write: what it
   * reads of other apps (their proxy addresses) cannot change between its check and this write.
   */
  saveSettings(app: string, patch: Record<string, unknown>, actor: string | null, check?: (next: AppSettings) => void): AppSettings {
    const merged = this.db.transaction(() => {
      const row = this.db.prepare('SELECT settings FROM apps WHERE name = ?').get(app) as { settings: string }
      const stored = JSON.parse(row.settings) as Record<string, unknown>
      // Nested groups (restart, commands) merge key by key too: fields not given keep their value.
      for (const [k, v] of Object.entries(patch)) {
        const old = stored[k]
        stored[k] = v && typeof v === 'object' && !Array.isArray(v) && old && typeof old === 'object' ? { ...(old as object), ...(v as object) } : v
      }
      const next = mergeSettings(DEFAULT_SETTINGS, stored)
      check?.(next)
      this.db.prepare('UPDATE apps SET settings = ? WHERE name = ?').run(JSON.stringify(stored), app)
      return next
    }).immediate()
    this.events.record({ app, actor, action: 'settings.update', outcome: 'ok', detail: { changed: Object.keys(patch) } })
    this.copySettingsToFile(app)
    return merged
  }

  /**
   * Settles once settings.json holds what the database held when this was called: null, or when the copy
   * failed (logged too) why, so that the caller can say it rather than answer as if the copy were on disk.
   */
  settingsCopied(app: string): Promise<string | null> {
    return this.fileWrites.get(app) ?? Promise.resolve(null)
  }

  /** Writes settings.json for an app with settings but no file (set before berth kept the file); settles when done. */
  async copySettingsIfMissing(app: string): Promise<void> {
    if (!this.files || Object.keys(this.storedSettings(app) ?? {}).length === 0) return
    if (await fs.access(this.files.paths.settingsFile(app)).then(() => true, () => false)) return
    this.copySettingsToFile(app)
    await this.settingsCopied(app)
  }

  /** The proxy address each app's stored settings name (one whose settings no longer parse is skipped). */
  proxyClaims(): AddressClaim[] {
    const out: AddressClaim[] = []
    for (const r of this.db.prepare('SELECT name, settings FROM apps').all() as { name: string; settings: string }[]) {
      try {
        const listen = (JSON.parse(r.settings) as { proxy?: { listen?: unknown } | null }).proxy?.listen
        if (typeof listen === 'string') out.push({ kind: 'proxy', app: r.name, address: parseListenAddress(listen), source: 'its settings' })
      } catch {
        // a stored value berth no longer reads claims nothing
      }
    }
    return out
  }

  /** The hostnames each app's stored settings route on the edge (one whose settings no longer parse is skipped). */
  hostClaims(): HostClaim[] {
    const out: HostClaim[] = []
    for (const r of this.db.prepare('SELECT name FROM apps').all() as { name: string }[]) {
      try {
        // Through the merge, which lower-cases them: the stored patch keeps what the client sent.
        for (const host of this.settings(r.name).proxy?.hosts ?? []) out.push({ app: r.name, host })
      } catch {
        // a stored value berth no longer reads claims nothing
      }
    }
    return out
  }

  /** The fields stored for the app, or null when it has no row. */
  storedSettings(app: string): Record<string, unknown> | null {
    const row = this.db.prepare('SELECT settings FROM apps WHERE name = ?').get(app) as { settings: string } | undefined
    return row ? (JSON.parse(row.settings) as Record<string, unknown>) : null
  }

  /** After a lost database: the fields from settings.json (already checked), as they were. The app row must exist. */
  restoreSettings(app: string, stored: Record<string, unknown>, actor: string): void {
    this.db.prepare('UPDATE apps SET settings = ? WHERE name = ?').run(JSON.stringify(stored), app)
    this.events.record({ app, actor, action: 'settings.update', outcome: 'ok', detail: { changed: Object.keys(stored).sort(), restoredFrom: 'settings.json' } })
  }

  private copySettingsToFile(app: string): void {
    const files = this.files
    if (!files) return
    const write = (this.fileWrites.get(app) ?? Promise.resolve(null))
      .then(async () => {
        const stored = this.storedSettings(app)
        if (stored) await writeSettingsFile(files.paths, app, stored)
        return null
      })
      .catch((err: unknown) => {
        files.log.error({ app, err }, `the settings are saved in berth.db but could not be copied to apps/${app}/settings.json; a lost database would lose them`)
        return (err as NodeJS.ErrnoException).code ?? (err as Error).message ?? String(err)
      })
    this.fileWrites.set(app, write)
    void write.then(() => {
      if (this.fileWrites.get(app) === write) this.fileWrites.delete(app)
    })
  }

  /** The names of the app's variables (never the values). */
  envNames(app: string): string[] {
    return (this.db.prepare('SELECT name FROM env_values WHERE app = ? ORDER BY name').all(app) as { name: string }[]).map((r) => r.name)
  }

  /** The values, decrypted: only to build a child's environment. Throws ENV_KEY_MISSING or ENV_TAMPERED. */
  env(app: string): Record<string, string> {
    if (this.vault) return this.vault.read(app)
    if (this.envNames(app).length === 0) return {}
    throw problem('INTERNAL', 'the environment cannot be read without the env key ring')
  }

  private sealed(): EnvVault {
    if (!this.vault) throw problem('INTERNAL', 'the environment cannot be changed without the env key ring')
    return this.vault
  }

  /** Validates and replaces the whole environment; answers the names. The app row must exist. */
  replaceEnv(app: string, input: unknown, actor: string | null): string[] {
    const env = validateEnv(input)
    checkEnvSize(env)
    const names = Object.keys(env).sort()
    this.sealed().replace(app, env)
    // Names only: values are secrets and never reach the audit trail or the logs.
    this.events.record({ app, actor, action: 'env.replace', outcome: 'ok', detail: { names } })
    return names
  }

  /**
   * Sets and unsets single variables, keeping the others: the merge happens here because values never
   * leave the server. Answers the names now set and those actually removed. The app row must exist.
   */
  mergeEnv(app: string, change: { set?: unknown; unset?: unknown }, actor: string | null): { names: string[]; removed: string[] } {
    const { set, unset } = validateEnvChange(change)
    const result = this.sealed().merge(app, set, unset, checkEnvSize)
    // Names only, as for replaceEnv.
    this.events.record({ app, actor, action: 'env.update', outcome: 'ok', detail: { set: Object.keys(set).sort(), removed: result.removed } })
    return result
  }

  /** The node row (instances/rows.ts); frozen (shared between callers). */
  node(app: string): Readonly<NodeRecord> | null {
    return this.instanceRows.node(app)
  }

  nodes(): Readonly<NodeRecord>[] {
    return this.instanceRows.nodes()
  }

  saveNode(n: NodeRecord): void {
    this.instanceRows.saveNode(n)
  }

  /** The app's second instance (instances/rows.ts). */
  standby(app: string): StandbyRecord | null {
    return this.instanceRows.standby(app)
  }
}

// Opens berth's SQLite database with the durability settings the rest of the code assumes, and migrates it.
// The daemon and the `berth token` CLI open the same file concurrently; WAL plus a busy timeout make that safe.

import fs from 'node:fs'
import path from 'node:path'
import Sqlite from 'better-sqlite3'
import type { Database } from 'better-sqlite3'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { migrate } from './migrator.js'
import { fromRoot } from '../root.js'

export type { Database }

export const MIGRATIONS_DIR = fromRoot('migrations') + path.sep

export function openDatabase(file: string, log: Logger, migrationsDir = MIGRATIONS_DIR): Database {
  // Token hashes and the audit trail are nobody else's business; the -wal/-shm files inherit this mode.
  fs.closeSync(fs.openSync(file, 'a', 0o600))
  fs.chmodSync(file, 0o600)
  let db: Database
  try {
    db = new Sqlite(file)
  } catch (err) {
    throw unreadable(file, err)
  }
  try {
    db.pragma('journal_mode = WAL')
    // FULL: a release or deployment recorded as done must still be recorded after power loss.
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
    db.pragma('busy_timeout = 5000')
    migrate(db, migrationsDir, log)
    cachePrepared(db)
    return db
  } catch (err) {
    db.close()
    throw unreadable(file, err)
  }
}

/** Distinct SQL texts kept prepared; the stores use a few dozen, so a full cache means generated SQL. */
const PREPARED_MAX = 256

/** What generation() needs of a database opened here. */
interface Changes {
  /** Writing statements this connection ran (counted after each, also when it threw). */
  writes: number
  /** data_version as read in the current synchronous run, or null once that run is over. */
  version: number | null
  seen: { version: number; writes: number }
  generation: number
  readVersion(): number
}
const changes = new WeakMap<Database, Changes>()

/**
 * Every store calls `db.prepare(sql)` where it runs the query; compiling the same SQL again on every call was
 * most of what a status poll cost. Statements are kept per SQL text. That is safe here because nothing
 * iterates (a statement is never busy when it is handed out again), nothing toggles pluck/raw/expand on a
 * statement, and SQLite re-prepares a kept statement itself after a schema change. A statement that writes
 * also counts its runs, for generation().
 */
function cachePrepared(db: Database): void {
  const prepare = db.prepare.bind(db)
  const kept = new Map<string, ReturnType<Database['prepare']>>()
  const version = prepare('PRAGMA data_version').pluck()
  const c: Changes = { writes: 0, version: null, seen: { version: -1, writes: 0 }, generation: 0, readVersion: () => version.get() as number }
  changes.set(db, c)
  db.prepare = ((sql: string) => {
    let st = kept.get(sql)
    if (!st) {
      if (kept.size >= PREPARED_MAX) kept.clear()
      st = prepare(sql)
      if (!st.readonly) countWrites(st, c)
      kept.set(sql, st)
    }
    return st
  }) as Database['prepare']
}

function countWrites(st: ReturnType<Database['prepare']>, c: Changes): void {
  for (const m of ['run', 'get', 'all'] as const) {
    const f = st[m] as (...a: unknown[]) => unknown
    st[m] = function (this: unknown, ...args: unknown[]) {
      try {
        return f.apply(this, args)
      } finally {
        c.writes++
      }
    } as never
  }
}

/**
 * A number that changes whenever what the database holds may have changed: another connection committed
 * (SQLite's data_version: `berth token`, `berth import`) or this one ran a writing statement. Caches of rows
 * keep the number they were filled at and read again once it moved, so they answer what a read would.
 * data_version is read once per synchronous run: nothing outside can be seen to change within one (a request
 * sent after a commit is read by a later callback, which reads data_version again). null, meaning "do not
 * cache", inside a transaction (it may still roll back) and for a database not opened by openDatabase.
 */
export function generation(db: Database): number | null {
  const c = changes.get(db)
  if (!c || db.inTransaction) return null
  if (c.version === null) {
    c.version = c.readVersion()
    queueMicrotask(() => {
      c.version = null
    })
  }
  if (c.version !== c.seen.version || c.writes !== c.seen.writes) {
    c.seen = { version: c.version, writes: c.writes }
    c.generation++
  }
  return c.generation
}

/**
 * Freezes a value and the objects and arrays inside it: what a RowCache holds is shared by every caller, and
 * a caller that changed it would change the next one's answer.
 */
export function deepFreeze<T>(v: T): Readonly<T> {
  if (v && typeof v === 'object' && !Object.isFrozen(v) && !ArrayBuffer.isView(v)) {
    for (const x of Object.values(v)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

/** A value per key, kept while generation(db) stays the same. */
export class RowCache<K, V> {
  private readonly values = new Map<K, V>()
  private at: number | null = null

  constructor(
    private readonly db: Database,
    private readonly max = 1000,
  ) {}

  get(key: K, read: () => V): V {
    const g = generation(this.db)
    if (g === null) return read()
    if (g !== this.at || this.values.size >= this.max) {
      this.values.clear()
      this.at = g
    }
    if (this.values.has(key)) return this.values.get(key) as V
    const v = read()
    // The read itself may have written (it should not), or started a transaction: keep only what is still current.
    if (generation(this.db) === g) this.values.set(key, v)
    return v
  }
}

/**
 * A file that is not a database (or a damaged one) is never replaced: it may be salvageable, and nothing
 * on disk depends on it (releases describe themselves). The sentence names the way back.
 */
function unreadable(file: string, err: unknown): unknown {
  const e = err as { code?: string; cause?: { code?: string } } | null
  const code = e?.code ?? e?.cause?.code
  if (code !== 'SQLITE_NOTADB' && code !== 'SQLITE_CORRUPT' && code !== 'SQLITE_CANTOPEN') return err
  const dataDir = path.dirname(file)
  return problem(
    'DATABASE_UNREADABLE',
    `${file} is not a readable SQLite database (${(err as Error).message}); berth changed nothing, and the releases under ${path.join(dataDir, 'apps')} are untouched. Keep the file for salvage and move it aside with its -wal and -shm files (mv ${file} ${file}.damaged), then run \`berth import --data-dir ${dataDir}\` to rebuild the catalogue from the release directories (or start berth once the file is aside: it does the same; app settings come back from apps/APP/settings.json). Tokens and environments were in that file only: set them again.`,
    {},
    err,
  )
}

export function now(): string {
  return new Date().toISOString()
}

// Opens berth's SQLite database with the durability settings the rest of the code assumes, and migrates it.
// The daemon and the `berth token` CLI open the same file concurrently; WAL plus a busy timeout make that safe.

import fs from 'node:fs'
import Sqlite from 'better-sqlite3'
import type { Database } from 'better-sqlite3'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { migrate } from './migrator.js'

export type { Database }

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url))

export function openDatabase(file: string, log: Logger, migrationsDir = MIGRATIONS_DIR): Database {
  // Token hashes and the audit trail are nobody else's business; the -wal/-shm files inherit this mode.
  fs.closeSync(fs.openSync(file, 'a', 0o600))
  fs.chmodSync(file, 0o600)
  const db = new Sqlite(file)
  try {
    db.pragma('journal_mode = WAL')
    // FULL: a release or deployment recorded as done must still be recorded after power loss.
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
    db.pragma('busy_timeout = 5000')
    migrate(db, migrationsDir, log)
    return db
  } catch (err) {
    db.close()
    throw err
  }
}

export function now(): string {
  return new Date().toISOString()
}

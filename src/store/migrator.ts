// Applies migrations/NNN-name.sql in order, each inside its own transaction, tracked by PRAGMA user_version.
// Knows nothing of HTTP; a failing file is named in the thrown error and leaves the schema at the previous file.

import fs from 'node:fs'
import path from 'node:path'
import type { Database } from 'better-sqlite3'
import type { Logger } from 'pino'

export class MigrationError extends Error {
  override name = 'MigrationError'
}

const FILE = /^(\d{3})-[a-z0-9-]+\.sql$/

export function listMigrations(dir: string): { version: number; file: string }[] {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()
  return files.map((file, i) => {
    const m = FILE.exec(file)
    if (!m) throw new MigrationError(`migration file ${file} must be named NNN-name.sql`)
    const version = Number(m[1])
    if (version !== i + 1) throw new MigrationError(`migration file ${file} is out of sequence: expected number ${String(i + 1).padStart(3, '0')}`)
    return { version, file: path.join(dir, file) }
  })
}

export function migrate(db: Database, dir: string, log: Logger): number {
  const migrations = listMigrations(dir)
  const current = db.pragma('user_version', { simple: true }) as number
  if (current > migrations.length) {
    throw new MigrationError(`database schema version ${current} is newer than this berth (${migrations.length} migrations); upgrade berth`)
  }
  for (const m of migrations.slice(current)) {
    const sql = fs.readFileSync(m.file, 'utf8')
    try {
      db.transaction(() => {
        db.exec(sql)
        db.pragma(`user_version = ${m.version}`)
      }).immediate()
    } catch (err) {
      throw new MigrationError(`migration ${path.basename(m.file)} failed: ${(err as Error).message}`, { cause: err })
    }
    log.info({ migration: path.basename(m.file) }, 'applied migration')
  }
  return migrations.length
}

// The store: durability pragmas, migrations applied in order inside transactions, a failing file named.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import Sqlite from 'better-sqlite3'
import pino from 'pino'
import { openDatabase } from '../src/store/db.js'
import { EventStore } from '../src/store/events.js'
import { DeploymentStore, type Deployment } from '../src/store/deployments.js'
import { tempDir } from './helpers/daemon.js'

const log = pino({ level: 'silent' })

test('opens in WAL with synchronous=FULL, mode 0600, and applies the shipped migrations', () => {
  const dir = tempDir()
  const db = openDatabase(path.join(dir, 'berth.db'), log)
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  assert.equal(db.pragma('synchronous', { simple: true }), 2)
  assert.ok((db.pragma('user_version', { simple: true }) as number) >= 1)
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name)
  for (const t of ['tokens', 'apps', 'releases', 'events']) assert.ok(tables.includes(t), t)
  db.close()
  assert.equal(fs.statSync(path.join(dir, 'berth.db')).mode & 0o777, 0o600)
  fs.rmSync(dir, { recursive: true })
})

test('a failing migration is named, rolled back, and earlier ones stay applied', () => {
  const dir = tempDir()
  const migrations = path.join(dir, 'migrations')
  fs.mkdirSync(migrations)
  fs.writeFileSync(path.join(migrations, '001-one.sql'), 'CREATE TABLE one (x INTEGER);')
  fs.writeFileSync(path.join(migrations, '002-broken.sql'), 'CREATE TABLE two (x INTEGER); INSERT INTO nowhere VALUES (1);')
  assert.throws(() => openDatabase(path.join(dir, 'b.db'), log, migrations), /migration 002-broken\.sql failed: no such table: nowhere/)
  const db = new Sqlite(path.join(dir, 'b.db'))
  assert.equal(db.pragma('user_version', { simple: true }), 1)
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name)
  assert.deepEqual(tables, ['one'], 'the half of 002 that ran was rolled back')
  db.close()
  // Fixed file: the next start picks up where it stopped.
  fs.writeFileSync(path.join(migrations, '002-broken.sql'), 'CREATE TABLE two (x INTEGER);')
  openDatabase(path.join(dir, 'b.db'), log, migrations).close()
  fs.rmSync(dir, { recursive: true })
})

test('a gap in the numbering is refused', () => {
  const dir = tempDir()
  fs.writeFileSync(path.join(dir, '001-a.sql'), 'SELECT 1;')
  fs.writeFileSync(path.join(dir, '003-c.sql'), 'SELECT 1;')
  assert.throws(() => openDatabase(path.join(dir, 'x.db'), log, dir), /003-c\.sql is out of sequence/)
  fs.rmSync(dir, { recursive: true })
})

test('an audit subscriber that unsubscribes while hearing an event does not make the next one miss it', () => {
  const dir = tempDir()
  try {
    const db = openDatabase(path.join(dir, 'berth.db'), log)
    const events = new EventStore(db, log)
    const heard: string[] = []
    const off = events.subscribe(() => {
      heard.push('first')
      off()
    })
    events.subscribe(() => heard.push('second'))
    events.record({ app: 'hello', action: 'rpc', outcome: 'ok' })
    events.record({ app: 'hello', action: 'rpc', outcome: 'ok' })
    assert.deepEqual(heard, ['first', 'second', 'second'])
    db.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('the last deploy or rollback of an app follows every write, though it is kept between reads', () => {
  const dir = tempDir()
  const db = openDatabase(path.join(dir, 'berth.db'), log)
  db.prepare("INSERT INTO apps (name, created_at) VALUES ('hello', 'now')").run()
  const store = new DeploymentStore(db, 'me')
  assert.equal(store.lastRelease('hello'), null)
  const add = (id: string, kind: Deployment['kind']) => {
    const d = store.create({ id, app: 'hello', kind, release: `r-${id}`, previous: null, warnings: [], actor: 'test' })
    d.state = 'succeeded'
    store.finish(d)
    return d
  }
  add('d1', 'deploy')
  assert.equal(store.lastRelease('hello')?.id, 'd1')
  add('d2', 'restart')
  assert.equal(store.lastRelease('hello')?.id, 'd1', 'a restart is not a release change')
  const d3 = add('d3', 'rollback')
  assert.equal(store.lastRelease('hello')?.state, 'succeeded')
  d3.state = 'failed'
  store.save(d3)
  assert.equal(store.lastRelease('hello')?.state, 'failed', 'a save is seen by the next read')
  assert.throws(() => ((store.lastRelease('hello') as Deployment).state = 'pending'), TypeError, 'what is kept cannot be changed by a caller')
  db.close()
  fs.rmSync(dir, { recursive: true })
})

// Env values at rest (issue 23 §5): sealed with a key outside berth.db, so that no file under the data directory
// (berth.db, its WAL, logs, recordings) holds a value in clear, also after the migration of an older berth's
// clear values; a database without its key yields no values, and a moved value fails authentication.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import Database from 'better-sqlite3'
import pino from 'pino'
import { loadConfig } from '../src/config.js'
import { startServer } from '../src/http/server.js'
import { openDatabase, MIGRATIONS_DIR } from '../src/store/db.js'
import { freePort, processesUnder, runCli, startDaemon, tempDir, type TestDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'

const json = { 'content-type': 'application/json' }

function marker(what: string): string {
  return `${what}-${crypto.randomBytes(12).toString('hex')}`
}

/** Every regular file under dir (symlinks are not followed: `current` points into the same tree). */
function filesUnder(dir: string): string[] {
  const out: string[] = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...filesUnder(p))
    else if (e.isFile()) out.push(p)
  }
  return out
}

/** The files under dir holding any of the markers, byte for byte (as UTF-8, the way berth received them). */
function filesHolding(dir: string, markers: string[]): string[] {
  const hits: string[] = []
  for (const f of filesUnder(dir)) {
    let bytes: Buffer
    try {
      bytes = fs.readFileSync(f)
    } catch (err) {
      // A file made unreadable on purpose (the key file is 0400, owned by us: readable) would be a finding.
      throw new Error(`cannot read ${f}: ${(err as Error).message}`)
    }
    for (const m of markers) if (bytes.includes(Buffer.from(m, 'utf8'))) hits.push(`${path.relative(dir, f)} holds ${m.split('-')[0]}`)
  }
  return hits
}

/** A data directory whose berth.db is at schema 009 (before sealing), as an older berth left it. */
function oldSchemaDb(dataDir: string): string {
  const old = tempDir('berth-old-migrations-')
  for (const f of fs.readdirSync(MIGRATIONS_DIR).filter((x) => x.endsWith('.sql') && Number(x.slice(0, 3)) <= 9)) fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(old, f))
  const file = path.join(dataDir, 'berth.db')
  openDatabase(file, pino({ level: 'silent' }), old + path.sep).close()
  fs.rmSync(old, { recursive: true, force: true })
  return file
}

describe('env values at rest', () => {
  const daemons: TestDaemon[] = []
  after(async () => {
    for (const d of daemons) {
      await d.stop()
      assert.deepEqual(processesUnder(d.dataDir), [])
    }
  })

  test('a value set through the API is in no file under the data directory; the running node has it in its environment', async () => {
    const d = await startDaemon()
    daemons.push(d)
    const port = await freePort()
    const secrets = { SECRET_KEY_BASE: marker('skb'), DATABASE_URL: `ecto://u:${marker('dbpw')}@db/prod` }
    const later = marker('later')
    const put = await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port), ...secrets }) })
    assert.equal(put.status, 200, put.text)
    const patch = await call(`${d.url}/v1/apps/hello/env`, { method: 'PATCH', token: d.adminToken, headers: json, body: JSON.stringify({ set: { LATER_SECRET: later } }) })
    assert.equal(patch.status, 200, patch.text)
    const s = await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 500 }) })
    assert.equal(s.status, 200, s.text)
    const dep = await upload(d.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken, query: 'deploy=true' })
    assert.equal(dep.body.deployment?.state, 'succeeded', dep.text)
    const rpc = await call(`${d.url}/v1/apps/hello/rpc`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ expr: '1 + 1' }) })
    assert.equal(rpc.status, 200, rpc.text)

    const markers = [secrets.SECRET_KEY_BASE, secrets.DATABASE_URL, later]
    // GET env: names only.
    const names = await call(`${d.url}/v1/apps/hello/env`, { token: d.adminToken })
    assert.deepEqual(names.body, { names: ['DATABASE_URL', 'LATER_SECRET', 'PORT', 'SECRET_KEY_BASE'] })
    for (const m of markers) assert.ok(!names.text.includes(m))
    // Where the running node needs them: its own environment, given at spawn (no env file on disk).
    const beam = processesUnder(d.dataDir).find((p) => /beam\.smp/.test(p.cmd))
    assert.ok(beam, 'the node runs')
    const environ = fs.readFileSync(`/proc/${beam.pid}/environ`)
    for (const m of markers) assert.ok(environ.includes(Buffer.from(m)), 'the node got its value')
    // What a release fills in from its environment lands in RELEASE_TMP: berth's user only.
    assert.equal(fs.statSync(path.join(d.dataDir, 'apps', 'hello', 'shared', 'tmp')).mode & 0o777, 0o700)
    assert.deepEqual(filesHolding(d.dataDir, markers), [])
    // The WAL too is scanned above; checkpointing it must not bring a value to the main file either.
    d.server.services.db.pragma('wal_checkpoint(TRUNCATE)')
    assert.deepEqual(filesHolding(d.dataDir, markers), [])
  })

  test('clear values an older berth kept in berth.db are encrypted at start and left in no file: not in free pages, not in the WAL', async () => {
    const dataDir = tempDir()
    fs.chmodSync(dataDir, 0o750)
    const file = oldSchemaDb(dataDir)
    const replaced = marker('replaced')
    const big = marker('big')
    const current = marker('current')
    const inWal = marker('wal')
    // The older berth: a large env (overflow pages) checkpointed into the main file, then replaced by a small
    // one: without secure_delete the old pages go to the free list as they were, values and all...
    const old = new Database(file)
    old.pragma('wal_autocheckpoint = 0')
    old.prepare(`INSERT INTO apps (name, created_at) VALUES ('hello', '2026-01-01T00:00:00Z'), ('other', '2026-01-01T00:00:00Z')`).run()
    old.prepare(`UPDATE apps SET env = ? WHERE name = 'hello'`).run(JSON.stringify({ BIG: big + 'x'.repeat(20_000), OLD: replaced }))
    old.pragma('wal_checkpoint(TRUNCATE)')
    old.prepare(`UPDATE apps SET env = ? WHERE name = 'hello'`).run(JSON.stringify({ SECRET_KEY_BASE: current }))
    old.pragma('wal_checkpoint(TRUNCATE)')
    assert.ok((old.pragma('freelist_count', { simple: true }) as number) > 0, 'the old value is in free pages')
    // ...and one still in the WAL when berth starts (the older berth's connection stays open, idle).
    old.prepare(`UPDATE apps SET env = ? WHERE name = 'other'`).run(JSON.stringify({ TOKEN: inWal }))
    const all = [replaced, big, current, inWal]
    const before = filesHolding(dataDir, all)
    for (const hit of ['berth.db holds replaced', 'berth.db holds big', 'berth.db holds current', 'berth.db-wal holds wal']) assert.ok(before.includes(hit), `before: ${before.join(', ')}`)
    const d = await startDaemon({ BERTH_DATA_DIR: dataDir })
    daemons.push(d)
    try {
      assert.deepEqual(filesHolding(dataDir, all), [])
      // The values survive, encrypted, and reach a child's environment.
      assert.deepEqual(d.server.services.apps.env('hello'), { SECRET_KEY_BASE: current })
      assert.deepEqual(d.server.services.apps.env('other'), { TOKEN: inWal })
      assert.deepEqual((await call(`${d.url}/v1/apps/hello/env`, { token: d.adminToken })).body, { names: ['SECRET_KEY_BASE'] })
      assert.equal((d.server.services.db.prepare(`SELECT count(*) AS n FROM apps WHERE env <> '{}'`).get() as { n: number }).n, 0)
    } finally {
      old.close()
    }
  })

  test('a database copied without its key yields no values, and berth says the key is missing', async () => {
    const d = await startDaemon()
    daemons.push(d)
    const value = marker('copied')
    assert.equal((await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ SECRET_KEY_BASE: value }) })).status, 200)
    const elsewhere = tempDir()
    fs.chmodSync(elsewhere, 0o750)
    await d.server.services.db.backup(path.join(elsewhere, 'berth.db'))
    assert.deepEqual(filesHolding(elsewhere, [value]), [], 'the copy holds no value in clear')
    // The copy's tokens go, so that the daemon below writes a fresh initial-admin-token.
    const copy = new Database(path.join(elsewhere, 'berth.db'))
    copy.prepare('DELETE FROM tokens').run()
    copy.close()
    const oldKeyId = d.server.services.vault.keyring.current.id

    const e = await startDaemon({ BERTH_DATA_DIR: elsewhere }, { keepLogs: true })
    daemons.push(e)
    const newKeyId = e.server.services.vault.keyring.current.id
    assert.notEqual(newKeyId, oldKeyId, 'a new key was created where none was')
    assert.match(e.logs(), /encrypted with a key that is not in the key file/)
    assert.ok(e.logs().includes(oldKeyId), 'the log names the missing key id')
    assert.ok(!e.logs().includes(value))
    // Names stay listed; reading the values (to start the node) is refused with a sentence, not a crash.
    assert.deepEqual((await call(`${e.url}/v1/apps/hello/env`, { token: e.adminToken })).body, { names: ['SECRET_KEY_BASE'] })
    assert.throws(() => e.server.services.apps.env('hello'), (err: { code?: string; message: string }) => err.code === 'ENV_KEY_MISSING' && err.message.includes(oldKeyId) && err.message.includes('SECRET_KEY_BASE'))
    const dep = await upload(e.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: e.adminToken, query: 'deploy=true' })
    assert.equal(dep.body.deployment?.state, 'failed', dep.text)
    assert.equal(dep.body.deployment?.reasonCode, 'ENV_KEY_MISSING', dep.text)
    assert.match(dep.body.deployment?.reason, /not in .*env\.key/)
    // Setting the variable again makes the app whole.
    assert.equal((await call(`${e.url}/v1/apps/hello/env`, { method: 'PATCH', token: e.adminToken, headers: json, body: JSON.stringify({ set: { SECRET_KEY_BASE: 'again' } }) })).status, 200)
    assert.deepEqual(e.server.services.apps.env('hello'), { SECRET_KEY_BASE: 'again' })
  })

  test('a value moved to another app or another name fails authentication with a clear error', async () => {
    const d = await startDaemon()
    daemons.push(d)
    const { db, apps } = d.server.services
    for (const [app, env] of [['hello', { SECRET_KEY_BASE: marker('a'), OTHER: 'x' }], ['shop', { API_KEY: 'y' }]] as const) {
      assert.equal((await call(`${d.url}/v1/apps/${app}/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify(env) })).status, 200)
    }
    // Another app: shop's API_KEY gets hello's sealed SECRET_KEY_BASE.
    db.prepare(`UPDATE env_values SET (key_id, nonce, sealed) = (SELECT key_id, nonce, sealed FROM env_values WHERE app = 'hello' AND name = 'SECRET_KEY_BASE') WHERE app = 'shop' AND name = 'API_KEY'`).run()
    assert.throws(() => apps.env('shop'), (err: { code?: string; message: string }) => err.code === 'ENV_TAMPERED' && /API_KEY/.test(err.message) && /moved there from another app or variable/.test(err.message))
    // Another name within the app.
    db.prepare(`UPDATE env_values SET name = 'RENAMED' WHERE app = 'hello' AND name = 'SECRET_KEY_BASE'`).run()
    assert.throws(() => apps.env('hello'), (err: { code?: string; message: string }) => err.code === 'ENV_TAMPERED' && /RENAMED/.test(err.message))
    // One flipped bit.
    const row = db.prepare(`SELECT sealed FROM env_values WHERE app = 'hello' AND name = 'OTHER'`).get() as { sealed: Buffer }
    row.sealed[0] ^= 1
    db.prepare(`UPDATE env_values SET sealed = ? WHERE app = 'hello' AND name = 'OTHER'`).run(row.sealed)
    assert.throws(() => apps.env('hello'), (err: { code?: string; message: string }) => err.code === 'ENV_TAMPERED' && /OTHER/.test(err.message))
  })
})

describe('the key', () => {
  test('is created at first start as a 0400 file in a 0700 directory, and never logged', async () => {
    const d = await startDaemon({}, { keepLogs: true })
    try {
      const file = path.join(d.dataDir, 'keys', 'env.key')
      assert.equal(fs.statSync(file).mode & 0o777, 0o400)
      assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700)
      const key = fs.readFileSync(file, 'utf8').split('\n').find((l) => l && !l.startsWith('#'))!
      assert.equal(Buffer.from(key, 'base64').length, 32)
      assert.ok(d.logs().includes(file), 'the log says where the key is')
      assert.ok(!d.logs().includes(key), 'the log never holds the key')
      assert.ok(!d.logs().includes(Buffer.from(key, 'base64').toString('hex')))
    } finally {
      await d.stop()
    }
  })

  test('berth refuses to start when the key file is open to others, unreadable, or not a key', async () => {
    const dataDir = tempDir()
    const log = pino({ level: 'silent' })
    const start = (env: Record<string, string> = {}) => startServer(loadConfig({ BERTH_DATA_DIR: dataDir, BERTH_LISTEN: '127.0.0.1:0', ...env }), log)
    try {
      const first = await start()
      await first.close()
      const file = path.join(dataDir, 'keys', 'env.key')
      fs.chmodSync(file, 0o440)
      await assert.rejects(start(), (err: { code?: string; message: string }) => err.code === 'ENV_KEY_INSECURE' && err.message.includes('chmod 0400'))
      fs.chmodSync(file, 0o400)
      fs.chmodSync(path.dirname(file), 0o757)
      await assert.rejects(start(), (err: { code?: string; message: string }) => err.code === 'ENV_KEY_INSECURE' && err.message.includes('chmod 0700'))
      fs.chmodSync(path.dirname(file), 0o700)
      const other = path.join(tempDir('berth-key-'), 'k', 'env.key')
      fs.mkdirSync(path.dirname(other), { mode: 0o700 })
      fs.writeFileSync(other, 'not a key\n', { mode: 0o400 })
      await assert.rejects(start({ BERTH_ENV_KEY_FILE: other }), (err: { code?: string; message: string }) => err.code === 'ENV_KEY_UNAVAILABLE' && err.message.includes('Line 1'))
      if (process.getuid?.() !== 0) {
        fs.chmodSync(file, 0o000)
        await assert.rejects(start(), (err: { code?: string }) => err.code === 'ENV_KEY_UNAVAILABLE')
        fs.chmodSync(file, 0o400)
      }
      // And the CLI says the same in one line.
      fs.chmodSync(file, 0o404)
      const r = await runCli(['keys', 'status', '--data-dir', dataDir])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /other users may read it.*\(ENV_KEY_INSECURE\)/)
      fs.rmSync(path.dirname(other), { recursive: true, force: true })
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  })

  test('berth keys rotate re-encrypts every value with a new key while berth runs, and retires the old key', async () => {
    const d = await startDaemon()
    try {
      const value = marker('rotated')
      assert.equal((await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ SECRET_KEY_BASE: value, B: 'b' }) })).status, 200)
      const oldId = d.server.services.vault.keyring.current.id
      const file = path.join(d.dataDir, 'keys', 'env.key')
      const oldKey = fs.readFileSync(file, 'utf8')
      const r = await runCli(['keys', 'rotate', '--data-dir', d.dataDir])
      assert.equal(r.code, 0, r.stderr)
      const newId = r.stdout.trim()
      assert.match(newId, /^[0-9a-f]{16}$/)
      assert.notEqual(newId, oldId)
      assert.match(r.stderr, /2 value\(s\) re-encrypted with the new key; retired 1 key/)
      assert.equal(fs.statSync(file).mode & 0o777, 0o400)
      const keys = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'))
      assert.equal(keys.length, 1, 'only the new key is left')
      assert.ok(!oldKey.includes(keys[0]!))
      const ids = d.server.services.db.prepare('SELECT DISTINCT key_id FROM env_values').all() as { key_id: string }[]
      assert.deepEqual(ids, [{ key_id: newId }])
      // The running daemon reads the new key ring when it meets the new id, and seals new values with it.
      assert.equal(d.server.services.apps.env('hello').SECRET_KEY_BASE, value)
      assert.equal((await call(`${d.url}/v1/apps/hello/env`, { method: 'PATCH', token: d.adminToken, headers: json, body: JSON.stringify({ set: { C: 'c' } }) })).status, 200)
      assert.deepEqual(d.server.services.db.prepare('SELECT DISTINCT key_id FROM env_values').all(), [{ key_id: newId }])
      const status = await runCli(['keys', 'status', '--json', '--data-dir', d.dataDir])
      assert.equal(status.code, 0, status.stderr)
      assert.deepEqual(JSON.parse(status.stdout).keys, [{ id: newId, current: true, values: 3 }])
      assert.deepEqual(filesHolding(d.dataDir, [value]), [])
    } finally {
      await d.stop()
    }
  })

  test('with a systemd credential (CREDENTIALS_DIRECTORY/berth-env-key) berth reads it and creates no key file', async () => {
    const creds = tempDir('berth-creds-')
    const key = crypto.randomBytes(32)
    fs.writeFileSync(path.join(creds, 'berth-env-key'), `${key.toString('base64')}\n`, { mode: 0o400 })
    fs.chmodSync(creds, 0o500)
    const d = await startDaemon({ CREDENTIALS_DIRECTORY: creds })
    try {
      assert.equal(d.server.services.vault.keyring.source.file, path.join(creds, 'berth-env-key'))
      assert.ok(!fs.existsSync(path.join(d.dataDir, 'keys')), 'no key file of its own')
      assert.equal((await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ A: 'a' }) })).status, 200)
      assert.deepEqual(d.server.services.apps.env('hello'), { A: 'a' })
      const r = await runCli(['keys', 'rotate', '--data-dir', d.dataDir], { CREDENTIALS_DIRECTORY: creds })
      assert.equal(r.code, 1)
      assert.match(r.stderr, /systemd credential .* which berth cannot rewrite/)
    } finally {
      await d.stop()
      fs.chmodSync(creds, 0o700)
      fs.rmSync(creds, { recursive: true, force: true })
    }
  })
})

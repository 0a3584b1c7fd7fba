// The read caches behind the status routes never answer stale: what this process writes and what another
// connection commits (berth token, berth import) show on the very next read and the very next request.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import pino from 'pino'
import { AppStore } from '../src/apps/store.js'
import { TokenStore } from '../src/auth/tokens.js'
import { openDatabase, type Database } from '../src/store/db.js'
import { DeploymentStore } from '../src/store/deployments.js'
import { EventStore } from '../src/store/events.js'
import { ReleaseStore, type Release } from '../src/store/releases.js'
import { startDaemon, tempDir } from './helpers/daemon.js'
import { call } from './helpers/http.js'

const log = pino({ level: 'silent' })

/** One process's stores over one connection, as services.ts builds them. */
function stores(db: Database) {
  const events = new EventStore(db, log)
  return { releases: new ReleaseStore(db), apps: new AppStore(db, events), deployments: new DeploymentStore(db, `test-${Math.random()}`), tokens: new TokenStore(db) }
}

const release = (id: string, seq: number): Release => ({ id, app: 'hello', version: `0.${seq}.0`, sha256: String(seq).repeat(64), size: 1, unpackedBytes: 1, files: 1, uploadedAt: new Date().toISOString(), uploadedBy: null, kind: 'mix' })
/** Lets the synchronous run end: data_version is read again after it. */
const turn = () => new Promise((resolve) => setImmediate(resolve))

test("another connection's commits show on the next read: apps, settings, nodes, releases, deployments, tokens", async () => {
  const dir = tempDir()
  const file = path.join(dir, 'berth.db')
  const daemonDb = openDatabase(file, log)
  const otherDb = openDatabase(file, log)
  try {
    const daemon = stores(daemonDb)
    const other = stores(otherDb)
    const { token, info } = daemon.tokens.create({ name: 'ci', scopes: ['read'] })
    // Its first use writes last_used_at (a write of this connection, which would hide a missed commit).
    daemon.tokens.verify(token)

    // Every cache is filled first, so that a cache that missed the commit would answer the old rows.
    assert.equal(daemon.releases.appExists('hello'), false)
    assert.equal(daemon.apps.settings('hello').healthUrl, null)
    assert.equal(daemon.apps.node('hello'), null)
    assert.deepEqual(daemon.releases.list('hello'), [])
    assert.deepEqual(daemon.deployments.list('hello', 50), [])
    assert.equal(daemon.deployments.lastRelease('hello'), null)
    assert.equal(daemon.tokens.verify(token).id, info.id)
    await turn()

    other.releases.insert(release('0.1.0-000000000001', 1))
    other.apps.restoreSettings('hello', { healthUrl: 'http://127.0.0.1:1/health' }, 'berth import')
    other.apps.saveNode({ app: 'hello', releaseId: '0.1.0-000000000001', pid: 1, startTicks: 1, desired: 'running', startedAt: null, restarts: 3, lastExit: 'crashed' })
    other.deployments.recordImported({ id: 'd1', app: 'hello', release: '0.1.0-000000000001', at: new Date().toISOString(), reason: 'imported', actor: 'berth import' })
    assert.equal(other.tokens.revoke('ci'), true)
    await turn()

    assert.equal(daemon.releases.appExists('hello'), true)
    assert.equal(daemon.apps.settings('hello').healthUrl, 'http://127.0.0.1:1/health')
    assert.equal(daemon.apps.node('hello')?.restarts, 3)
    assert.deepEqual(daemon.releases.list('hello').map((r) => r.id), ['0.1.0-000000000001'])
    assert.deepEqual(daemon.deployments.list('hello', 50).map((d) => d.id), ['d1'])
    assert.equal(daemon.deployments.lastRelease('hello')?.id, 'd1')
    assert.throws(() => daemon.tokens.verify(token), (err: { code?: string }) => err.code === 'UNAUTHORIZED')
  } finally {
    daemonDb.close()
    otherDb.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test("this connection's own writes show at once, and what a rolled-back transaction read is not kept", () => {
  const dir = tempDir()
  const db = openDatabase(path.join(dir, 'berth.db'), log)
  try {
    const s = stores(db)
    s.releases.insert(release('0.1.0-000000000001', 1))
    assert.equal(s.apps.settings('hello').stableWindowMs, 10_000)
    s.apps.saveSettings('hello', { stableWindowMs: 0 }, 'test')
    assert.equal(s.apps.settings('hello').stableWindowMs, 0, 'no turn in between')
    assert.ok(Object.isFrozen(s.apps.settings('hello').restart), 'shared, so frozen')

    s.releases.insert(release('0.2.0-000000000002', 2))
    assert.deepEqual(s.releases.list('hello').map((r) => r.id), ['0.2.0-000000000002', '0.1.0-000000000001'])

    const d = s.deployments.create({ id: 'd1', app: 'hello', kind: 'deploy', release: '0.2.0-000000000002', previous: null, warnings: [], actor: 'test' })
    assert.equal(s.deployments.lastRelease('hello')?.state, 'pending')
    s.deployments.finish({ ...d, state: 'succeeded' })
    assert.equal(s.deployments.lastRelease('hello')?.state, 'succeeded')
    assert.equal(s.deployments.list('hello', 50)[0]?.state, 'succeeded')

    s.apps.saveNode({ app: 'hello', releaseId: '0.2.0-000000000002', pid: 1, startTicks: 1, desired: 'running', startedAt: null, restarts: 0, lastExit: null })
    assert.equal(s.apps.node('hello')?.restarts, 0)
    // Read inside a transaction that then rolls back: the row read there never existed for anyone else.
    assert.throws(() =>
      db.transaction(() => {
        s.apps.saveNode({ ...s.apps.node('hello')!, restarts: 9 })
        assert.equal(s.apps.node('hello')?.restarts, 9)
        throw new Error('roll back')
      })(),
    )
    assert.equal(s.apps.node('hello')?.restarts, 0)
  } finally {
    db.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('GET /v1/apps/{app} answers a settings change on the very next request', async () => {
  const d = await startDaemon()
  try {
    const app = `${d.url}/v1/apps/hello`
    const json = (body: unknown) => ({ method: 'PUT', token: d.adminToken, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal((await call(`${app}/env`, json({ A: '1' }))).status, 200)
    for (let i = 0; i < 3; i++) assert.equal((await call(app, { token: d.adminToken })).body.proxy, null)
    assert.equal((await call(`${app}/settings`, json({ proxy: { listen: '127.0.0.1:1' } }))).status, 200)
    const on = (await call(app, { token: d.adminToken })).body
    assert.equal(on.proxy?.listen, '127.0.0.1:1')
    assert.equal(on.proxy?.state, 'down')
    assert.equal((await call(`${app}/settings`, json({ proxy: null }))).status, 200)
    assert.equal((await call(app, { token: d.adminToken })).body.proxy, null)
  } finally {
    await d.stop()
  }
})

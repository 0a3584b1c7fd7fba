// A lost, emptied or damaged berth.db with real releases on disk: no release directory loses a byte,
// current and the running node stay, `berth import` (or the next start) lists the releases again, and only
// berth's own debris is swept.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import Sqlite from 'better-sqlite3'
import { after, before, describe, test } from 'node:test'
import { DEFAULT_SETTINGS } from '../src/apps/settings.js'
import { freePort, killProcessesUnder, processesUnder, runCli, spawnDaemon, tempDir, type ChildDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { releaseSkeleton, tgz } from './helpers/tar.js'
import { until } from './helpers/wait.js'

const json = { 'content-type': 'application/json' }

/** Every entry under dir, without following links: type, mode, size, content hash or link target. */
function treeDigest(dir: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (rel: string) => {
    const abs = path.join(dir, rel)
    const st = fs.lstatSync(abs)
    const mode = (st.mode & 0o7777).toString(8)
    if (st.isSymbolicLink()) out.set(rel, `link ${mode} ${fs.readlinkSync(abs)}`)
    else if (st.isFile()) out.set(rel, `file ${mode} ${st.size} ${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`)
    else if (st.isDirectory()) {
      out.set(rel, `dir ${mode}`)
      for (const name of fs.readdirSync(abs).sort()) walk(path.join(rel, name))
    } else out.set(rel, `other ${mode}`)
  }
  walk('.')
  return out
}

function assertSameTree(before: Map<string, string>, after: Map<string, string>) {
  const missing = [...before.keys()].filter((k) => !after.has(k))
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} entries of the release directories are gone`)
  const changed = [...before.keys()].filter((k) => after.get(k) !== before.get(k))
  assert.deepEqual(changed.slice(0, 5), [], `${changed.length} entries changed`)
  assert.equal(after.size, before.size)
}

describe('a lost or damaged berth.db costs no release', () => {
  const dataDir = tempDir()
  const releasesDir = path.join(dataDir, 'apps', 'hello', 'releases')
  const db = path.join(dataDir, 'berth.db')
  const appData = path.join(dataDir, 'hello-data')
  const ids: Record<string, string> = {}
  const sha: Record<string, string> = {}
  let port: number
  let epmd: string
  let daemon: ChildDaemon | null = null
  let token = ''
  let nodePid = 0
  let digest: Map<string, string>

  const adminToken = () => fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  const current = () => path.basename(fs.readlinkSync(path.join(dataDir, 'apps', 'hello', 'current')))
  const served = async () => (await fetch(`http://127.0.0.1:${port}/`)).text()

  async function configure() {
    assert.equal((await call(`${daemon!.url}/v1/apps/hello/env`, { method: 'PUT', token, headers: json, body: JSON.stringify({ PORT: String(port), HELLO_DATA_DIR: appData }) })).status, 200)
    const s = await call(`${daemon!.url}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ stableWindowMs: 1000, healthUrl: `http://127.0.0.1:${port}/health` }) })
    assert.equal(s.status, 200, s.text)
  }

  async function start() {
    daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd })
    token = adminToken()
  }

  async function stop() {
    await daemon?.stop('SIGTERM')
    daemon = null
  }

  /** What must hold after every recovery: files, current, node and the listing. */
  async function assertRecovered(what: string) {
    assertSameTree(digest, treeDigest(releasesDir))
    assert.equal(current(), ids.v2, `${what}: current still names v2`)
    const app = (await call(`${daemon!.url}/v1/apps/hello`, { token })).body
    assert.equal(app.current, ids.v2)
    assert.equal(app.node.pid, nodePid, `${what}: the node that ran is re-adopted (same pid), not restarted`)
    assert.equal(app.node.state, 'running')
    assert.equal(app.node.release, ids.v2)
    assert.equal(await served(), 'hello 0.2.0\n')
    const list = (await call(`${daemon!.url}/v1/apps/hello/releases`, { token })).body.releases
    assert.deepEqual(list.map((r: { id: string }) => r.id), [ids.v2, ids.v1], `${what}: both releases listed again, newest first`)
    assert.deepEqual(list.map((r: { current: boolean }) => r.current), [true, false])
    assert.deepEqual(list.map((r: { sha256: string }) => r.sha256), [sha.v2, sha.v1], 'metadata kept from the release directory')
  }

  before(async () => {
    port = await freePort()
    epmd = String(await freePort())
    appDataDir(appData)
    await start()
    await configure()
    for (const name of ['v1', 'v2'] as const) {
      const f = await fixture(name)
      const res = await upload(daemon!.url, 'hello', fs.readFileSync(f.tarball), { token, query: 'deploy=true' })
      assert.equal(res.status, 201, res.text)
      assert.equal(res.body.deployment?.state, 'succeeded', res.text)
      ids[name] = res.body.id
      sha[name] = f.sha256
    }
    nodePid = (await call(`${daemon!.url}/v1/apps/hello`, { token })).body.node.pid
    assert.ok(nodePid > 0)
    digest = treeDigest(releasesDir)
  })

  after(async () => {
    await daemon?.stop('SIGKILL')
    killProcessesUnder(dataDir)
    fs.rmSync(dataDir, { recursive: true, force: true })
    assert.deepEqual(processesUnder(dataDir), [])
  })

  test('berth.db removed (with -wal and -shm): the start re-imports every release', async () => {
    await stop()
    for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true })
    await start()
    await assertRecovered('removed')
    assert.match(daemon!.output(), /re-imported/)
  })

  test('berth.db truncated to zero bytes: the same', async () => {
    await stop()
    fs.truncateSync(db, 0)
    await start()
    await assertRecovered('truncated')
  })

  test('berth.db is not a database: berth refuses to start, names the fix, and touches nothing', async () => {
    await stop()
    const garbage = Buffer.from('this is not an SQLite database\n'.repeat(200))
    fs.writeFileSync(db, garbage)
    for (const f of [`${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true })
    await assert.rejects(spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd }), (err: Error) => {
      assert.match(err.message, /DATABASE_UNREADABLE|not a readable SQLite database/)
      assert.match(err.message, /berth import/)
      return true
    })
    assert.deepEqual(fs.readFileSync(db), garbage, 'the damaged file is kept for salvage')
    assertSameTree(digest, treeDigest(releasesDir))
    assert.equal(await served(), 'hello 0.2.0\n', 'the node keeps serving while berth is down')

    // The fix the message names: move the file aside and run berth import (daemon stopped).
    const refused = await runCli(['import', '--data-dir', dataDir])
    assert.equal(refused.code, 1, 'import refuses the damaged file too')
    assert.match(refused.stderr, /berth\.db/)
    fs.renameSync(db, `${db}.damaged`)
    const imported = await runCli(['import', '--data-dir', dataDir])
    assert.equal(imported.code, 0, imported.stderr)
    assert.match(imported.stdout, new RegExp(`hello\\s+${ids.v1!.replaceAll('.', '\\.')}\\s+imported`))
    assert.match(imported.stdout, new RegExp(`hello\\s+${ids.v2!.replaceAll('.', '\\.')}\\s+imported.*current`))
    assert.match(imported.stdout, new RegExp(`pid ${nodePid}`), 'it says the node still runs')
    const again = await runCli(['import', '--data-dir', dataDir])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /already recorded/, 'running it twice changes nothing')
    await start()
    await assertRecovered('damaged')
  })

  test('after re-import there is a rollback target: the release deployed before current', async () => {
    await configure()
    const rb = await call(`${daemon!.url}/v1/apps/hello/rollback?wait=true`, { method: 'POST', token, headers: json, body: '{}' })
    assert.equal(rb.status, 200, rb.text)
    assert.equal(rb.body.release, ids.v1)
    assert.equal(rb.body.state, 'succeeded', rb.text)
    assert.equal(await until('v1 serves', async () => ((await served()) === 'hello 0.1.0\n' ? 'yes' : null)), 'yes')
    nodePid = (await call(`${daemon!.url}/v1/apps/hello`, { token })).body.node.pid
  })

  test('only provable debris is swept at start; a complete release without a row is recorded again', async () => {
    await stop()
    digest = treeDigest(releasesDir)
    // A crash between moving a release into place and recording it: the row is missing.
    const raw = new Sqlite(db)
    raw.prepare('DELETE FROM deployments WHERE release_id = ?').run(ids.v2)
    raw.prepare('DELETE FROM releases WHERE id = ?').run(ids.v2)
    raw.close()
    // berth's own debris: a half-unpacked upload, a deleted release's trash, an interrupted delete.
    fs.mkdirSync(path.join(dataDir, 'uploads', 'hello-Xy12ab', 'tree', 'bin'), { recursive: true })
    fs.writeFileSync(path.join(dataDir, 'uploads', 'hello-Xy12ab', 'tree', 'bin', 'hello'), '#!/bin/sh\n')
    fs.mkdirSync(path.join(dataDir, 'uploads', `trash-hello-${ids.v1}-1-2`, 'lib'), { recursive: true })
    fs.mkdirSync(path.join(releasesDir, '.deleting-0.0.9-aaaaaaaaaaaa', 'bin'), { recursive: true })
    // Not berth's: left alone.
    fs.writeFileSync(path.join(releasesDir, 'NOTES.txt'), 'operator notes\n')
    await start()
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'uploads')), [], 'uploads/ is emptied')
    assert.ok(!fs.existsSync(path.join(releasesDir, '.deleting-0.0.9-aaaaaaaaaaaa')), 'an interrupted delete is finished')
    assert.equal(fs.readFileSync(path.join(releasesDir, 'NOTES.txt'), 'utf8'), 'operator notes\n')
    fs.rmSync(path.join(releasesDir, 'NOTES.txt'))
    assertSameTree(digest, treeDigest(releasesDir))
    const list = (await call(`${daemon!.url}/v1/apps/hello/releases`, { token })).body.releases
    assert.deepEqual(list.map((r: { id: string }) => r.id).sort(), [ids.v1, ids.v2].sort())
    assert.equal(list.find((r: { id: string }) => r.id === ids.v2).sha256, sha.v2)
    assert.equal((await call(`${daemon!.url}/v1/apps/hello`, { token })).body.node.pid, nodePid)
  })

  test('a release unpacked by an older berth (no metadata file) is imported from its files', async () => {
    await stop()
    const dir = path.join(releasesDir, ids.v2!)
    fs.chmodSync(dir, 0o755)
    fs.rmSync(path.join(dir, '.berth-release.json'))
    fs.chmodSync(dir, 0o555)
    for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true })
    const imported = await runCli(['import', '--data-dir', dataDir])
    assert.equal(imported.code, 0, imported.stderr)
    assert.match(imported.stdout, new RegExp(`${ids.v2!.replaceAll('.', '\\.')}\\s+imported.*no \\.berth-release\\.json`))
    await start()
    const rel = (await call(`${daemon!.url}/v1/apps/hello/releases/${ids.v2}`, { token })).body
    assert.equal(rel.version, '0.2.0')
    assert.equal(rel.sha256, ids.v2!.slice(-12), 'only the part of the sha256 the id holds is known')
    // The same bytes uploaded again are recognised as that release, which learns its full checksum.
    const again = await upload(daemon!.url, 'hello', fs.readFileSync((await fixture('v2')).tarball), { token })
    assert.equal(again.status, 200, again.text)
    assert.equal(again.body.id, ids.v2)
    assert.equal(again.body.sha256, sha.v2)
    assert.ok(fs.existsSync(path.join(dir, '.berth-release.json')))
    assert.equal(current(), ids.v1)
    assert.equal((await call(`${daemon!.url}/v1/apps/hello`, { token })).body.node.pid, nodePid)
  })

  test("a metadata file a tarball brings is replaced by berth's own; a delete leaves nothing behind", async () => {
    const forged = JSON.stringify({ id: ids.v1, app: 'hello', version: '0.1.0', sha256: sha.v1, size: 1, unpackedBytes: 1, files: 1, uploadedAt: '2000-01-01T00:00:00.000Z', uploadedBy: 'mallory' })
    const plain = await upload(daemon!.url, 'hello', tgz([...releaseSkeleton('hello', '9.0.0'), { path: '.berth-release.json', body: forged }]), { token })
    const wrapped = await upload(daemon!.url, 'hello', tgz([...releaseSkeleton('hello', '9.0.1'), { path: '.berth-release.json', type: 'SymbolicLink' as const, linkpath: 'bin/hello' }].map((e) => ({ ...e, path: `hello-9.0.1/${e.path}` }))), { token })
    for (const res of [plain, wrapped]) {
      assert.equal(res.status, 201, res.text)
      const file = path.join(releasesDir, res.body.id, '.berth-release.json')
      assert.ok(fs.lstatSync(file).isFile())
      const meta = JSON.parse(fs.readFileSync(file, 'utf8'))
      assert.deepEqual({ id: meta.id, sha256: meta.sha256, size: meta.size, uploadedAt: meta.uploadedAt }, { id: res.body.id, sha256: res.body.sha256, size: res.body.size, uploadedAt: res.body.uploadedAt })
      const del = await call(`${daemon!.url}/v1/apps/hello/releases/${res.body.id}`, { method: 'DELETE', token })
      assert.equal(del.status, 200, del.text)
    }
    assert.deepEqual(fs.readdirSync(releasesDir).sort(), [ids.v1, ids.v2].sort(), 'no directory or .deleting- entry is left')
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'uploads')), [])
  })

  test('the settings come back from apps/APP/settings.json, which holds no environment value', async () => {
    // Settings saved before berth kept the file get one at the next start.
    await stop()
    fs.rmSync(path.join(dataDir, 'apps', 'hello', 'settings.json'))
    await start()
    assert.equal(JSON.parse(fs.readFileSync(path.join(dataDir, 'apps', 'hello', 'settings.json'), 'utf8')).settings.stableWindowMs, 1000)

    const put = await call(`${daemon!.url}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ keepReleases: 7, stableWindowMs: 1500, restart: { maxRestarts: 9 } }) })
    assert.equal(put.status, 200, put.text)
    const saved = (await call(`${daemon!.url}/v1/apps/hello/settings`, { token })).body
    assert.equal(saved.keepReleases, 7)
    const file = fs.readFileSync(path.join(dataDir, 'apps', 'hello', 'settings.json'), 'utf8')
    assert.equal(JSON.parse(file).settings.keepReleases, 7, 'written before the PUT is answered')
    assert.ok(!file.includes(appData) && !file.includes('HELLO_DATA_DIR'), 'no environment name or value in settings.json')

    // At the next start.
    await stop()
    for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true })
    await start()
    assert.deepEqual((await call(`${daemon!.url}/v1/apps/hello/settings`, { token })).body, saved)
    assert.match(daemon!.output(), /restored them from apps\/hello\/settings\.json/)
    assert.deepEqual((await call(`${daemon!.url}/v1/apps/hello/env`, { token })).body.names, [], 'the environment is not restored')

    // Through berth import.
    await stop()
    for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true })
    const imported = await runCli(['import', '--data-dir', dataDir])
    assert.equal(imported.code, 0, imported.stderr)
    assert.match(imported.stdout, /settings restored from apps\/hello\/settings\.json/)
    const again = await runCli(['import', '--data-dir', dataDir, '--json'])
    assert.equal(JSON.parse(again.stdout).apps[0].settings, 'kept', 'the database has them now: the file is not read again')
    await start()
    assert.deepEqual((await call(`${daemon!.url}/v1/apps/hello/settings`, { token })).body, saved)
  })

  test('a corrupt settings.json is reported and skipped: berth starts with the default settings', async () => {
    await stop()
    for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true })
    const file = path.join(dataDir, 'apps', 'hello', 'settings.json')
    fs.writeFileSync(file, '{"settings": {"keepReleases": 7,')
    await start()
    assert.match(daemon!.output(), /settings\.json was not used: it is not JSON/)
    assert.deepEqual((await call(`${daemon!.url}/v1/apps/hello/settings`, { token })).body, JSON.parse(JSON.stringify(DEFAULT_SETTINGS)))
    assert.equal((await call(`${daemon!.url}/v1/apps/hello`, { token })).body.node.pid, nodePid, 'the node is re-adopted as usual')
    assert.equal(fs.readFileSync(file, 'utf8'), '{"settings": {"keepReleases": 7,', 'left as it is')

    // A value berth would refuse, through berth import: a warning, the defaults.
    await stop()
    for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true })
    fs.writeFileSync(file, JSON.stringify({ settings: { keepReleases: 0 } }))
    const imported = await runCli(['import', '--data-dir', dataDir, '--json'])
    assert.equal(imported.code, 0, imported.stderr)
    const app = JSON.parse(imported.stdout).apps[0]
    assert.equal(app.settings, 'none')
    assert.match(app.warnings.join('\n'), /settings\.json was not used: it holds a value berth refuses \(Setting keepReleases/)
    await start()
    assert.equal((await call(`${daemon!.url}/v1/apps/hello/settings`, { token })).body.keepReleases, DEFAULT_SETTINGS.keepReleases)
  })

  test('a settings.json that cannot be written is an error answer, never a silent 200', async () => {
    const file = path.join(dataDir, 'apps', 'hello', 'settings.json')
    // A directory where the file goes makes the rename fail, for root too (permissions would not).
    fs.rmSync(file, { force: true })
    fs.mkdirSync(file)
    try {
      const put = await call(`${daemon!.url}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ keepReleases: 6 }) })
      assert.equal(put.status, 500, put.text)
      assert.equal(put.body.code, 'SETTINGS_NOT_COPIED')
      assert.match(put.body.detail, /saved in berth\.db and in effect, but apps\/hello\/settings\.json could not be written/)
      assert.equal(put.body.settings.keepReleases, 6, 'the problem carries the settings in effect')
      assert.equal((await call(`${daemon!.url}/v1/apps/hello/settings`, { token })).body.keepReleases, 6, 'nothing is lost: berth.db has them')
    } finally {
      fs.rmSync(file, { recursive: true, force: true })
    }
    const again = await call(`${daemon!.url}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ keepReleases: 6 }) })
    assert.equal(again.status, 200, again.text)
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).settings.keepReleases, 6)
  })
})

// An install from before isolation moves to app users at its first start with isolation on (issue 26): the
// app's files are chowned once and marked, its running node is re-adopted as it is and takes the app's uid at
// its next restart, and a pass interrupted halfway (no marker) is simply done again. Real daemon, real release.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { appDataDir, endProcessesUnder, freePort, freePortRange, spawnDaemon, tempDir, type ChildDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

const json = { 'content-type': 'application/json' }
const isRoot = process.getuid?.() === 0

function uidOfProcess(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m![1])
}

describe('upgrading an install to isolation', { skip: isRoot ? false : 'needs root: app users are real uids' }, () => {
  const dataDir = tempDir()
  const appData = path.join(dataDir, 'hello-data')
  let daemon: ChildDaemon | null = null
  let token = ''
  let port = 0
  let epmd = ''
  let dist = ''
  const app = () => path.join(dataDir, 'apps', 'hello')
  const marker = () => path.join(app(), '.isolated')

  async function start(env: Record<string, string> = {}) {
    daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd, BERTH_DIST_PORTS: dist, ...env })
    token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  }
  const get = async (p: string) => (await call(`${daemon!.url}${p}`, { token })).body
  const beamUid = async () => uidOfProcess((await get('/v1/apps/hello')).node.beamPid)

  before(async () => {
    port = await freePort()
    epmd = String(await freePort())
    dist = await freePortRange()
    appDataDir(appData)
    await start({ BERTH_APP_ISOLATION: 'off' })
    assert.equal((await call(`${daemon!.url}/v1/apps/hello/env`, { method: 'PUT', token, headers: json, body: JSON.stringify({ PORT: String(port), HELLO_DATA_DIR: appData }) })).status, 200)
    const s = await call(`${daemon!.url}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ stableWindowMs: 500, healthUrl: `http://127.0.0.1:${port}/health` }) })
    assert.equal(s.status, 200, s.text)
    const up = await upload(daemon!.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token, query: 'deploy=true' })
    assert.equal(up.body.deployment?.state, 'succeeded', up.text)
  })

  after(async () => {
    if (daemon) await call(`${daemon.url}/v1/apps/hello/stop?wait=true`, { method: 'POST', token, headers: json, body: '{}' }).catch(() => {})
    await daemon?.stop('SIGTERM')
    assert.deepEqual(await endProcessesUnder(dataDir), [])
    fs.rmSync(dataDir, { recursive: true, force: true })
  })

  test('with isolation off the node runs as berth (root here), and /healthz says off', async () => {
    assert.equal(await beamUid(), 0)
    assert.deepEqual((await get('/v1/apps/hello')).runsAs, { isolation: 'off', uid: 0 })
    const h = (await call(`${daemon!.url}/healthz`)).body
    assert.equal(h.details.isolation.mode, 'off')
    assert.ok(!fs.existsSync(marker()), 'nothing moved while off')
  })

  test('the first start with isolation on chowns the app once, re-adopts the running node, and its restart takes the uid', async () => {
    const before = (await get('/v1/apps/hello')).node.pid
    await daemon!.stop('SIGTERM')
    // A file berth made before (as root) in the app's writable place: the pass must give it to the app.
    fs.writeFileSync(path.join(app(), 'shared', 'left-by-root'), 'x')
    await start()
    assert.equal((await call(`${daemon!.url}/healthz`)).body.details.isolation.mode, 'on')
    const uid = Number(fs.readFileSync(marker(), 'utf8'))
    assert.ok(uid >= 41000 && uid <= 41999, `the app's uid comes from BERTH_APP_UIDS: ${uid}`)
    assert.equal(fs.statSync(path.join(app(), 'shared')).uid, uid)
    assert.equal(fs.statSync(path.join(app(), 'shared', 'left-by-root')).uid, uid)
    const gate = fs.statSync(app())
    assert.deepEqual([gate.uid, gate.gid, gate.mode & 0o777], [0, uid, 0o750], 'the gate: berth:APP 0750')
    assert.match(daemon!.output(), /moved the app's files to its own user/, 'the pass is logged')
    const adopted = (await get('/v1/apps/hello')).node
    assert.equal(adopted.pid, before, 'the running node is re-adopted, not restarted')
    assert.equal(adopted.state, 'running')

    const r = await call(`${daemon!.url}/v1/apps/hello/restart?wait=true`, { method: 'POST', token, headers: json, body: '{}' })
    assert.equal(r.body.state, 'succeeded', r.text)
    assert.equal(await beamUid(), uid, 'after its restart the node runs as the app')
    assert.deepEqual((await get('/v1/apps/hello')).runsAs, { isolation: 'on', uid }, 'the app view names the user')
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.1.0\n')
    const logs = await call(`${daemon!.url}/v1/apps/hello/logs?lines=20`, { token })
    assert.equal(logs.status, 200, logs.text)
  })

  test('a pass interrupted before its marker is done again at the next start', async () => {
    const uid = Number(fs.readFileSync(marker(), 'utf8'))
    await daemon!.stop('SIGTERM')
    fs.rmSync(marker())
    const stray = path.join(app(), 'shared', 'made-while-interrupted')
    fs.writeFileSync(stray, 'y')
    fs.chownSync(path.join(app(), 'shared', 'left-by-root'), 0, 0)
    await start()
    await until('the marker is back', async () => fs.existsSync(marker()), 10_000, 100)
    assert.equal(Number(fs.readFileSync(marker(), 'utf8')), uid, 'the same uid: an app keeps its number')
    assert.equal(fs.statSync(stray).uid, uid)
    assert.equal(fs.statSync(path.join(app(), 'shared', 'left-by-root')).uid, uid)
    assert.equal(await beamUid(), uid, 'the node kept running as the app across the restart of berth')
  })
})

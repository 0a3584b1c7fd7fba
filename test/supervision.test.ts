// Supervision on bad days, with real releases: a crashed node is restarted with backoff, a crash loop ends
// errored and rolls back, and a kill -9 of berth itself leaves the node running and re-adopted (same pid).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { freePort, killProcessesUnder, processesUnder, spawnDaemon, startDaemon, tempDir, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

async function setup(base: string, token: string, port: number, appData: string, extraSettings: Record<string, unknown> = {}) {
  const json = { 'content-type': 'application/json' }
  assert.equal((await call(`${base}/v1/apps/hello/env`, { method: 'PUT', token, headers: json, body: JSON.stringify({ PORT: String(port), HELLO_DATA_DIR: appData }) })).status, 200)
  const s = await call(`${base}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ stableWindowMs: 1000, healthUrl: `http://127.0.0.1:${port}/health`, ...extraSettings }) })
  assert.equal(s.status, 200, s.text)
}

async function deployFixture(base: string, token: string, name: 'v1' | 'v2' | 'crash_after_boot') {
  const res = await upload(base, 'hello', fs.readFileSync((await fixture(name)).tarball), { token, query: 'deploy=true' })
  return res
}

describe('restart policy', () => {
  let d: TestDaemon
  after(async () => {
    if (!d) return
    await d.stop()
    assert.deepEqual(processesUnder(d.dataDir), [])
  })

  test('a crashed node is restarted with backoff and the restart count shows', async () => {
    d = await startDaemon()
    const port = await freePort()
    const appData = path.join(d.dataDir, 'hello-data')
    appDataDir(appData)
    await setup(d.url, d.adminToken, port, appData, { restart: { initialDelayMs: 500, maxDelayMs: 4000, maxRestarts: 3, windowMs: 60_000, rollbackWithinMs: 600_000 } })
    const v2 = await deployFixture(d.url, d.adminToken, 'v2')
    assert.equal(v2.body.deployment?.state, 'succeeded', v2.text)
    const before = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node
    await fetch(`http://127.0.0.1:${port}/crash`).catch(() => null)
    const after = await until('restart', async () => {
      const n = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node
      return n.restarts === 1 && n.pid && n.pid !== before.pid ? n : null
    })
    assert.match(after.lastExit, /exited/)
    assert.equal(await until('HTTP', async () => (await fetch(`http://127.0.0.1:${port}/`)).text()), 'hello 0.2.0\n')
    const events = (await call(`${d.url}/v1/apps/hello/events`, { token: d.adminToken })).body.events.map((e: { action: string }) => e.action)
    assert.ok(events.includes('node.exit') && events.includes('node.restart'), events.join(' '))
  })

  test('a release that always crashes after boot ends errored and is rolled back automatically', async () => {
    const res = await deployFixture(d.url, d.adminToken, 'crash_after_boot')
    // It boots and passes the 1 s stable window (it halts 6 s after boot, leaving room on a loaded host),
    // then halts again after every restart: a crash loop right after a deployment.
    assert.equal(res.body.deployment?.state, 'succeeded', res.text)
    const rolled = await until(
      'automatic rollback',
      async () => {
        const list = (await call(`${d.url}/v1/apps/hello/deployments`, { token: d.adminToken })).body.deployments
        const rb = list.find((x: { kind: string; actor: string; state: string }) => x.kind === 'rollback' && x.actor === 'berth' && x.state === 'succeeded')
        return rb
      },
      90_000,
    )
    assert.match(rolled.release, /^0\.2\.0-/)
    const events = (await call(`${d.url}/v1/apps/hello/events?limit=200`, { token: d.adminToken })).body.events.map((e: { action: string }) => e.action)
    assert.ok(events.includes('node.errored'), events.join(' '))
    const app = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body
    assert.equal(app.node.state, 'running')
    assert.match(app.current, /^0\.2\.0-/)
  })
})

describe('agent restarts', () => {
  test('kill -9 of berth leaves the node running; the restarted berth re-adopts it (same pid) and keeps supervising', async () => {
    const dataDir = tempDir()
    const port = await freePort()
    const epmd = String(await freePort())
    const appData = path.join(dataDir, 'hello-data')
    appDataDir(appData)
    let daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd })
    try {
      const token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
      await setup(daemon.url, token, port, appData, { restart: { initialDelayMs: 300, maxDelayMs: 2000, maxRestarts: 5, windowMs: 60_000, rollbackWithinMs: 0 } })
      const v1 = await deployFixture(daemon.url, token, 'v1')
      assert.equal(v1.body.deployment?.state, 'succeeded', v1.text)
      const node = (await call(`${daemon.url}/v1/apps/hello`, { token })).body.node
      await daemon.stop('SIGKILL')
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.1.0\n', 'the node outlives berth')
      daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd })
      const again = (await call(`${daemon.url}/v1/apps/hello`, { token })).body.node
      assert.equal(again.pid, node.pid, 're-adopted, not restarted')
      assert.equal(again.beamPid, node.beamPid)
      assert.equal(again.state, 'running')
      // Still supervised: a crash after the restart is noticed and repaired.
      await fetch(`http://127.0.0.1:${port}/crash`).catch(() => null)
      const restarted = await until('restart after re-adoption', async () => {
        const n = (await call(`${daemon.url}/v1/apps/hello`, { token })).body.node
        return n.pid && n.pid !== node.pid && n.restarts >= 1 ? n : null
      })
      assert.ok(restarted.pid)
      assert.equal(await until('HTTP', async () => (await fetch(`http://127.0.0.1:${port}/`)).text()), 'hello 0.1.0\n')
      // A SIGTERM of berth (systemctl restart) does not stop the node either.
      await daemon.stop('SIGTERM')
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.1.0\n')
    } finally {
      await daemon.stop('SIGKILL')
      killProcessesUnder(dataDir)
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
    assert.deepEqual(processesUnder(dataDir), [])
  })
})

describe('crash recovery of deployments', () => {
  test('kill -9 of berth inside each step: final state, current complete, app runs current, lock free', async () => {
    const dataDir = tempDir()
    const port = await freePort()
    const epmd = String(await freePort())
    const appData = path.join(dataDir, 'hello-data')
    appDataDir(appData)
    let daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd })
    const token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
    const json = { 'content-type': 'application/json' }
    try {
      await setup(daemon.url, token, port, appData, { stableWindowMs: 500 })
      const ids: Record<string, string> = {}
      for (const name of ['v1', 'v2'] as const) {
        ids[name] = (await upload(daemon.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token })).body.id
      }
      const first = await call(`${daemon.url}/v1/apps/hello/deployments?wait=true`, { method: 'POST', token, headers: json, body: JSON.stringify({ release: ids.v1 }) })
      assert.equal(first.body.state, 'succeeded', first.text)
      let target = 'v2'
      for (const step of ['migrating', 'switching', 'starting', 'verifying']) {
        await daemon.stop('SIGTERM')
        daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd, BERTH_TEST_STEP_PAUSE: `${step}:30000` })
        const started = await call(`${daemon.url}/v1/apps/hello/deployments`, { method: 'POST', token, headers: json, body: JSON.stringify({ release: ids[target] }) })
        assert.equal(started.status, 202, started.text)
        await until(`deployment in ${step}`, async () => (await call(`${daemon.url}/v1/apps/hello/deployments/${started.body.id}`, { token })).body.state === step, 30_000)
        await daemon.stop('SIGKILL')
        daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd })
        const dep = (await call(`${daemon.url}/v1/apps/hello/deployments/${started.body.id}`, { token })).body
        assert.equal(dep.state, 'failed', `${step}: ${JSON.stringify(dep)}`)
        assert.match(dep.reason, new RegExp(`^agent restarted during ${step}`))
        // One defined end: the release the deployment started from is current again, never the unverified one.
        const current = path.basename(fs.readlinkSync(path.join(dataDir, 'apps', 'hello', 'current')))
        assert.equal(current, dep.previous, `${step}: current is the previous release again`)
        if (step !== 'migrating') assert.match(dep.reason, new RegExp(`put ${dep.previous} back as current`))
        assert.ok(fs.existsSync(path.join(dataDir, 'apps', 'hello', 'releases', current, 'bin', 'hello')), 'and it is complete')
        const version = current.split('-')[0]
        const served = await until(`${step}: app serves current`, async () => {
          const text = await (await fetch(`http://127.0.0.1:${port}/`)).text()
          return text === `hello ${version}\n` ? text : null
        }, 60_000)
        assert.equal(served, `hello ${version}\n`)
        // State and processes agree: the node ends `running` (verified by someone), never stuck in `starting`.
        const app = await until(`${step}: node running and no deployment open`, async () => {
          const a = (await call(`${daemon.url}/v1/apps/hello`, { token })).body
          const open = (await call(`${daemon.url}/v1/apps/hello/deployments`, { token })).body.deployments.filter((d: { finishedAt: string | null }) => !d.finishedAt)
          return a.node.state === 'running' && open.length === 0 ? a : null
        }, 60_000)
        assert.equal(app.node.release, current)
        // The lock died with the killed agent: a new deployment is accepted at once.
        target = current === ids.v1 ? 'v2' : 'v1'
        const next = await call(`${daemon.url}/v1/apps/hello/deployments?wait=true`, { method: 'POST', token, headers: json, body: JSON.stringify({ release: ids[target] }) })
        assert.equal(next.body.state, 'succeeded', `${step}: ${next.text}`)
        target = target === 'v1' ? 'v2' : 'v1'
      }
    } finally {
      await daemon.stop('SIGKILL')
      killProcessesUnder(dataDir)
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
    assert.deepEqual(processesUnder(dataDir), [])
  })
})

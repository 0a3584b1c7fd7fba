// Deploy and rollback with real releases and real processes: migrations through eval, the atomic switch,
// the supervised node answering HTTP, automatic rollback, the per-app lock, and no process left behind.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort, processesUnder, startDaemon, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

let d: TestDaemon
let port: number
let appData: string
const ids: Record<string, string> = {}

async function get(pathname: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${pathname}`)
  return res.text()
}

async function put(pathname: string, body: unknown) {
  return call(`${d.url}${pathname}`, { method: 'PUT', token: d.adminToken, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
}

async function deploy(release: string, opts: { wait?: boolean } = { wait: true }) {
  return call(`${d.url}/v1/apps/hello/deployments${opts.wait ? '?wait=true' : ''}`, { method: 'POST', token: d.adminToken, body: JSON.stringify({ release }), headers: { 'content-type': 'application/json' } })
}

function current(): string {
  return path.basename(fs.readlinkSync(path.join(d.dataDir, 'apps', 'hello', 'current')))
}

function migrations(): string[] {
  const f = path.join(appData, 'migrations.log')
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : []
}

before(async () => {
  d = await startDaemon()
  port = await freePort()
  appData = path.join(d.dataDir, 'hello-data')
  appDataDir(appData)
  const env = await put('/v1/apps/hello/env', { PORT: String(port), HELLO_DATA_DIR: appData, SECRET_KEY_BASE: 'not-to-be-logged' })
  assert.equal(env.status, 200, env.text)
  const settings = await put('/v1/apps/hello/settings', { stableWindowMs: 1500, bootTimeoutMs: 30_000, migrateTimeoutMs: 4000, healthUrl: `http://127.0.0.1:${port}/health` })
  assert.equal(settings.status, 200, settings.text)
  for (const name of ['v1', 'v2', 'crash_on_boot', 'migrate_fail', 'migrate_hang'] as const) {
    const res = await upload(d.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
    assert.equal(res.status, 201, res.text)
    ids[name] = res.body.id
  }
})

after(async () => {
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [], 'no BEAM, epmd or run_erl is left behind')
})

describe('deploy', () => {
  test('v1 deploys, migrates and answers HTTP', async () => {
    const res = await deploy(ids.v1!)
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.state, 'succeeded')
    assert.deepEqual(res.body.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`), ['migrating:ok', 'switching:ok', 'starting:ok', 'verifying:ok'])
    assert.match(res.body.steps[0].output, /migrated 0\.1\.0/)
    assert.equal(await get('/'), 'hello 0.1.0\n')
    assert.equal(current(), ids.v1)
    assert.deepEqual(migrations(), ['migrated 0.1.0'])
    const app = await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })
    assert.equal(app.body.node.state, 'running')
    assert.equal(app.body.current, ids.v1)
    // The verify step checked the health URL: that is the first health check, not "not checked yet".
    assert.equal(app.body.node.health?.ok, true, JSON.stringify(app.body.node.health))
    assert.equal(app.body.node.health.url, `http://127.0.0.1:${port}/health`)
    assert.ok(Date.parse(app.body.node.health.lastCheckAt) >= Date.parse(res.body.createdAt))
    assert.ok(app.body.node.beamPid > 0)
    assert.ok(fs.existsSync(`/proc/${app.body.node.beamPid}`))
    // The node writes only into the app's own directories, never into the read-only release.
    assert.ok(!fs.existsSync(path.join(d.dataDir, 'apps', 'hello', 'releases', ids.v1!, 'tmp')))
    assert.ok(fs.existsSync(path.join(d.dataDir, 'apps', 'hello', 'shared', 'tmp')))
  })

  test('v2 migrates exactly once and serves', async () => {
    const started = await deploy(ids.v2!, { wait: false })
    assert.equal(started.status, 202)
    assert.equal(started.headers.get('location'), `/v1/apps/hello/deployments/${started.body.id}`)
    let dep = started.body
    for (let i = 0; i < 300 && !['succeeded', 'failed', 'rolled_back'].includes(dep.state); i++) {
      await new Promise((r) => setTimeout(r, 100))
      dep = (await call(`${d.url}/v1/apps/hello/deployments/${started.body.id}`, { token: d.adminToken })).body
    }
    assert.equal(dep.state, 'succeeded', JSON.stringify(dep))
    assert.equal(await get('/'), 'hello 0.2.0\n')
    assert.deepEqual(migrations(), ['migrated 0.1.0', 'migrated 0.2.0'])
  })

  test('a release that crashes on boot is rolled back and v2 keeps serving', async () => {
    const res = await deploy(ids.crash_on_boot!)
    assert.equal(res.status, 422)
    assert.equal(res.body.code, 'DEPLOYMENT_ROLLED_BACK')
    const dep = res.body.deployment
    assert.equal(dep.state, 'rolled_back')
    assert.match(dep.reason, /exited/)
    assert.match(dep.reason, new RegExp(`rolled back to ${ids.v2}`))
    assert.equal(dep.steps.at(-1).name, 'rollback')
    // Why it died is in the verifying step: the end of the node's console log, where it said so.
    const verifying = dep.steps.find((s: { name: string }) => s.name === 'verifying')
    assert.match(verifying.output, /last \d+ lines of the node's console log:\n[^]*halting \(crash_on_boot\)/)
    assert.doesNotMatch(dep.reason, /console log/, 'the reason stays one line')
    assert.equal(current(), ids.v2)
    assert.equal(await get('/'), 'hello 0.2.0\n')
  })

  test('a failing migration ends failed with current and the node untouched', async () => {
    const before = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node.pid
    const res = await deploy(ids.migrate_fail!)
    assert.equal(res.status, 422)
    assert.equal(res.body.code, 'DEPLOYMENT_FAILED')
    assert.equal(res.body.deployment.state, 'failed')
    assert.deepEqual(res.body.deployment.steps.map((s: { name: string }) => s.name), ['migrating'])
    assert.match(res.body.deployment.steps[0].output, /RuntimeError|raise|migration failed/i)
    assert.equal(current(), ids.v2)
    assert.equal((await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node.pid, before, 'the running node was not restarted')
    assert.equal(await get('/'), 'hello 0.2.0\n')
  })

  test('a hanging migration is killed at its timeout', async () => {
    const started = Date.now()
    const res = await deploy(ids.migrate_hang!)
    assert.equal(res.body.code, 'DEPLOYMENT_FAILED')
    assert.match(res.body.deployment.reason, /timed out after 4000 ms/)
    assert.ok(Date.now() - started < 15_000)
    assert.equal(processesUnder(path.join(d.dataDir, 'apps', 'hello', 'releases', ids.migrate_hang!)).length, 0, 'the eval process group is gone')
    assert.equal(current(), ids.v2)
    assert.equal(await get('/'), 'hello 0.2.0\n')
  })

  test('DELETE of a release an unfinished deployment names is refused (409), as target and as previous', async () => {
    // migrate_hang holds the deployment in `migrating` until its 4 s timeout: the window a DELETE once used.
    const started = await deploy(ids.migrate_hang!, { wait: false })
    assert.equal(started.status, 202, started.text)
    const previous = started.body.previous as string
    for (const id of [ids.migrate_hang!, previous]) {
      const del = await call(`${d.url}/v1/apps/hello/releases/${id}`, { method: 'DELETE', token: d.adminToken })
      assert.equal(del.status, 409, `${id}: ${del.text}`)
      assert.equal(del.body.code, 'RELEASE_IS_CURRENT')
      assert.ok(fs.existsSync(path.join(d.dataDir, 'apps', 'hello', 'releases', id, 'bin', 'hello')), 'its files are all there')
    }
    const done = await waitDeployment(started.body.id)
    assert.equal(done.state, 'failed')
    assert.equal(current(), previous, 'current still names a complete release')
    assert.equal(await get('/'), `hello ${previous.split('-')[0]}\n`)
  })

  test('two concurrent deploys: one runs, the other gets 409 naming it', async () => {
    const [a, b] = await Promise.all([deploy(ids.v1!, { wait: false }), deploy(ids.v1!, { wait: false })])
    const statuses = [a.status, b.status].sort()
    assert.deepEqual(statuses, [202, 409])
    const conflict = a.status === 409 ? a : b
    const winner = a.status === 202 ? a : b
    assert.equal(conflict.body.code, 'DEPLOYMENT_IN_PROGRESS')
    assert.equal(conflict.body.deployment, winner.body.id)
    const done = await waitDeployment(winner.body.id)
    assert.equal(done.state, 'succeeded')
    assert.equal(await get('/'), 'hello 0.1.0\n')
  })
})

async function waitDeployment(id: string) {
  for (;;) {
    const dep = (await call(`${d.url}/v1/apps/hello/deployments/${id}`, { token: d.adminToken })).body
    if (['succeeded', 'failed', 'rolled_back'].includes(dep.state)) return dep
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe('rollback', () => {
  test('rollback to v1 after v2: serves v1, warns about v2 migration, runs no migration', async () => {
    const v2 = await deploy(ids.v2!)
    assert.equal(v2.body.state, 'succeeded')
    const migrated = migrations().length
    const operator = d.token('oncall', ['operate'])
    const res = await call(`${d.url}/v1/apps/hello/rollback?wait=true`, { method: 'POST', token: operator, body: JSON.stringify({ to: '0.1.0' }), headers: { 'content-type': 'application/json' } })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.kind, 'rollback')
    assert.equal(res.body.release, ids.v1)
    assert.equal(res.body.warnings.length, 1)
    assert.match(res.body.warnings[0], /20240101000000_add_things\.exs/)
    assert.equal(res.body.steps[0].state, 'skipped', 'no migration on rollback')
    assert.equal(await get('/'), 'hello 0.1.0\n')
    assert.equal(migrations().length, migrated)
    assert.equal(current(), ids.v1)
  })

  test('rollback {} goes to the last release that succeeded before the current one', async () => {
    const res = await call(`${d.url}/v1/apps/hello/rollback?wait=true`, { method: 'POST', token: d.adminToken, body: '{}', headers: { 'content-type': 'application/json' } })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.release, ids.v2)
    assert.equal(await get('/'), 'hello 0.2.0\n')
  })

  test('the current release cannot be deleted; history and events record who did what', async () => {
    const del = await call(`${d.url}/v1/apps/hello/releases/${current()}`, { method: 'DELETE', token: d.adminToken })
    assert.equal(del.status, 409)
    const list = await call(`${d.url}/v1/apps/hello/deployments`, { token: d.adminToken })
    assert.ok(list.body.deployments.length >= 7)
    const events = await call(`${d.url}/v1/apps/hello/events`, { token: d.adminToken })
    const actions = events.body.events.map((e: { action: string; actor: string }) => `${e.action}:${e.actor}`)
    assert.ok(actions.includes('rollback:oncall'), actions.join(' '))
    assert.ok(actions.includes('env.replace:initial-admin'))
    assert.ok(!JSON.stringify(events.body).includes('not-to-be-logged'), 'env values never reach the audit trail')
    const env = await call(`${d.url}/v1/apps/hello/env`, { token: d.adminToken })
    assert.deepEqual(env.body.names, ['HELLO_DATA_DIR', 'PORT', 'SECRET_KEY_BASE'])
  })

  test('/metrics counts the deployments that happened', async () => {
    const reader = d.token('prometheus', ['read'])
    const res = await call(`${d.url}/metrics`, { token: reader })
    assert.equal(res.status, 200)
    const count = (labels: string) => Number(new RegExp(`^berth_deployments_total\\{${labels}\\} (\\d+)`, 'm').exec(res.text)?.[1] ?? 0)
    assert.ok(count('app="hello",kind="deploy",outcome="succeeded"') >= 3, res.text.slice(0, 500))
    assert.equal(count('app="hello",kind="deploy",outcome="rolled_back"'), 1)
    // migrate_fail, migrate_hang, and migrate_hang again in the DELETE-while-migrating test.
    assert.equal(count('app="hello",kind="deploy",outcome="failed"'), 3)
    assert.match(res.text, /berth_deployment_step_duration_seconds_count\{step="migrating"\} \d+/)
    assert.match(res.text, /berth_app_state\{app="hello",state="running"\} 1/)
    assert.match(res.text, /berth_uploads_total\{app="hello",outcome="ok"\} 5/)
    assert.match(res.text, /berth_process_resident_memory_bytes \d+/)
    assert.equal((await call(`${d.url}/metrics`)).status, 401)
  })

  test('stop, start and restart: steps named after what they do, a start during a stop refused', async () => {
    const stopping = await call(`${d.url}/v1/apps/hello/stop`, { method: 'POST', token: d.adminToken })
    assert.equal(stopping.status, 202, stopping.text)
    // The node is still up while it stops: the answer is that a stop is under way, not "already running".
    const early = await call(`${d.url}/v1/apps/hello/start`, { method: 'POST', token: d.adminToken })
    assert.equal(early.status, 409, early.text)
    assert.equal(early.body.code, 'DEPLOYMENT_IN_PROGRESS')
    assert.equal(early.body.kind, 'stop')
    assert.equal(early.body.deployment, stopping.body.id)
    assert.match(early.body.detail, /busy with a stop of the node/)
    const stopped = await until('stop finished', async () => {
      const dep = (await call(`${d.url}/v1/apps/hello/deployments/${stopping.body.id}`, { token: d.adminToken })).body
      return dep.finishedAt ? dep : null
    })
    assert.equal(stopped.state, 'succeeded')
    assert.deepEqual(stopped.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`), ['stopping:ok'])
    const app = await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })
    assert.equal(app.body.node.state, 'stopped')
    assert.match(app.body.node.lastExit, /stopped by stop \((exited with code \d+|killed by SIG\w+)\)$/)
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`))
    const start = await call(`${d.url}/v1/apps/hello/start?wait=true`, { method: 'POST', token: d.adminToken })
    assert.equal(start.status, 200, start.text)
    assert.deepEqual(start.body.steps.map((s: { name: string }) => s.name), ['starting', 'verifying'])
    assert.equal(await get('/'), 'hello 0.2.0\n')
    const restart = await call(`${d.url}/v1/apps/hello/restart?wait=true`, { method: 'POST', token: d.adminToken })
    assert.equal(restart.status, 200, restart.text)
    assert.deepEqual(restart.body.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`), ['stopping:ok', 'starting:ok', 'verifying:ok'])
    const after = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node
    assert.equal(after.state, 'running')
    assert.equal(after.restarts, 0, 'an asked-for restart is not a crash restart')
    assert.match(after.lastExit, /stopped by restart \(/, 'the restart shows as asked for, not as a bare exit code')
    assert.equal(await get('/'), 'hello 0.2.0\n')
  })
})


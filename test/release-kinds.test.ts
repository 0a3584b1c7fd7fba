// Releases that do not follow berth's own conventions, deployed by a real daemon with default settings: an
// app whose modules are not its name camelized (:myapp, MyApp.*), one released under another name (:shop as
// storefront), and a rebar3/relx release. Migrations run exactly once or are loudly absent, never silently.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture, type FixtureName } from './helpers/fixtures.js'
import { call, upload, type Answer } from './helpers/http.js'

let d: TestDaemon
const json = { 'content-type': 'application/json' }
const apps: Record<string, { port: number; marker: string; release: string }> = {}

async function put(pathname: string, body: unknown): Promise<Answer> {
  return call(`${d.url}${pathname}`, { method: 'PUT', token: d.adminToken, body: JSON.stringify(body), headers: json })
}

async function post(pathname: string, body: unknown = {}): Promise<Answer> {
  return call(`${d.url}${pathname}`, { method: 'POST', token: d.adminToken, body: JSON.stringify(body), headers: json })
}

function deploy(app: string, release = apps[app]!.release): Promise<Answer> {
  return post(`/v1/apps/${app}/deployments?wait=true`, { release })
}

function marker(app: string): string[] {
  const f = path.join(apps[app]!.marker, 'migrations.log')
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : []
}

function current(app: string): string | null {
  try {
    return path.basename(fs.readlinkSync(path.join(d.dataDir, 'apps', app, 'current')))
  } catch {
    return null
  }
}

async function served(app: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${apps[app]!.port}/`, { signal: AbortSignal.timeout(3000) })
  return res.text()
}

async function setUp(app: string, name: FixtureName): Promise<void> {
  const port = await freePort()
  const dir = path.join(d.dataDir, `${app}-marker`)
  fs.mkdirSync(dir)
  assert.equal((await put(`/v1/apps/${app}/env`, { PORT: String(port), MARKER_DIR: dir })).status, 200)
  const settings = await put(`/v1/apps/${app}/settings`, { stableWindowMs: 500, bootTimeoutMs: 60_000, healthUrl: `http://127.0.0.1:${port}/` })
  assert.equal(settings.status, 200, settings.text)
  const up = await upload(d.url, app, fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
  assert.equal(up.status, 201, up.text)
  apps[app] = { port, marker: dir, release: up.body.id }
}

before(async () => {
  d = await startDaemon()
  await setUp('myapp', 'myapp')
  await setUp('storefront', 'storefront')
  await setUp('relx_hello', 'relx')
})

after(async () => {
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [], 'no BEAM, epmd or run_erl is left behind')
})

describe('migrations found from the release, not from the app name', () => {
  test('app :myapp with modules MyApp.*: MyApp.Release.migrate() runs exactly once', async () => {
    const res = await deploy('myapp')
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.state, 'succeeded')
    const step = res.body.steps[0]
    assert.equal(`${step.name}:${step.state}`, 'migrating:ok', step.output)
    assert.match(step.output, /MyApp\.Release\.migrate\/0 \(application myapp\)/)
    assert.match(step.output, /\$ bin\/myapp eval "MyApp\.Release\.migrate\(\)"/)
    assert.deepEqual(marker('myapp'), ['myapp migrated 1.0.0'])
    assert.deepEqual(res.body.warnings, [])
    assert.equal(await served('myapp'), 'myapp 1.0.0\n')
  })

  test('app :shop released as storefront: Shop.Release is chosen, Shop.Cache.Release (no migrate/0) is not', async () => {
    const res = await deploy('storefront')
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.steps[0].state, 'ok', res.body.steps[0].output)
    assert.match(res.body.steps[0].output, /\$ bin\/storefront eval "Shop\.Release\.migrate\(\)"/)
    assert.doesNotMatch(res.body.steps[0].output, /Cache/)
    assert.deepEqual(marker('storefront'), ['shop migrated 2.0.0'])
    assert.deepEqual(res.body.warnings, [])
    assert.equal(await served('storefront'), 'shop 2.0.0\n')
  })
})

describe('requireMigration', () => {
  test('a release without a migration fails at migrating before anything changes', async () => {
    // The relx release has no *.Release module.
    assert.equal((await put('/v1/apps/relx_hello/settings', { requireMigration: true })).status, 200)
    const res = await deploy('relx_hello')
    assert.equal(res.status, 422, res.text)
    assert.equal(res.body.code, 'DEPLOYMENT_FAILED')
    const dep = res.body.deployment
    assert.equal(dep.state, 'failed')
    assert.equal(dep.reasonCode, 'MIGRATION_REQUIRED')
    assert.match(dep.reason, /no migration would run .*requireMigration.*untouched/)
    assert.deepEqual(dep.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`), ['migrating:failed'])
    assert.equal(current('relx_hello'), null, 'current was not switched')
    assert.equal((await call(`${d.url}/v1/apps/relx_hello`, { token: d.adminToken })).body.node.state, 'stopped', 'no node was started')
    assert.deepEqual(processesUnder(path.join(d.dataDir, 'apps', 'relx_hello')), [])
    assert.equal((await put('/v1/apps/relx_hello/settings', { requireMigration: false })).status, 200)
  })
})

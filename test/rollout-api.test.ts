// The agent's side of fleet rollouts: a deploy without migrating (recorded as skipped, with a warning, never
// silently), the rollout id on deployments and rollbacks with its filter, and the dry run of migrate: false.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { freePort, processesUnder, runCli, startDaemon, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'

let d: TestDaemon
let appData: string
const ids: Record<string, string> = {}
const json = { 'content-type': 'application/json' }

const post = (pathname: string, body: unknown) => call(`${d.url}/v1/apps/hello${pathname}`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify(body) })
const get = (pathname: string) => call(`${d.url}/v1/apps/hello${pathname}`, { token: d.adminToken })
const migrations = () => fs.readFileSync(path.join(appData, 'migrations.log'), 'utf8').trim().split('\n')

before(async () => {
  d = await startDaemon()
  const port = await freePort()
  appData = path.join(d.dataDir, 'hello-data')
  appDataDir(appData)
  await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port), HELLO_DATA_DIR: appData }) })
  // requireMigration on: an explicit migrate: false is still allowed, because the caller said so.
  const s = await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 500, bootTimeoutMs: 60_000, requireMigration: true }) })
  assert.equal(s.status, 200, s.text)
  for (const name of ['v1', 'v2'] as const) {
    const res = await upload(d.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
    assert.equal(res.status, 201, res.text)
    ids[name] = res.body.id
  }
})

after(async () => {
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

test('a rollout id that is not a short token is refused with a problem, and nothing is recorded', async () => {
  for (const bad of ['', 'a b', 'x'.repeat(65), '../etc', 'r;rm']) {
    const res = await post('/deployments', { release: ids.v1, rollout: bad })
    assert.equal(res.status, 400, res.text)
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/)
    assert.equal(res.body.code, 'VALIDATION_FAILED')
    assert.match(res.body.detail, /rollout/)
  }
  const rb = await post('/rollback', { rollout: 'no good' })
  assert.equal(rb.body.code, 'VALIDATION_FAILED')
  const list = await get('/deployments?rollout=a%20b')
  assert.equal(list.body.code, 'VALIDATION_FAILED')
  assert.deepEqual((await get('/deployments')).body.deployments, [])
})

test('a deploy carries its rollout id in its record and the list', async () => {
  const res = await post('/deployments?wait=true', { release: ids.v1, rollout: 'fleet-1.a_b' })
  assert.equal(res.status, 200, res.text)
  assert.equal(res.body.rollout, 'fleet-1.a_b')
  assert.equal(res.body.steps[0].state, 'ok')
  assert.equal((await get(`/deployments/${res.body.id}`)).body.rollout, 'fleet-1.a_b')
  assert.deepEqual(migrations(), ['migrated 0.1.0'])
})

test('the dry run of migrate: false says the migration is skipped and why', async () => {
  const res = await post('/deployments?dryRun=true', { release: ids.v2, migrate: false })
  assert.equal(res.status, 200, res.text)
  assert.equal(res.body.steps[0].runs, 'skipped')
  assert.match(res.body.steps[0].detail, /^migrate: false requested: Hello\.Release\.migrate\(\) would not run/)
  assert.equal(res.body.migrate.expr, null)
  assert.deepEqual(res.body.blockers, [], 'requireMigration does not block an explicit migrate: false')
  assert.ok(res.body.warnings.some((w: string) => /no migration would run: migrate: false requested/.test(w)), res.text)
  const plain = await post('/deployments?dryRun=true', { release: ids.v2 })
  assert.equal(plain.body.steps[0].runs, 'always')
})

test('migrate: false skips the migration, records the step as skipped with the reason, and warns', async () => {
  const res = await post('/deployments?wait=true', { release: ids.v2, migrate: false, rollout: 'r2' })
  assert.equal(res.status, 200, res.text)
  assert.equal(res.body.state, 'succeeded')
  assert.deepEqual(res.body.steps[0], { ...res.body.steps[0], name: 'migrating', state: 'skipped', output: 'migrate: false requested' })
  assert.equal(res.body.warnings.length, 1)
  assert.match(res.body.warnings[0], new RegExp(`no migration ran for ${ids.v2}: migrate: false requested by rollout r2 \\(Hello\\.Release\\.migrate\\(\\) was not run\\)`))
  assert.deepEqual(migrations(), ['migrated 0.1.0'], 'v2 did not migrate')
  const events = await get('/events')
  assert.ok(events.body.events.some((e: { detail?: { warnings?: string[] } }) => e.detail?.warnings?.some((w) => w.includes('migrate: false requested'))), 'the audit trail has the warning')
})

test('a rollback carries the rollout id, and the list filters by rollout', async () => {
  const rb = await post('/rollback?wait=true', { to: ids.v1, rollout: 'r2' })
  assert.equal(rb.status, 200, rb.text)
  assert.equal(rb.body.kind, 'rollback')
  assert.equal(rb.body.rollout, 'r2')
  const r2 = (await get('/deployments?rollout=r2')).body.deployments
  assert.deepEqual(r2.map((x: { kind: string; rollout: string }) => `${x.kind}:${x.rollout}`), ['rollback:r2', 'deploy:r2'])
  assert.equal((await get('/deployments')).body.deployments.length, 3)
  assert.deepEqual((await get('/deployments?rollout=none-such')).body.deployments, [])
})

test('an upload with ?deploy=true takes a bad rollout id or migrate value as a problem, and deploys nothing', async () => {
  const before = (await get('/deployments')).body.deployments.length
  for (const query of ['deploy=true&rollout=a%20b', `deploy=true&rollout=${'x'.repeat(65)}`, 'deploy=true&migrate=maybe']) {
    const res = await upload(d.url, 'hello', fs.readFileSync((await fixture('v2')).tarball), { token: d.adminToken, query })
    assert.equal(res.status, 400, `${query}: ${res.text}`)
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/)
    assert.equal(res.body.code, 'VALIDATION_FAILED')
    assert.match(res.body.detail, /rollout|migrate/)
  }
  assert.equal((await get('/deployments')).body.deployments.length, before)
})

test('an upload with ?deploy=true&migrate=false&rollout=ID deploys without migrating, tagged with the rollout', async () => {
  const res = await upload(d.url, 'hello', fs.readFileSync((await fixture('v2')).tarball), { token: d.adminToken, query: 'deploy=true&migrate=false&rollout=up-1' })
  assert.equal(res.status, 200, res.text)
  const dep = res.body.deployment
  assert.equal(dep.state, 'succeeded')
  assert.equal(dep.release, ids.v2)
  assert.equal(dep.rollout, 'up-1')
  assert.deepEqual(dep.steps[0], { ...dep.steps[0], name: 'migrating', state: 'skipped', output: 'migrate: false requested' })
  assert.match(dep.warnings[0], /migrate: false requested by rollout up-1/)
  assert.equal((await get(`/deployments/${dep.id}`)).body.rollout, 'up-1')
  assert.deepEqual(migrations(), ['migrated 0.1.0'], 'v2 did not migrate')
})

test('berth deploy --no-migrate --rollout ID: with --release and after uploading FILE, the step is skipped with its reason and the id recorded', async () => {
  const env = { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken }
  const dry = await runCli(['deploy', '--app', 'hello', '--release', ids.v1!, '--dry-run', '--no-migrate', '--json'], env)
  assert.equal(dry.code, 0, dry.stderr)
  assert.equal(JSON.parse(dry.stdout).steps[0].runs, 'skipped', 'the dry run is of the deploy --no-migrate would start')
  const planned = await runCli(['plan', 'hello', ids.v1!, '--no-migrate'], env)
  assert.equal(planned.code, 0, planned.stderr)
  assert.match(planned.stdout, /^ {2}migrating +skipped +.*migrate: false/m, 'berth plan --no-migrate plans the same deploy')
  const plannedWith = await runCli(['plan', 'hello', ids.v1!], env)
  assert.doesNotMatch(plannedWith.stdout, /^ {2}migrating +skipped/m)

  const byId = await runCli(['deploy', '--app', 'hello', '--release', ids.v1!, '--no-migrate', '--rollout', 'cli-1', '--json'], env)
  assert.equal(byId.code, 0, byId.stderr)
  const first = JSON.parse(byId.stdout)
  assert.equal(first.rollout, 'cli-1')
  assert.deepEqual(first.steps[0], { ...first.steps[0], name: 'migrating', state: 'skipped', output: 'migrate: false requested' })
  assert.match(byId.stderr, /migrating \.\.\. skipped/)

  const file = (await fixture('v2')).tarball
  const byFile = await runCli(['deploy', file, '--app', 'hello', '--no-migrate', '--rollout', 'cli-2'], env)
  assert.equal(byFile.code, 0, byFile.stderr)
  assert.match(byFile.stdout, /warning: no migration ran for .*: migrate: false requested by rollout cli-2/)
  const [last] = (await get('/deployments?rollout=cli-2')).body.deployments
  assert.equal(last.release, ids.v2)
  assert.deepEqual(last.steps[0], { ...last.steps[0], name: 'migrating', state: 'skipped', output: 'migrate: false requested' })
  assert.deepEqual(migrations(), ['migrated 0.1.0'], 'neither deploy migrated')

  const bad = await runCli(['deploy', '--app', 'hello', '--release', ids.v1!, '--rollout', 'a b'], env)
  assert.notEqual(bad.code, 0)
  assert.match(bad.stderr, /VALIDATION_FAILED|rollout/)
  const misuse = await runCli(['deploy', file, '--app', 'hello', '--no-deploy', '--no-migrate'], env)
  assert.equal(misuse.code, 2, misuse.stderr)
  assert.deepEqual((await get('/deployments?rollout=cli-1')).body.deployments.length, 1)
})

// The dry run of a deploy with real releases and a real node: the plan names the new Ecto migration, the
// migrate expression and config diffs, and afterwards current, the deployments, the node and the lock are as before.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import * as tar from 'tar'
import { ertsVersion, otpVersion } from '../src/releases/layout.js'
import { unifiedDiff } from '../src/releases/line-diff.js'
import { freePort, processesUnder, runCli, startDaemon, tempDir, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'

let d: TestDaemon
const ids: Record<string, string> = {}
const scratch = tempDir('berth-plan-')

function json(method: string, pathname: string, body?: unknown) {
  return call(`${d.url}${pathname}`, { method, token: d.adminToken, body: body === undefined ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } })
}

const plan = (release: string) => json('POST', '/v1/apps/hello/deployments?dryRun=true', { release })
const current = () => path.basename(fs.readlinkSync(path.join(d.dataDir, 'apps', 'hello', 'current')))

/** v2 with one more line in vm.args: a real release whose config differs from v2's. */
async function v2WithVmArgs(): Promise<Buffer> {
  const dir = path.join(scratch, 'v2-vmargs')
  fs.mkdirSync(dir)
  await tar.x({ file: (await fixture('v2')).tarball, cwd: dir })
  fs.appendFileSync(path.join(dir, 'releases', '0.2.0', 'vm.args'), '+sbwt none\n')
  const out = path.join(scratch, 'v2-vmargs.tar.gz')
  await tar.c({ gzip: true, file: out, cwd: dir }, fs.readdirSync(dir))
  return fs.readFileSync(out)
}

before(async () => {
  d = await startDaemon()
  const port = await freePort()
  const appData = path.join(d.dataDir, 'hello-data')
  appDataDir(appData)
  assert.equal((await json('PUT', '/v1/apps/hello/env', { PORT: String(port), HELLO_DATA_DIR: appData })).status, 200)
  assert.equal((await json('PUT', '/v1/apps/hello/settings', { stableWindowMs: 1000, bootTimeoutMs: 30_000, healthUrl: `http://127.0.0.1:${port}/health` })).status, 200)
  for (const name of ['v1', 'v2'] as const) {
    const res = await upload(d.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
    assert.equal(res.status, 201, res.text)
    ids[name] = res.body.id
  }
  const vm = await upload(d.url, 'hello', await v2WithVmArgs(), { token: d.adminToken })
  assert.equal(vm.status, 201, vm.text)
  ids.vmargs = vm.body.id
})

after(async () => {
  await d.stop()
  fs.rmSync(scratch, { recursive: true, force: true })
  assert.deepEqual(processesUnder(d.dataDir), [], 'no BEAM, epmd or run_erl is left behind')
})

describe('dry run', () => {
  test('before any deploy: a first deploy, every migration added, nothing recorded', async () => {
    const res = await plan(ids.v1!)
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.dryRun, true)
    assert.equal(res.body.firstDeploy, true)
    assert.equal(res.body.current, null)
    assert.ok(res.body.warnings.some((w: string) => /first deploy/.test(w)))
    assert.equal(res.body.steps.find((s: { name: string }) => s.name === 'rollback').runs, 'on-failure')
    assert.ok(!fs.existsSync(path.join(d.dataDir, 'apps', 'hello', 'current')), 'no current appeared')
    assert.deepEqual((await json('GET', '/v1/apps/hello/deployments')).body.deployments, [])
  })

  test('v2 over v1 lists the new Ecto migration and the migrate expression, and changes nothing', async () => {
    const first = await json('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })
    assert.equal(first.status, 200, first.text)
    const before = (await json('GET', '/v1/apps/hello')).body
    const history = (await json('GET', '/v1/apps/hello/deployments')).body.deployments
    assert.equal(before.node.state, 'running')

    const res = await plan(ids.v2!)
    assert.equal(res.status, 200, res.text)
    const p = res.body
    assert.equal(p.release, ids.v2)
    assert.equal(p.current, ids.v1)
    assert.equal(p.firstDeploy, false)
    assert.equal(p.alreadyCurrent, false)
    assert.deepEqual(p.migrations, { added: ['20240101000000_add_things.exs'], missing: [] })
    assert.deepEqual(p.migrate, { expr: 'Hello.Release.migrate()', reason: null })
    assert.deepEqual(p.steps.map((s: { name: string; runs: string }) => `${s.name}:${s.runs}`), ['migrating:always', 'switching:always', 'starting:always', 'verifying:always', 'rollback:on-failure'])
    assert.match(p.steps[0].detail, /bin\/hello eval "Hello\.Release\.migrate\(\)"/)
    assert.match(p.steps[2].detail, new RegExp(`pid ${before.node.pid}`))
    assert.deepEqual(p.config, [], 'v1 and v2 ship the same vm.args, sys.config and env.sh')
    assert.deepEqual(p.erts, { from: '13.1.5', to: '13.1.5', changed: false })
    assert.deepEqual(p.otp, { from: '25', to: '25', changed: false })
    assert.equal(p.commands.start, 'start_iex')
    assert.deepEqual(p.blockers, [])
    assert.equal(p.node.pid, before.node.pid)

    // Nothing changed: current, the history, the node, and no lock (a real deploy right after succeeds).
    assert.equal(current(), ids.v1)
    assert.deepEqual((await json('GET', '/v1/apps/hello/deployments')).body.deployments, history)
    const afterwards = (await json('GET', '/v1/apps/hello')).body
    assert.equal(afterwards.node.pid, before.node.pid)
    assert.equal(afterwards.node.beamPid, before.node.beamPid)
    assert.equal(afterwards.node.state, 'running')
    assert.equal(d.server.services.deployments.lockedBy('hello'), null)
    const real = await json('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v2 })
    assert.equal(real.status, 200, real.text)
    assert.equal(real.body.state, 'succeeded')
    assert.equal(current(), ids.v2)
  })

  test('a dry run of the current, running release says so', async () => {
    const res = await plan(ids.v2!)
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.alreadyCurrent, true)
    assert.ok(res.body.warnings.some((w: string) => w.includes(`release ${ids.v2} is already current and running`)), res.text)
    assert.deepEqual(res.body.migrations, { added: [], missing: [] })
  })

  test('going back to v1 names the migration v1 lacks; a changed vm.args comes with its diff', async () => {
    const back = (await plan(ids.v1!)).body
    assert.deepEqual(back.migrations, { added: [], missing: ['20240101000000_add_things.exs'] })
    assert.ok(back.warnings.some((w: string) => w.includes('20240101000000_add_things.exs')))

    const vm = (await plan(ids.vmargs!)).body
    assert.equal(vm.config.length, 1, JSON.stringify(vm.config))
    assert.equal(vm.config[0].file, 'vm.args')
    assert.equal(vm.config[0].change, 'changed')
    assert.match(vm.config[0].diff, /^\+\+sbwt none$/m)
    assert.match(vm.config[0].diff, /^@@ -\d+,\d+ \+\d+,\d+ @@$/m)
  })

  test('an unknown release is a 404', async () => {
    const missing = await plan('9.9.9')
    assert.equal(missing.status, 404)
    assert.equal(missing.body.code, 'RELEASE_NOT_FOUND')
  })

  test('berth plan prints the plan, --json parses, deploy --dry-run is the same', async () => {
    const env = { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken }
    const text = await runCli(['plan', 'hello', ids.v1!], env)
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, new RegExp(`plan: deploy hello ${ids.v1} over ${ids.v2}`))
    assert.match(text.stdout, /migrate: Hello\.Release\.migrate\(\)/)
    assert.match(text.stdout, /migrations current has that the release lacks: 20240101000000_add_things\.exs/)
    assert.match(text.stdout, /runtime: ERTS 13\.1\.5, OTP 25 \(unchanged\)/)
    const asJson = await runCli(['plan', 'hello', ids.vmargs!, '--json'], env)
    assert.equal(asJson.code, 0, asJson.stderr)
    const parsed = JSON.parse(asJson.stdout)
    assert.equal(parsed.dryRun, true)
    assert.equal(parsed.config[0].file, 'vm.args')
    const dry = await runCli(['deploy', '--app', 'hello', '--release', ids.v1!, '--dry-run'], env)
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /a dry run, nothing was changed/)
    assert.equal(current(), ids.v2)
    const usage = await runCli(['plan', 'hello'], env)
    assert.equal(usage.code, 2)
  })

  test('a deploy in progress is a blocker, with the code the deploy would answer', async () => {
    const started = await json('POST', '/v1/apps/hello/deployments', { release: ids.v1 })
    assert.equal(started.status, 202, started.text)
    const p = (await plan(ids.v2!)).body
    assert.deepEqual(p.blockers.map((b: { code: string }) => b.code), ['DEPLOYMENT_IN_PROGRESS'])
    const cli = await runCli(['plan', 'hello', ids.v2!], { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken })
    assert.equal(cli.code, 1)
    assert.match(cli.stdout, /would fail: .*\(DEPLOYMENT_IN_PROGRESS\)/)
    const { deployer, deployments } = d.server.services
    const done = (await deployer.finished(started.body.id)) ?? deployments.get('hello', started.body.id)
    assert.equal(done?.state, 'succeeded', JSON.stringify(done))
  })

  test('with the proxy on, the plan lists the steps the deploy then records, in order, and says the old instance keeps serving', { timeout: 240_000 }, async () => {
    type S = { name: string; runs?: string; detail?: string }
    const names = (steps: S[]) => steps.map((s) => s.name)
    // The steps a plan promises on every deploy; `rollback` only appears in a record after a failure.
    const promised = (steps: S[]) => names(steps.filter((s) => s.runs !== 'on-failure'))
    const deploy = async (release: string) => {
      const res = await json('POST', '/v1/apps/hello/deployments?wait=true', { release })
      assert.equal(res.status, 200, res.text)
      return res.body
    }
    const off = (await plan(ids.v2!)).body
    assert.deepEqual(names(off.steps), [...promised(off.steps), 'rollback'])
    const history = (await json('GET', '/v1/apps/hello/deployments')).body.deployments
    assert.deepEqual(promised(off.steps), names(history.find((x: { state: string }) => x.state === 'succeeded').steps), 'proxy off: the steps a deploy records, as before')

    const listen = `127.0.0.1:${await freePort()}`
    assert.equal((await json('PUT', '/v1/apps/hello/settings', { proxy: { listen, drainTimeoutMs: 1000 } })).status, 200)
    // No instance serves behind the proxy yet: the node is replaced, then routed to.
    const first = (await plan(ids.v2!)).body
    assert.ok(names(first.steps).includes('routing') && !names(first.steps).includes('draining'), JSON.stringify(first.steps))
    assert.ok(first.warnings.some((w: string) => /no instance serves behind it/.test(w)), JSON.stringify(first.warnings))
    assert.equal(current(), ids.v1, 'the plan changed nothing')
    assert.deepEqual(names((await deploy(ids.v2!)).steps), promised(first.steps))

    // Now the live instance keeps serving: the new one starts beside it, takes the traffic, the old one drains.
    const beside = (await plan(ids.v1!)).body
    assert.deepEqual(beside.blockers, [])
    assert.ok(names(beside.steps).includes('draining'), JSON.stringify(beside.steps))
    const step = (name: string) => beside.steps.find((s: S) => s.name === name)
    assert.match(step('starting').detail, /keeps serving on 127\.0\.0\.1:\d+/)
    assert.match(step('draining').detail, /up to 1000 ms/)
    assert.match(step('rollback').detail, /the old instance serves throughout and is never stopped/)
    assert.ok(!beside.warnings.some((w: string) => /no instance serves behind it/.test(w)))
    assert.deepEqual(names((await deploy(ids.v1!)).steps), promised(beside.steps))
    assert.equal(current(), ids.v1)
  })
})

describe('plan parts', () => {
  test('unifiedDiff: hunks with context, bounded output, null when equal', () => {
    assert.equal(unifiedDiff('a\nb\n', 'a\nb\n', { from: 'x', to: 'y' }), null)
    const d1 = unifiedDiff('a\nb\nc\nd\ne\nf\ng\nh\n', 'a\nb\nc\nD\ne\nf\ng\nh\n', { from: 'x', to: 'y' })!
    assert.equal(d1.text, '--- x\n+++ y\n@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n')
    assert.equal(d1.added, 1)
    assert.equal(d1.removed, 1)
    const big = unifiedDiff('', Array.from({ length: 500 }, (_, i) => `line ${i}`).join('\n'), { from: 'x', to: 'y' })!
    assert.equal(big.truncated, true)
    assert.ok(big.text.split('\n').length <= 62)
    assert.equal(big.added, 500)
  })

  test('ERTS from start_erl.data or the erts-* directory, OTP from OTP_VERSION or the ERTS major', () => {
    const dir = path.join(scratch, 'layout')
    fs.mkdirSync(path.join(dir, 'releases', '1.0.0'), { recursive: true })
    fs.mkdirSync(path.join(dir, 'erts-14.2.1'))
    assert.equal(ertsVersion(dir), '14.2.1')
    assert.equal(otpVersion(dir, '1.0.0', '14.2.1'), '26')
    fs.writeFileSync(path.join(dir, 'releases', 'start_erl.data'), '15.0 1.0.0\n')
    assert.equal(ertsVersion(dir), '15.0')
    fs.writeFileSync(path.join(dir, 'releases', '1.0.0', 'OTP_VERSION'), '27.0.1\n')
    assert.equal(otpVersion(dir, '1.0.0', '15.0'), '27.0.1')
    assert.equal(otpVersion(dir, '2.0.0', '10.3'), '21')
  })
})

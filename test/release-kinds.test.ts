// Releases that do not follow berth's own conventions, deployed by a real daemon with default settings: an
// app whose modules are not its name camelized (:myapp, MyApp.*), one released under another name (:shop as
// storefront), and a rebar3/relx release. Migrations run exactly once or are loudly absent, never silently.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { freePort, processesUnder, runCli, startDaemon, type TestDaemon , appDataDir } from './helpers/daemon.js'
import { fixture, type FixtureName } from './helpers/fixtures.js'
import { call, upload, type Answer } from './helpers/http.js'
import { until } from './helpers/wait.js'
import { setTimeout as sleep } from 'node:timers/promises'

let d: TestDaemon
const json = { 'content-type': 'application/json' }
let receiver: http.Server
const hooks: { event: string; detail: Record<string, unknown> }[] = []
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

/** The user's own ERL_AFLAGS, given to myapp: kept, but unable to move distribution off loopback. */
const USER_AFLAGS = '-berth_user_flag kept -kernel inet_dist_use_interface {10,1,2,3}'

async function setUp(app: string, name: FixtureName): Promise<void> {
  const port = await freePort()
  const dir = path.join(d.dataDir, `${app}-marker`)
  appDataDir(dir)
  const env = { PORT: String(port), MARKER_DIR: dir, ...(app === 'myapp' ? { ERL_AFLAGS: USER_AFLAGS } : {}) }
  assert.equal((await put(`/v1/apps/${app}/env`, env)).status, 200)
  const settings = await put(`/v1/apps/${app}/settings`, { stableWindowMs: 500, bootTimeoutMs: 60_000, healthUrl: `http://127.0.0.1:${port}/` })
  assert.equal(settings.status, 200, settings.text)
  const up = await upload(d.url, app, fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
  assert.equal(up.status, 201, up.text)
  apps[app] = { port, marker: dir, release: up.body.id }
}

/** A terminal websocket (remote or attach) that keeps what it receives. */
async function terminal(app: string, kind: 'remote' | 'attach'): Promise<{ ws: WebSocket; out(): string; send(t: string): void; closed: Promise<number> }> {
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/apps/${app}/${kind}`, { headers: { authorization: `Bearer ${d.adminToken}` } })
  const chunks: Buffer[] = []
  ws.on('message', (m: Buffer, binary: boolean) => binary && chunks.push(m))
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve())
    ws.on('error', reject)
    ws.on('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })
  return { ws, out: () => Buffer.concat(chunks).toString(), send: (t) => ws.send(Buffer.from(t)), closed }
}


/** Where relx's script writes the vm.args and sys.config it fills in, for the relx release. */
function relxOut(): string {
  return path.join(d.dataDir, 'apps', 'relx_hello', 'shared', 'tmp', 'relx', apps.relx_hello!.release)
}

/** The directories of commands and shells running (or left behind) from the relx release. */
function runDirs(): string[] {
  return fs.readdirSync(relxOut()).filter((f) => f.startsWith('run-'))
}

async function node(app: string): Promise<{ state: string; pid: number | null }> {
  return (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body.node
}

before(async () => {
  receiver = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const p = JSON.parse(body) as { event: string; detail: Record<string, unknown> }
      hooks.push({ event: p.event, detail: p.detail })
      res.statusCode = 204
      res.end()
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  d = await startDaemon({ BERTH_WEBHOOK_ALLOW_PRIVATE: '1' })
  const hook = await post('/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`, app: 'relx_hello', events: ['deploy'] })
  assert.equal(hook.status, 201, hook.text)
  await setUp('myapp', 'myapp')
  await setUp('storefront', 'storefront')
  await setUp('relx_hello', 'relx')
})

after(async () => {
  await d.stop()
  receiver.close()
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

describe('the environment', () => {
  test("the app's ERL_AFLAGS are merged with berth's, not replaced; distribution stays on loopback", async () => {
    const res = await post('/v1/apps/myapp/rpc', { expr: 'IO.inspect({:init.get_argument(:berth_user_flag), Application.get_env(:kernel, :inet_dist_use_interface)})' })
    assert.equal(res.body.code, 0, res.text)
    assert.equal(res.body.output.trim(), "{{:ok, [['kept']]}, {127, 0, 0, 1}}")
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
    // A first deploy: there is no current release to call untouched (issue 23 §6), and the reason says so.
    assert.match(dep.reason, /no migration would run .*requireMigration.*there was no current release; nothing was started/)
    assert.deepEqual(dep.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`), ['migrating:failed'])
    assert.equal(current('relx_hello'), null, 'current was not switched')
    assert.equal((await call(`${d.url}/v1/apps/relx_hello`, { token: d.adminToken })).body.node.state, 'stopped', 'no node was started')
    assert.deepEqual(processesUnder(path.join(d.dataDir, 'apps', 'relx_hello')), [])
    assert.equal((await put('/v1/apps/relx_hello/settings', { requireMigration: false })).status, 200)
  })
})

describe('a relx release', () => {
  test('is recorded as relx and deploys with default settings, with a warning that no migration ran', async () => {
    const rel = await call(`${d.url}/v1/apps/relx_hello/releases/${apps.relx_hello!.release}`, { token: d.adminToken })
    assert.equal(rel.body.kind, 'relx')
    const mix = await call(`${d.url}/v1/apps/myapp/releases/${apps.myapp!.release}`, { token: d.adminToken })
    assert.equal(mix.body.kind, 'mix')
    const res = await deploy('relx_hello')
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.state, 'succeeded')
    assert.equal(res.body.steps[0].state, 'skipped')
    assert.match(res.body.steps[0].output, /relx's eval talks to the running node/)
    assert.equal(res.body.warnings.length, 1)
    assert.match(res.body.warnings[0], /^no migration ran for .*relx's eval talks to the running node.*set migrateExpr to ""/)
    assert.equal(await served('relx_hello'), 'relx_hello 0.3.0\n')
    // relx fills vm.args.src and sys.config.src at every run; the release directory stays as uploaded.
    const relDir = path.join(d.dataDir, 'apps', 'relx_hello', 'releases', apps.relx_hello!.release, 'releases', '0.3.0')
    assert.deepEqual(fs.readdirSync(relDir).sort(), ['no_dot_erlang.boot', 'relx_hello.rel', 'start.boot', 'start_clean.boot', 'sys.config.src', 'vm.args.src'])
    await until('the webhook delivery', () => hooks.some((h) => h.detail.deployment === res.body.id))
    const hook = hooks.find((h) => h.detail.deployment === res.body.id)!
    assert.deepEqual(hook.detail.warnings, res.body.warnings, 'webhooks get the warnings')
  })

  test('stops, starts and restarts', async () => {
    const stop = await post('/v1/apps/relx_hello/stop?wait=true')
    assert.equal(stop.status, 200, stop.text)
    assert.equal((await node('relx_hello')).state, 'stopped')
    await assert.rejects(served('relx_hello'))
    const start = await post('/v1/apps/relx_hello/start?wait=true')
    assert.equal(start.status, 200, start.text)
    const first = (await node('relx_hello')).pid
    assert.equal(await served('relx_hello'), 'relx_hello 0.3.0\n')
    const restart = await post('/v1/apps/relx_hello/restart?wait=true')
    assert.equal(restart.status, 200, restart.text)
    const after = await node('relx_hello')
    assert.equal(after.state, 'running')
    assert.notEqual(after.pid, first, 'a new node runs')
    assert.equal(await served('relx_hello'), 'relx_hello 0.3.0\n')
  })

  test("no command rewrites the vm.args and sys.config a node boots from: 10 restarts with rpc alongside all verify", async () => {
    // relx's script fills both files at every run of bin/APP, truncating them first; once they were shared,
    // the `pid` that verification runs left a booting node half a sys.config now and then (exit code 1).
    const nodeFiles = ['vm.args', 'sys.config'].map((f) => path.join(relxOut(), 'node', f))
    const stamps = () => nodeFiles.map((f) => fs.statSync(f, { bigint: true }).mtimeNs)
    const before = stamps()
    for (let i = 0; i < 3; i++) assert.equal((await post('/v1/apps/relx_hello/rpc', { expr: 'ok.' })).body.code, 0)
    assert.deepEqual(stamps(), before, "commands fill their own copies, never the running node's")
    assert.deepEqual(runDirs(), [], "each command's copies are removed when it ends")
    let rpcs = 0
    for (let i = 0; i < 10; i++) {
      let restarting = true
      const hammer = (async () => {
        while (restarting) {
          if ((await post('/v1/apps/relx_hello/rpc', { expr: 'ok.' })).status === 200) rpcs++
          else await sleep(20)
        }
      })()
      const restart = await post('/v1/apps/relx_hello/restart?wait=true')
      restarting = false
      await hammer
      assert.equal(restart.status, 200, `restart ${i + 1}: ${restart.text}`)
    }
    assert.ok(rpcs >= 10, `rpc ran alongside the restarts (${rpcs} times)`)
    assert.equal((await node('relx_hello')).state, 'running')
    assert.deepEqual(runDirs(), [])
  })

  test('answers remote: an Erlang shell on the node evaluates', async () => {
    const c = await terminal('relx_hello', 'remote')
    await until('the prompt', () => /\(relx_hello@[^)]+\)\d+> /.test(c.out()))
    assert.equal(runDirs().length, 1, 'the shell runs from a vm.args and sys.config of its own')
    c.send('6 * 7.\r')
    await until('42', () => /\b42\b/.test(c.out().split('6 * 7.')[1] ?? ''))
    c.send('node().\r')
    await until('the node name', () => /relx_hello@/.test(c.out().split('node().')[1] ?? ''))
    c.ws.close()
    await c.closed
    await until('remote shell gone', () => processesUnder(path.join(d.dataDir, 'apps', 'relx_hello', 'releases')).every((p) => !/remsh/.test(p.cmd)), 10_000)
    await until("the shell's own vm.args and sys.config removed", () => runDirs().length === 0)
    assert.equal(await served('relx_hello'), 'relx_hello 0.3.0\n')
  })

  test("answers attach: the node's own console takes input", async () => {
    const c = await terminal('relx_hello', 'attach')
    await until('the banner', () => c.out().includes('Ctrl+D'))
    c.send('\r')
    c.send('io:format("attach-~s~n", ["marker"]).\r')
    await until('the marker', () => c.out().includes('attach-marker'))
    c.ws.close()
    await c.closed
    assert.equal(await served('relx_hello'), 'relx_hello 0.3.0\n', 'the node outlives the viewer')
  })

  test('rpc evaluates an Erlang expression on the running node', async () => {
    const res = await post('/v1/apps/relx_hello/rpc', { expr: 'erlang:list_to_atom("pong").' })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.code, 0)
    assert.equal(res.body.error, null)
    assert.equal(res.body.output.trim(), 'pong')
  })

  test('an rpc that answers {badrpc, …} or fails to evaluate is a failure, not code 0', async () => {
    const badrpc = await post('/v1/apps/relx_hello/rpc', { expr: 'rpc:call(nonode@nohost, erlang, node, []).' })
    assert.equal(badrpc.status, 200, badrpc.text)
    assert.match(badrpc.body.output, /^\{badrpc, ?nodedown\}/)
    assert.equal(badrpc.body.code, 1)
    assert.match(badrpc.body.error, /answered \{badrpc, ?nodedown\}/)
    const raised = await post('/v1/apps/relx_hello/rpc', { expr: 'erlang:error(boom).' })
    assert.equal(raised.body.code, 1)
    assert.match(raised.body.error, /failed on the node.*boom/s)
    const mix = await post('/v1/apps/myapp/rpc', { expr: 'raise "boom"' })
    assert.equal(mix.body.code, 1)
    assert.match(mix.body.error, /exited with code 1/)
    const events = (await call(`${d.url}/v1/apps/relx_hello/events`, { token: d.adminToken })).body.events
    const rpcs = events.filter((e: { action: string }) => e.action === 'rpc').map((e: { outcome: string }) => e.outcome)
    assert.deepEqual(rpcs.slice(0, 3), ['error', 'error', 'ok'], 'the audit trail records them as errors (newest first)')
  })

  test('requireMigration refuses a redeploy before anything changes: current and the node are untouched', async () => {
    const before = await node('relx_hello')
    const cur = current('relx_hello')
    assert.equal((await put('/v1/apps/relx_hello/settings', { requireMigration: true })).status, 200)
    try {
      const res = await deploy('relx_hello')
      assert.equal(res.status, 422, res.text)
      assert.equal(res.body.deployment.reasonCode, 'MIGRATION_REQUIRED')
      assert.deepEqual(res.body.deployment.steps.map((s: { name: string }) => s.name), ['migrating'])
      assert.equal(current('relx_hello'), cur)
      const after = await node('relx_hello')
      assert.deepEqual([after.state, after.pid], [before.state, before.pid], 'the same node, not restarted')
      assert.equal(await served('relx_hello'), 'relx_hello 0.3.0\n')
    } finally {
      assert.equal((await put('/v1/apps/relx_hello/settings', { requireMigration: false })).status, 200)
    }
  })

  test('a migrateExpr for relx without an eval command fails clearly, naming the setting to change', async () => {
    const before = await node('relx_hello')
    assert.equal((await put('/v1/apps/relx_hello/settings', { migrateExpr: 'relx_hello_app:migrate().' })).status, 200)
    try {
      const res = await deploy('relx_hello')
      assert.equal(res.status, 422, res.text)
      assert.equal(res.body.deployment.reasonCode, 'COMMAND_UNSUPPORTED')
      assert.match(res.body.deployment.reason, /relx's eval talks to the running node.*commands\.eval/)
      assert.equal((await node('relx_hello')).pid, before.pid)
    } finally {
      assert.equal((await put('/v1/apps/relx_hello/settings', { migrateExpr: null })).status, 200)
    }
  })

  test("with the proxy on, a dry run warns that the release fixes its node name in vm.args.src", async () => {
    assert.equal((await put('/v1/apps/relx_hello/settings', { proxy: { listen: `127.0.0.1:${await freePort()}` } })).status, 200)
    try {
      const plan = await post(`/v1/apps/relx_hello/deployments?dryRun=true`, { release: apps.relx_hello!.release })
      assert.equal(plan.status, 200, plan.text)
      const warning = plan.body.warnings.find((w: string) => w.startsWith('the release names its node'))
      assert.ok(warning, plan.text)
      assert.match(warning, /\$\{RELX_HELLO_NODE:-relx_hello\} in releases\/0\.3\.0\/vm\.args\.src.*-sname \$\{RELEASE_NODE\}/)
    } finally {
      assert.equal((await put('/v1/apps/relx_hello/settings', { proxy: null })).status, 200)
    }
    const off = await post(`/v1/apps/relx_hello/deployments?dryRun=true`, { release: apps.relx_hello!.release })
    assert.equal(off.body.warnings.some((w: string) => w.startsWith('the release names its node')), false, 'without the proxy one instance runs: no warning')
    // relx has no eval before start: the plan's command map says so (it answered 500 while the schema wanted a string).
    assert.equal(off.body.commands.eval, null)
    const cli = await runCli(['plan', 'relx_hello', apps.relx_hello!.release], { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken })
    assert.equal(cli.code, 0, cli.stdout + cli.stderr)
    assert.match(cli.stdout, /commands: start=\S+ eval=\(none\) /)
  })

  test('berth deploy prints the warning and still exits 0', async () => {
    const r = await runCli(['deploy', '--release', apps.relx_hello!.release, '--app', 'relx_hello'], { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken })
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /warning: no migration ran for /)
    assert.match(r.stdout, /succeeded: relx_hello runs /)
  })
})

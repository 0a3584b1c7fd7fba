// The operator commands (berth deploy, rollback, status, releases, logs, env, settings) run as subprocesses
// against a real berth child process with the real fixture releases, the way CI and an operator use them.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { endProcessesUnder, freePort, runCli, spawnDaemon, tempDir, type ChildDaemon, appDataDir } from './helpers/daemon.js'
import pty from 'node-pty'
import { fixture, REPO } from './helpers/fixtures.js'

let daemon: ChildDaemon
let dataDir: string
let env: Record<string, string>
let port: number
const tarballs: Record<string, string> = {}

function cli(args: string[], extra: Record<string, string> = {}) {
  return runCli(args, { ...env, ...extra })
}

async function appAnswer(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/`)).text()
}

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new assert.AssertionError({ message: `timed out waiting for ${what}` })
    await new Promise((r) => setTimeout(r, 50))
  }
}

before(async () => {
  dataDir = tempDir('berth-cli-')
  daemon = await spawnDaemon(dataDir, { BERTH_WEBHOOK_ALLOW_PRIVATE: '1' })
  env = { BERTH_URL: daemon.url, BERTH_TOKEN: fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim() }
  port = await freePort()
  for (const name of ['v1', 'v2', 'crash_on_boot'] as const) tarballs[name] = (await fixture(name)).tarball
})

after(async () => {
  if (!daemon) return
  // Nodes outlive berth by design (KillMode=process); stop the app's node first, then berth, then epmd.
  await fetch(`${daemon.url}/v1/apps/hello/stop?wait=true`, { method: 'POST', headers: { authorization: `Bearer ${env.BERTH_TOKEN}` } }).catch(() => {})
  await daemon.stop()
  assert.deepEqual(await endProcessesUnder(dataDir), [], 'no BEAM, run_erl or epmd is left behind')
  fs.rmSync(dataDir, { recursive: true, force: true })
})

describe('berth client commands', () => {
  test('--help on every client command; usage errors exit 2', async () => {
    const commands = ['deploy', 'rollback', 'status', 'releases', 'logs', 'env', 'settings']
    const [top, noApp, noToken, badSource, ...helps] = await Promise.all([
      cli(['--help']),
      cli(['deploy', tarballs.v1!]),
      cli(['status'], { BERTH_TOKEN: '' }),
      cli(['logs', 'hello', '--source', 'nope']),
      ...commands.map((c) => cli([c, '--help'])),
    ])
    helps.forEach((r, i) => {
      assert.equal(r.code, 0, `${commands[i]} --help`)
      assert.match(r.stdout, new RegExp(`usage: berth ${commands[i]}`))
    })
    assert.match(top!.stdout, /deploy FILE --app APP/)
    assert.equal(noApp!.code, 2, 'deploy without --app')
    assert.equal(noToken!.code, 2, 'no token')
    assert.match(noToken!.stderr, /^berth: no token: pass --token or set BERTH_TOKEN/)
    assert.equal(badSource!.code, 2)
  })

  test('env replace creates the app and reports names; set and unset change single variables', async () => {
    const appData = path.join(dataDir, 'hello-data')
    appDataDir(appData)
    const envFile = path.join(dataDir, 'hello.env')
    fs.writeFileSync(envFile, `# the app's environment\nexport HELLO_DATA_DIR="${appData}"\nSTALE=1\n`)
    const first = await cli(['env', 'hello', 'replace', '--from-file', envFile, `PORT=${port}`])
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /hello: HELLO_DATA_DIR, PORT, STALE/)
    const second = await cli(['env', 'hello', 'replace', `PORT=${port}`, `HELLO_DATA_DIR=${appData}`, '--json'])
    assert.equal(second.code, 0, second.stderr)
    assert.deepEqual(JSON.parse(second.stdout), { names: ['HELLO_DATA_DIR', 'PORT'], removed: ['STALE'] })
    const list = await cli(['env', 'hello', 'list'])
    assert.equal(list.stdout, 'HELLO_DATA_DIR\nPORT\n')
    const set = await cli(['env', 'hello', 'set', 'EXTRA=1', 'OTHER=x y'])
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, /^hello: set EXTRA, OTHER$/m)
    const unset = await cli(['env', 'hello', 'unset', 'OTHER', 'NEVER_SET', '--json'])
    assert.equal(unset.code, 0, unset.stderr)
    assert.deepEqual(JSON.parse(unset.stdout), { names: ['EXTRA', 'HELLO_DATA_DIR', 'PORT'], removed: ['OTHER'] })
    const human = await cli(['env', 'hello', 'unset', 'EXTRA', 'NEVER_SET'])
    assert.match(human.stdout, /^hello: removed EXTRA\nnot set, nothing to remove: NEVER_SET\n/)
    assert.equal((await cli(['env', 'hello', 'list'])).stdout, 'HELLO_DATA_DIR\nPORT\n', 'the other variables kept their values')
    const reserved = await cli(['env', 'hello', 'set', 'RELEASE_TMP=/tmp'])
    assert.equal(reserved.code, 1)
    assert.match(reserved.stderr, /RELEASE_TMP" is set by berth itself.*\(VALIDATION_FAILED\)/)
    assert.equal((await cli(['env', 'hello', 'unset', 'A=1'])).code, 2)
  })

  test('PATCH /env merges on the server: validated, audited by name, values never shown', async () => {
    const patch = (body: unknown) => fetch(`${daemon.url}/v1/apps/hello/env`, { method: 'PATCH', headers: { authorization: `Bearer ${env.BERTH_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const both = await patch({ set: { TWICE: '1' }, unset: ['TWICE'] })
    assert.equal(both.status, 400)
    assert.match(((await both.json()) as { detail: string }).detail, /both set and unset/)
    assert.equal((await patch({})).status, 400, 'an empty change is refused')
    assert.equal((await patch({ unset: ['bad name'] })).status, 400)
    const ok = await patch({ set: { SECRET_TOKEN: 'do-not-show-me' } })
    assert.equal(ok.status, 200)
    assert.deepEqual(await ok.json(), { names: ['HELLO_DATA_DIR', 'PORT', 'SECRET_TOKEN'], removed: [] })
    const gone = await patch({ unset: ['SECRET_TOKEN'] })
    assert.deepEqual(await gone.json(), { names: ['HELLO_DATA_DIR', 'PORT'], removed: ['SECRET_TOKEN'] })
    const events = await cli(['events', 'hello', '--json', '--limit', '20'])
    assert.ok(!events.stdout.includes('do-not-show-me'), 'values never reach the audit trail')
    const update = JSON.parse(events.stdout).events.find((e: { action: string; detail: { set: string[] } }) => e.action === 'env.update' && e.detail.set.includes('SECRET_TOKEN'))
    assert.deepEqual(update.detail, { set: ['SECRET_TOKEN'], removed: [] })
    assert.equal(update.actor, 'initial-admin')
  })

  test('settings set parses JSON values and dotted keys, keeping the other nested values', async () => {
    // stopTimeoutMs: berth keeps running until a node stop's timeout timer fires, even after the node exited,
    // so the default 15 s would hold up the daemon's exit at the end of this file.
    const set = await cli(['settings', 'hello', 'set', 'stableWindowMs=500', 'bootTimeoutMs=30000', 'stopTimeoutMs=5000', `healthUrl=http://127.0.0.1:${port}/health`, 'restart.windowMs=120000'])
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, /^stableWindowMs = 500$/m)
    assert.match(set.stdout, /^healthUrl = "http:\/\/127\.0\.0\.1:\d+\/health"$/m)
    const nested = await cli(['settings', 'hello', 'set', 'restart.maxRestarts=3'])
    assert.equal(nested.code, 0, nested.stderr)
    const got = await cli(['settings', 'hello', 'get', 'restart', '--json'])
    const restart = JSON.parse(got.stdout)
    assert.equal(restart['restart.maxRestarts'], 3)
    assert.equal(restart['restart.windowMs'], 120000, 'setting one restart value keeps the others')
    const bad = await cli(['settings', 'hello', 'set', 'stableWindowMs=soon'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /stableWindowMs must be a whole number.*\(VALIDATION_FAILED\)/)
  })

  test('deploy v1: progress lines, each step, exit 0, the app answers', async () => {
    const r = await cli(['deploy', tarballs.v1!, '--app', 'hello'])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^upload 25% [\d.]+ MB\/5\.4 MB [\d.]+ MB\/s$/m)
    assert.match(r.stdout, /^upload 100% 5\.4 MB\/5\.4 MB/m)
    assert.match(r.stdout, /^uploaded 5\.4 MB in [\d.]+ s \([\d.]+ MB\/s\)/m)
    assert.ok(r.stdout.split('\n').filter((l) => l.startsWith('upload ')).length <= 6, 'at most a line per quarter (or 2 s)')
    for (const step of ['migrating', 'switching', 'starting', 'verifying']) assert.match(r.stdout, new RegExp(`^${step} \\.\\.\\. ok \\([\\d.]+ s\\)$`, 'm'))
    assert.match(r.stdout, /^succeeded: hello runs 0\.1\.0-[0-9a-f]{12}/m)
    assert.equal(await appAnswer(), 'hello 0.1.0\n')
    // The verify step checked the health URL: status says so right away, not "not checked yet".
    const status = await cli(['status', 'hello'])
    assert.match(status.stdout, new RegExp(`^health +ok, http://127\\.0\\.0\\.1:${port}/health$`, 'm'), status.stdout)
  })

  test('upload only, deploy by version, then roll back to 0.1.0 with its warning', async () => {
    const up = await cli(['deploy', tarballs.v2!, '--app', 'hello', '--no-deploy', '--json'])
    assert.equal(up.code, 0, up.stderr)
    const release = JSON.parse(up.stdout)
    assert.equal(release.version, '0.2.0')
    assert.match(up.stderr, /uploaded 5\.4 MB/, 'with --json the progress goes to stderr')
    const dep = await cli(['deploy', '--release', '0.2.0', '--app', 'hello'])
    assert.equal(dep.code, 0, dep.stdout + dep.stderr)
    assert.equal(await appAnswer(), 'hello 0.2.0\n')
    const back = await cli(['rollback', 'hello', '--to', '0.1.0'])
    assert.equal(back.code, 0, back.stdout + back.stderr)
    assert.match(back.stdout, /^rolling back hello to 0\.1\.0-/m)
    assert.match(back.stdout, /^reverting_migrations \.\.\. skipped$/m)
    assert.match(back.stdout, /^warning: .*20240101000000_add_things\.exs/m)
    assert.equal(await appAnswer(), 'hello 0.1.0\n')
  })

  test('deploy of a release that crashes on boot exits 1 and says rolled_back', async () => {
    const r = await cli(['deploy', tarballs.crash_on_boot!, '--app', 'hello'])
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /^verifying \.\.\. failed/m)
    assert.match(r.stdout, /^rollback \.\.\. ok/m)
    assert.match(r.stdout, /^rolled_back: .*exited.*rolled back to 0\.1\.0-/m)
    assert.equal(await appAnswer(), 'hello 0.1.0\n')
  })

  test('status and releases', async () => {
    const [json, one, all, list, listJson] = await Promise.all([
      cli(['status', 'hello', '--json']),
      cli(['status', 'hello']),
      cli(['status']),
      cli(['releases', 'hello']),
      cli(['releases', 'hello', '--json']),
    ])
    assert.equal(json.code, 0, json.stderr)
    const app = JSON.parse(json.stdout)
    assert.equal(app.node.state, 'running')
    assert.match(app.current, /^0\.1\.0-/)
    assert.equal(app.lastDeployment.state, 'rolled_back')
    assert.match(one.stdout, /^node +running$/m)
    assert.match(one.stdout, /^pid +\d+ \(run_erl\), beam \d+$/m)
    assert.match(one.stdout, /^last deployment +deploy of 0\.3\.0-\S+ rolled_back/m)
    assert.match(all.stdout, /^NAME +CURRENT +STATE +UPTIME +RESTARTS +RELEASES$/m)
    assert.match(all.stdout, /^hello +0\.1\.0-\S+ +running /m)
    assert.equal(list.code, 0, list.stderr)
    const lines = list.stdout.trim().split('\n')
    assert.match(lines[0]!, /^ID +VERSION +CURRENT +SIZE +UPLOADED +BY$/)
    assert.match(list.stdout, /^0\.1\.0-\S+ +0\.1\.0 +\* +5\.4 MB .* initial-admin$/m)
    assert.match(list.stdout, /^0\.3\.0-\S+ +0\.3\.0 +5\.4 MB/m)
    assert.equal(JSON.parse(listJson.stdout).releases.length, lines.length - 1)
  })

  test('stop, start, restart: each step as it runs, exit 0; a restart is recorded as asked for', async () => {
    const stop = await cli(['stop', 'hello'])
    assert.equal(stop.code, 0, stop.stdout + stop.stderr)
    assert.match(stop.stdout, /^stopping hello, operation \d{14}-[0-9a-f]{6}$/m)
    assert.match(stop.stdout, /^stopping \.\.\. ok \([\d.]+ s\)$/m)
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`))
    const start = await cli(['start', 'hello'])
    assert.equal(start.code, 0, start.stdout + start.stderr)
    assert.match(start.stdout, /^starting \.\.\. ok/m)
    assert.match(start.stdout, /^verifying \.\.\. ok/m)
    const again = await cli(['start', 'hello'])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already running\. \(ALREADY_RUNNING\)/)
    const restart = await cli(['restart', 'hello', '--json'])
    assert.equal(restart.code, 0, restart.stderr)
    assert.deepEqual(JSON.parse(restart.stdout).steps.map((s: { name: string }) => s.name), ['stopping', 'starting', 'verifying'])
    assert.match(restart.stderr, /^restarting hello on 0\.1\.0-/m, 'with --json the progress goes to stderr')
    const envRestart = await cli(['env', 'hello', 'set', 'GREETING=hi', '--restart'])
    assert.equal(envRestart.code, 0, envRestart.stderr)
    assert.match(envRestart.stdout, /restarted with the new environment/)
    const status = await cli(['status', 'hello'])
    assert.match(status.stdout, /^last exit +\S+ stopped by restart \(/m)
    assert.equal(await appAnswer(), 'hello 0.1.0\n')
  })

  test('deployments: the history, and one with its steps and output; events: the audit trail', async () => {
    const list = await cli(['deployments', 'hello'])
    assert.equal(list.code, 0, list.stderr)
    assert.match(list.stdout, /^ID +KIND +RELEASE +STATE +STARTED +TOOK +BY$/m)
    assert.match(list.stdout, /^\d{14}-[0-9a-f]{6} +restart +0\.1\.0-\S+ +succeeded .* initial-admin$/m)
    const json = JSON.parse((await cli(['deployments', 'hello', '--json'])).stdout)
    const v2 = json.deployments.find((d: { kind: string; release: string }) => d.kind === 'deploy' && d.release.startsWith('0.2.0-'))
    const one = await cli(['deployments', 'hello', v2.id])
    assert.equal(one.code, 0, one.stderr)
    assert.match(one.stdout, /^state +succeeded$/m)
    assert.match(one.stdout, /^  migrating \.\.\. ok \([\d.]+ s\)\n {6}# found Hello\.Release\.migrate\/0 \(application hello\) in the release's metadata\n {6}\$ bin\/hello eval "Hello\.Release\.migrate\(\)"\n {6}migrated 0\.2\.0$/m)
    const missing = await cli(['deployments', 'hello', '20000101000000-abcdef'])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /\(DEPLOYMENT_NOT_FOUND\)/)
    const events = await cli(['events', 'hello', '--limit', '50'])
    assert.equal(events.code, 0, events.stderr)
    assert.match(events.stdout, /^AT +ACTOR +ACTION +OUTCOME +DETAIL$/m)
    assert.match(events.stdout, / initial-admin +restart +succeeded +deployment=/)
    assert.match(events.stdout, / initial-admin +env\.update +ok +set=\["GREETING"\]/)
    assert.equal((await cli(['events', 'hello', '--limit', '0'])).code, 2)
  })

  test('rpc prints the output and fails with the expression', async () => {
    const ok = await cli(['rpc', 'hello', 'IO.puts(6 * 7)'])
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(ok.stdout.trim(), '42')
    const bad = await cli(['rpc', 'hello', 'raise "boom"'])
    assert.equal(bad.code, 1)
    assert.match(bad.stdout, /boom/)
    assert.match(bad.stderr, /^berth: bin\/hello rpc exited with code [1-9]\d*$/m)
    assert.equal((await cli(['rpc', 'hello', 'IO.puts', '1'])).code, 2, 'the expression is one argument')
  })

  test('console in a pty that reports no size runs at 80x24; sessions lists it and download gets its recording', async () => {
    const term = pty.spawn('sh', ['-c', `stty cols 0 rows 0; exec "${process.execPath}" "${path.join(REPO, 'bin', 'berth.js')}" console hello`], { cols: 100, rows: 30, cwd: dataDir, env: { ...process.env, ...env } as Record<string, string> })
    let out = ''
    term.onData((d) => (out += d))
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)))
    try {
      await waitFor('the iex prompt', () => /iex\(hello@[^)]+\)1> /.test(out))
      term.write('IO.inspect(:io.columns())\r')
      await waitFor('the columns', () => /\{:ok, 80\}/.test(out))
      term.write('\x07')
      await waitFor('the job control prompt', () => /-->/.test(out))
      term.write('q\r')
      assert.equal(await exited, 0, out)
    } finally {
      term.kill()
    }
    assert.doesNotMatch(out, /VALIDATION_FAILED|berth:/)
    const list = await cli(['sessions', 'hello'])
    assert.equal(list.code, 0, list.stderr)
    assert.match(list.stdout, /^ID +KIND +BY +STARTED +ENDED +EXIT +IN\/OUT +RECORDING$/m)
    const sessions = JSON.parse((await cli(['sessions', 'hello', '--json'])).stdout).sessions
    const s = sessions[0]
    assert.equal(s.kind, 'remote')
    const file = path.join(dataDir, 'session.cast')
    const dl = await cli(['sessions', 'hello', 'download', s.id, '--output', file])
    assert.equal(dl.code, 0, dl.stderr)
    const [header, ...frames] = fs.readFileSync(file, 'utf8').trim().split('\n')
    assert.equal(JSON.parse(header!).width, 80)
    assert.ok(frames.some((f) => f.includes('{:ok, 80}')), 'the recording holds the output')
    const toStdout = await cli(['sessions', 'hello', 'download', s.id])
    assert.equal(toStdout.stdout, fs.readFileSync(file, 'utf8'))
  })

  test('webhooks: create prints the secret once, list, deliveries, delete', async () => {
    const made = await cli(['webhooks', 'create', '--target', 'http://127.0.0.1:1/hook', '--app', 'hello', '--event', 'deploy', '--event', 'node.', '--json'])
    assert.equal(made.code, 0, made.stderr)
    const hook = JSON.parse(made.stdout)
    assert.match(hook.secret, /\S{16,}/)
    assert.deepEqual(hook.events, ['deploy', 'node.'])
    const list = await cli(['webhooks', 'list'])
    assert.match(list.stdout, new RegExp(`^${hook.id} +hello +http://127\\.0\\.0\\.1:1/hook +deploy,node\\. `, 'm'))
    assert.ok(!list.stdout.includes(hook.secret), 'list never shows the secret')
    const deliveries = await cli(['webhooks', 'deliveries', hook.id])
    assert.equal(deliveries.code, 0, deliveries.stderr)
    const del = await cli(['webhooks', 'delete', hook.id])
    assert.equal(del.code, 0, del.stderr)
    assert.equal((await cli(['webhooks', 'delete', hook.id])).code, 1)
    assert.equal((await cli(['webhooks', 'create'])).code, 2)
  })

  test('health without a token, metrics, the API document; releases show and delete', async () => {
    const health = await cli(['health'], { BERTH_TOKEN: '' })
    assert.equal(health.code, 0, health.stderr)
    assert.match(health.stdout, /^berth \S+ at http:\/\/127\.0\.0\.1:\d+: ok\n$/)
    const metrics = await cli(['metrics'])
    assert.match(metrics.stdout, /^berth_deployments_total\{app="hello",kind="restart",outcome="succeeded"\} \d+$/m)
    const doc = await cli(['openapi'], { BERTH_TOKEN: '' })
    assert.equal(doc.stdout, fs.readFileSync(path.join(REPO, 'openapi.yaml'), 'utf8'))
    const show = await cli(['releases', 'hello', 'show', '0.1.0'])
    assert.match(show.stdout, /^current +yes$/m)
    assert.match(show.stdout, /^sha256 +[0-9a-f]{64}$/m)
    const current = await cli(['releases', 'hello', 'delete', '0.1.0'])
    assert.equal(current.code, 1)
    assert.match(current.stderr, /\(RELEASE_IS_CURRENT\)/)
    const del = await cli(['releases', 'hello', 'delete', '0.3.0'])
    assert.equal(del.code, 0, del.stderr)
    assert.match(del.stdout, /^deleted 0\.3\.0-\S+ \(version 0\.3\.0\) of hello$/m)
    assert.doesNotMatch((await cli(['releases', 'hello'])).stdout, /0\.3\.0/)
  })

  test('logs: recent lines, and -f streams until stopped', async () => {
    const recent = await cli(['logs', 'hello', '--lines', '50'])
    assert.equal(recent.code, 0, recent.stderr)
    assert.match(recent.stdout, /hello 0\.1\.0 booted/)
    const child = spawn(process.execPath, [path.join(REPO, 'bin', 'berth.js'), 'logs', 'hello', '-f', '--source', 'berth', '--lines', '0'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    await new Promise((r) => setTimeout(r, 500))
    const settings = await cli(['settings', 'hello', 'set', 'keepReleases=4'])
    assert.equal(settings.code, 0)
    for (let i = 0; i < 40 && !out.includes('settings.update'); i++) await new Promise((r) => setTimeout(r, 100))
    child.kill()
    assert.match(out, /settings\.update ok by initial-admin/)
  })

  test('a bad token prints the server\'s reason and code, exit 1', async () => {
    const r = await cli(['status', 'hello'], { BERTH_TOKEN: 'berth_0000000000000000_nope' })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^berth: .*\(UNAUTHORIZED\)\n$/)
    assert.equal(r.stdout, '')
    const down = await cli(['status', '--url', 'http://127.0.0.1:1'])
    assert.equal(down.code, 1)
    assert.match(down.stderr, /\(CONNECTION_REFUSED\)/)
  })
})

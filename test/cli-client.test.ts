// The operator commands (berth deploy, rollback, status, releases, logs, env, settings) run as subprocesses
// against a real berth child process with the real fixture releases, the way CI and an operator use them.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort, killProcessesUnder, processesUnder, runCli, spawnDaemon, tempDir, type ChildDaemon } from './helpers/daemon.js'
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

before(async () => {
  dataDir = tempDir('berth-cli-')
  daemon = await spawnDaemon(dataDir)
  env = { BERTH_URL: daemon.url, BERTH_TOKEN: fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim() }
  port = await freePort()
  for (const name of ['v1', 'v2', 'crash_on_boot'] as const) tarballs[name] = (await fixture(name)).tarball
})

after(async () => {
  if (!daemon) return
  // Nodes outlive berth by design (KillMode=process); stop the app's node first, then berth, then epmd.
  await fetch(`${daemon.url}/v1/apps/hello/stop?wait=true`, { method: 'POST', headers: { authorization: `Bearer ${env.BERTH_TOKEN}` } }).catch(() => {})
  await daemon.stop()
  killProcessesUnder(dataDir)
  for (let i = 0; i < 50 && processesUnder(dataDir).length > 0; i++) await new Promise((r) => setTimeout(r, 100))
  assert.deepEqual(processesUnder(dataDir), [], 'no BEAM, run_erl or epmd is left behind')
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

  test('env replace creates the app and reports names; set is refused with the reason', async () => {
    const appData = path.join(dataDir, 'hello-data')
    fs.mkdirSync(appData)
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
    const set = await cli(['env', 'hello', 'set', 'X=1'])
    assert.equal(set.code, 2)
    assert.match(set.stderr, /never shows values.*replace/)
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

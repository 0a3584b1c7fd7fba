// Fleet rollouts for real: four berth agents on loopback (each its own data dir, port, epmd and token), the
// hello release whose migrations log into one shared directory (the fleet's shared database), and the
// `berth fleet` CLI as a child process: canary, batches, halting and putting back, resume, collisions, status.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { freePort, processesUnder, startDaemon, tempDir, type TestDaemon , appDataDir } from './helpers/daemon.js'
import { fixture, REPO, type FixtureName } from './helpers/fixtures.js'
import { call } from './helpers/http.js'
import { until } from './helpers/wait.js'

interface Host {
  name: string
  d: TestDaemon
  port: number
  token: string
  stopped: boolean
}

const hosts: Host[] = []
let shared: string
let work: string
let fleetFile: string
const ids: Record<string, string> = {}
/** Everything any berth command printed, to check that no token ever appears in it. */
const printed: string[] = []
const children: ChildProcess[] = []
const json = { 'content-type': 'application/json' }

const tokenEnv = (i: number) => (i === 3 ? 'BERTH_TOKEN' : `BERTH_TOKEN_H${i + 1}`)
function cliEnv(): Record<string, string> {
  return Object.fromEntries(hosts.map((h, i) => [tokenEnv(i), h.token]))
}

/** Starts `berth fleet ...` with the hosts' tokens in the environment; `done` resolves with its outcome. */
function fleet(args: string[], env: Record<string, string> = cliEnv()) {
  const child = spawn(process.execPath, [path.join(REPO, 'bin', 'berth.js'), 'fleet', ...args], { env: { ...process.env, BERTH_URL: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c) => (stdout += c))
  child.stderr!.on('data', (c) => (stderr += c))
  const done = new Promise<{ code: number | null; stdout: string; stderr: string; result: any }>((resolve) =>
    child.on('close', (code) => {
      printed.push(stdout, stderr)
      let result: unknown = null
      try {
        result = JSON.parse(stdout)
      } catch {
        result = null
      }
      resolve({ code, stdout, stderr, result })
    }),
  )
  return { child, done }
}

const run = (args: string[], env?: Record<string, string>) => fleet(args, env).done
const tarball = async (name: FixtureName) => (await fixture(name)).tarball

async function api(h: Host, method: string, pathname: string, body?: unknown) {
  const res = await call(`${h.d.url}/v1/apps/hello${pathname}`, { method, token: h.d.adminToken, headers: json, body: body === undefined ? undefined : JSON.stringify(body) })
  assert.ok(res.status < 300, `${h.name} ${method} ${pathname}: ${res.text}`)
  return res.body
}
const appOf = (h: Host) => api(h, 'GET', '')
const deploymentsOf = async (h: Host, query = ''): Promise<any[]> => (await api(h, 'GET', `/deployments${query}`)).deployments
const currents = () => Promise.all(hosts.map(async (h) => (await appOf(h)).current))
const migrations = () => {
  const f = path.join(shared, 'migrations.log')
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n') : []
}
async function answers(h: Host): Promise<string> {
  return (await fetch(`http://127.0.0.1:${h.port}/`)).text()
}
/** No host runs a deployment: a killed CLI's last deployment goes on in its agent until it ends. */
const allIdle = () => until('every host idle', async () => (await Promise.all(hosts.map(appOf))).every((a) => !a.lastDeployment || a.lastDeployment.finishedAt), 180_000, 250)

before(async () => {
  // Written by every host's app: one uid for the app on all four (BERTH_APP_UIDS below), as a fleet would give it.
  shared = appDataDir(tempDir('berth-fleet-shared-'))
  work = tempDir('berth-fleet-work-')
  for (let i = 0; i < 4; i++) {
    const d = await startDaemon({ BERTH_APP_UIDS: '41900-41900' }, { keepLogs: true })
    const port = await freePort()
    const h: Host = { name: `h${i + 1}`, d, port, token: d.token(`fleet-${i + 1}`, ['read', 'deploy', 'operate'], ['hello']), stopped: false }
    hosts.push(h)
    await api(h, 'PUT', '/env', { PORT: String(port), HELLO_DATA_DIR: shared })
    // Generous timeouts: four BEAMs boot on two cores shared with other work.
    await api(h, 'PUT', '/settings', { stableWindowMs: 1000, bootTimeoutMs: 90_000, migrateTimeoutMs: 60_000, healthUrl: `http://127.0.0.1:${port}/health` })
  }
  fleetFile = path.join(work, 'fleet.yml')
  const lines = hosts.map((h, i) => `  - name: ${h.name}\n    url: ${h.d.url}\n${i === 3 ? '' : `    tokenEnv: ${tokenEnv(i)}\n`}`)
  fs.writeFileSync(fleetFile, `app: hello\nhosts:\n${lines.join('')}canary: 1\nbatch: 1\nmigrate: once\n`)
  for (const name of ['v1', 'v2', 'slow_raise'] as const) {
    const f = await fixture(name)
    ids[name] = `${f.version}-${f.sha256.slice(0, 12)}`
  }
})

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const h of hosts) if (!h.stopped) await h.d.stop()
  for (const h of hosts) assert.deepEqual(processesUnder(h.d.dataDir), [], `${h.name}: no BEAM, epmd or run_erl left behind`)
  fs.rmSync(shared, { recursive: true, force: true })
  fs.rmSync(work, { recursive: true, force: true })
})

test('v1 and then v2 roll out to all four hosts, and each release migrates exactly once', async () => {
  const r1 = await run(['deploy', await tarball('v1'), '--fleet', fleetFile, '--json'])
  assert.equal(r1.code, 0, r1.stdout + r1.stderr)
  assert.equal(r1.result.ok, true)
  assert.deepEqual(r1.result.hosts.map((h: any) => h.outcome), ['done', 'done', 'done', 'done'])
  assert.deepEqual(r1.result.phases.map((p: any) => p.hosts), [['h1'], ['h2'], ['h3'], ['h4']])
  assert.match(r1.stderr, /h1 +uploaded /)
  assert.deepEqual(await currents(), [ids.v1, ids.v1, ids.v1, ids.v1])
  assert.deepEqual(migrations(), ['migrated 0.1.0'])
  // Every host's deployment carries the rollout; the batch hosts say why they did not migrate.
  for (const [i, h] of hosts.entries()) {
    const [d] = await deploymentsOf(h, `?rollout=${r1.result.rollout}`)
    assert.equal(d.release, ids.v1)
    assert.equal(d.steps[0].state, i === 0 ? 'ok' : 'skipped')
    if (i > 0) assert.equal(d.steps[0].output, 'migrate: false requested')
  }

  // Text output this time, and --batch overriding the file: one line per host at the end.
  const r2 = await run(['deploy', await tarball('v2'), '--fleet', fleetFile, '--batch', '2'])
  assert.equal(r2.code, 0, r2.stdout + r2.stderr)
  assert.match(r2.stdout, /rollout r-\S+ of 0\.2\.0-\S+: h1 \(migrates\), then h2 \+ h3, then h4/)
  for (const h of hosts) assert.match(r2.stdout, new RegExp(`^${h.name} +done +${ids.v2} +was ${ids.v1}`, 'm'))
  assert.match(r2.stdout, /succeeded on every host/)
  assert.deepEqual(await currents(), [ids.v2, ids.v2, ids.v2, ids.v2])
  assert.deepEqual(migrations(), ['migrated 0.1.0', 'migrated 0.2.0'])
  for (const h of hosts) assert.equal(await answers(h), 'hello 0.2.0\n')
})

test('a release that fails to boot fails on the canary, with no health URL and no stable window: it is put back and no other host gets a deployment', async () => {
  const before = await Promise.all(hosts.map(async (h) => (await deploymentsOf(h)).length))
  // slow_raise answers `pid` for 4 s, then its Application.start raises. Without a health URL or a stable
  // window to catch it, only a verification that waits for the node to have booted fails it.
  for (const h of hosts) await api(h, 'PUT', '/settings', { stableWindowMs: 0, healthUrl: null })
  const r = await run(['deploy', await tarball('slow_raise'), '--fleet', fleetFile, '--json']).finally(() =>
    Promise.all(hosts.map((h) => api(h, 'PUT', '/settings', { stableWindowMs: 1000, healthUrl: `http://127.0.0.1:${h.port}/health` }))))
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.equal(r.result.halted.host, 'h1')
  assert.match(r.stderr, /halted at h1 \([A-Z_]+\); no further host is touched/)
  assert.deepEqual(r.result.hosts.map((h: any) => h.outcome), ['rolled_back', 'not_deployed', 'not_deployed', 'not_deployed'])
  assert.deepEqual(await currents(), [ids.v2, ids.v2, ids.v2, ids.v2])
  assert.equal(await answers(hosts[0]!), 'hello 0.2.0\n')
  const afterCounts = await Promise.all(hosts.map(async (h) => (await deploymentsOf(h)).length))
  assert.deepEqual(afterCounts, [before[0]! + 1, before[1], before[2], before[3]], 'only the canary got a deployment')
  // Uploaded everywhere first, deployed nowhere else.
  for (const h of hosts.slice(1)) assert.equal((await api(h, 'GET', `/releases/${ids.slow_raise}`)).id, ids.slow_raise)
  assert.equal(r.result.halted.code, 'NODE_EXITED', r.stdout)
})

test('a host that fails later halts the rollout: the hosts moved go back, the hosts after it are never deployed', async () => {
  const [, , h3, h4] = hosts
  // h3's migration fails (its data dir cannot be created: a file is in the way); migrate: every makes it run.
  await api(h3!, 'PUT', '/env', { PORT: String(h3!.port), HELLO_DATA_DIR: path.join(shared, 'migrations.log', 'h3') })
  const h4Before = (await deploymentsOf(h4!)).length
  const r = await run(['deploy', await tarball('v1'), '--fleet', fleetFile, '--migrate', 'every', '--json'])
  await api(h3!, 'PUT', '/env', { PORT: String(h3!.port), HELLO_DATA_DIR: shared })
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.deepEqual(r.result.halted && [r.result.halted.host, r.result.halted.code], ['h3', 'MIGRATION_FAILED'], r.stdout + r.stderr)
  assert.deepEqual(r.result.hosts.map((h: any) => h.outcome), ['put_back', 'put_back', 'failed', 'not_deployed'])
  assert.deepEqual(await currents(), [ids.v2, ids.v2, ids.v2, ids.v2])
  for (const h of hosts.slice(0, 2)) {
    const [last, moved] = await deploymentsOf(h)
    assert.deepEqual([last.kind, last.release, last.state, last.rollout], ['rollback', ids.v2, 'succeeded', r.result.rollout])
    assert.deepEqual([moved.kind, moved.release, moved.state, moved.rollout], ['deploy', ids.v1, 'succeeded', r.result.rollout])
    assert.equal(await answers(h), 'hello 0.2.0\n')
  }
  assert.equal((await deploymentsOf(h4!)).length, h4Before, 'h4 was never deployed')
  assert.match(r.stderr, /halted at h3 \(MIGRATION_FAILED\)/)
  assert.match(r.result.halted.reason, /^migration exited with code 1/)
})

test('a rollout interrupted by killing the CLI is resumed by running it again', async () => {
  const file = await tarball('v1')
  const first = fleet(['deploy', file, '--fleet', fleetFile, '--json'])
  // Killed while the second host deploys: the agent finishes that deployment on its own.
  const inFlight = await until('h2 deploying v1', async () => {
    const d = (await appOf(hosts[1]!)).lastDeployment
    return d && d.kind === 'deploy' && d.release === ids.v1 && !d.finishedAt && d.rollout ? d : null
  }, 180_000, 100)
  first.child.kill('SIGKILL')
  await first.done
  await allIdle()
  assert.deepEqual((await currents()).slice(2), [ids.v2, ids.v2], 'the hosts after it were not reached')
  const log = migrations()

  const r = await run(['deploy', file, '--fleet', fleetFile, '--json'])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.equal(r.result.rollout, inFlight.rollout, 'the resumed rollout keeps its id')
  assert.deepEqual(r.result.hosts.map((h: any) => h.outcome), ['skipped', 'skipped', 'done', 'done'], r.stdout + r.stderr)
  assert.deepEqual(await currents(), [ids.v1, ids.v1, ids.v1, ids.v1])
  assert.deepEqual(migrations(), log, 'the migration ran in the first run; the resumed one runs none')
  for (const h of hosts) assert.equal((await appOf(h)).lastDeployment.rollout, inFlight.rollout)
})

test('two rollouts at once collide with 409 on the first host they share, and the second halts cleanly', async () => {
  const h2 = hosts[1]!
  // The first rollout stays on h2 for a while (a long stable window), so the second one finds it there.
  await api(h2, 'PUT', '/settings', { stableWindowMs: 8000 })
  const file = await tarball('v2')
  const a = fleet(['deploy', file, '--fleet', fleetFile, '--rollout', 'rollout-a', '--json'])
  await until('rollout-a on h2', async () => {
    const d = (await appOf(h2)).lastDeployment
    return d && d.rollout === 'rollout-a' && !d.finishedAt
  }, 180_000, 100)
  const b = await run(['deploy', file, '--fleet', fleetFile, '--rollout', 'rollout-b', '--json'])
  assert.equal(b.code, 1, b.stdout + b.stderr)
  assert.deepEqual([b.result.halted.host, b.result.halted.code], ['h2', 'DEPLOYMENT_IN_PROGRESS'])
  assert.deepEqual(b.result.hosts.map((h: any) => h.outcome), ['skipped', 'refused', 'not_deployed', 'not_deployed'])
  for (const h of hosts) assert.deepEqual(await deploymentsOf(h, '?rollout=rollout-b'), [], `${h.name}: the second rollout changed nothing`)
  const ra = await a.done
  await api(h2, 'PUT', '/settings', { stableWindowMs: 1000 })
  assert.equal(ra.code, 0, ra.stdout + ra.stderr)
  assert.deepEqual(await currents(), [ids.v2, ids.v2, ids.v2, ids.v2])
})

test('tokens come from the variables the file names: missing or wrong ones are refused by name', async () => {
  const env = cliEnv()
  delete env.BERTH_TOKEN_H2
  const missing = await run(['status', '--fleet', fleetFile], env)
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /No token for h2 \(BERTH_TOKEN_H2\).*\(FLEET_TOKEN_MISSING\)/)
  // h1's token is not valid on h2: h2 answers, and refuses.
  const wrong = await run(['status', '--fleet', fleetFile, '--json'], { ...cliEnv(), BERTH_TOKEN_H2: hosts[0]!.token })
  assert.equal(wrong.code, 0)
  assert.deepEqual([wrong.result.hosts[1].reachable, wrong.result.hosts[1].error.code], [true, 'UNAUTHORIZED'])
  const bad = await run(['deploy', fleetFile, '--fleet', path.join(work, 'none.yml')])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /FLEET_FILE_INVALID/)
})

test('fleet status reports all four hosts, marks one that is down as unreachable, and a deploy then stops before anything changes', async () => {
  const ok = await run(['status', '--fleet', fleetFile, '--json'])
  assert.equal(ok.code, 0, ok.stderr)
  assert.deepEqual(ok.result.hosts.map((h: any) => [h.host, h.reachable, h.current, h.node, h.differs]), hosts.map((h) => [h.name, true, ids.v2, 'running', false]))
  assert.equal(ok.result.hosts[0].lastDeployment.rollout, 'rollout-a')

  const h4 = hosts[3]!
  await h4.d.stop()
  h4.stopped = true
  const down = await run(['status', '--fleet', fleetFile, '--json'])
  assert.equal(down.code, 0, down.stderr)
  assert.equal(down.result.hosts.length, 4)
  assert.deepEqual([down.result.hosts[3].reachable, down.result.hosts[3].error.code], [false, 'CONNECTION_REFUSED'])
  assert.deepEqual(down.result.hosts.slice(0, 3).map((h: any) => h.reachable && h.current === ids.v2), [true, true, true])
  const text = await run(['status', '--fleet', fleetFile])
  assert.match(text.stdout, /^ h4 +no \(CONNECTION_REFUSED\)/m)
  assert.match(text.stdout, /3 of 4 hosts reachable/)

  const before = await Promise.all(hosts.slice(0, 3).map(async (h) => (await deploymentsOf(h)).length))
  const r = await run(['deploy', await tarball('v1'), '--fleet', fleetFile, '--json'])
  assert.equal(r.code, 1)
  assert.deepEqual([r.result.halted.host, r.result.hosts[3].outcome], ['h4', 'unreachable'])
  assert.deepEqual(await Promise.all(hosts.slice(0, 3).map(async (h) => (await deploymentsOf(h)).length)), before, 'nothing deployed anywhere')
})

test('no token appears in anything berth fleet printed, nor in any agent\'s log at debug', () => {
  assert.ok(printed.length > 10)
  for (const h of hosts) for (const text of printed) assert.ok(!text.includes(h.token), `${h.name}'s token was printed`)
  const logs = hosts.map((h) => h.d.logs())
  // The logs are real: every agent logged the deployments the rollouts made.
  for (const [i, log] of logs.entries()) assert.match(log, /"method":"POST","url":"\/v1\/apps\/hello\/deployments".*"request completed"/, `h${i + 1} logged its requests`)
  for (const h of hosts) for (const [i, log] of logs.entries()) assert.ok(!log.includes(h.token), `${h.name}'s token is in h${i + 1}'s log`)
  // Nor the secret half alone (after the prefix), which a log of a parsed header could hold.
  for (const h of hosts) for (const log of logs) assert.ok(!log.includes(h.token.slice(-20)), `part of ${h.name}'s token is in a log`)
})

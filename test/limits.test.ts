// Resource limits per app (issue 26): the setting's validation; on this machine's real cgroups, a process over
// memoryMax killed by the kernel and counted, forks stopped at tasksMax; the clear "not available here"
// answer where the host offers nothing (always, on an empty cgroup root); and the API and the OOM report.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import pino from 'pino'
import type { LimitSettings } from '../src/apps/limits-settings.js'
import { DEFAULT_SETTINGS, mergeSettings } from '../src/apps/settings.js'
import { isBerthError } from '../src/errors.js'
import { AppLimits } from '../src/isolation/limits.js'
import { explainExit, oomExitReason } from '../src/supervision/oom.js'
import type { Handle } from '../src/supervision/types.js'
import { startDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

const log = pino({ level: 'silent' })
const MiB = 1024 ** 2
const NONE: LimitSettings = { memoryMax: null, cpuWeight: null, cpuQuota: null, tasksMax: null }
const roots: string[] = []
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-limits-'))
  roots.push(d)
  return d
}
after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })))

function refused(patch: unknown, field: string): void {
  assert.throws(() => mergeSettings(DEFAULT_SETTINGS, { limits: patch }), (err: unknown) => isBerthError(err) && err.code === 'VALIDATION_FAILED' && err.extra?.field === field, `${JSON.stringify(patch)} is refused on ${field}`)
}

describe('the limits setting', () => {
  test('none by default; sizes in bytes or with a unit; fields merge; all null is null', () => {
    assert.equal(DEFAULT_SETTINGS.limits, null)
    const s = mergeSettings(DEFAULT_SETTINGS, { limits: { memoryMax: '512M', cpuQuota: 150 } })
    assert.deepEqual(s.limits, { ...NONE, memoryMax: 512 * MiB, cpuQuota: 150 })
    assert.equal(mergeSettings(DEFAULT_SETTINGS, { limits: { memoryMax: '2G' } }).limits?.memoryMax, 2 * 1024 ** 3)
    assert.equal(mergeSettings(DEFAULT_SETTINGS, { limits: { memoryMax: '1.5GiB' } }).limits?.memoryMax, 1.5 * 1024 ** 3)
    assert.equal(mergeSettings(DEFAULT_SETTINGS, { limits: { memoryMax: 64 * MiB } }).limits?.memoryMax, 64 * MiB)
    const more = mergeSettings(s, { limits: { tasksMax: 1024, cpuWeight: 50 } })
    assert.deepEqual(more.limits, { memoryMax: 512 * MiB, cpuQuota: 150, tasksMax: 1024, cpuWeight: 50 }, 'fields not given keep their value')
    assert.equal(mergeSettings(s, { limits: { memoryMax: null, cpuQuota: null } }).limits, null, 'lifting every field is no limits')
    assert.equal(mergeSettings(more, { limits: null }).limits, null)
  })

  test('bad values are refused with VALIDATION_FAILED naming the field', () => {
    for (const bad of ['lots', '512X', -1, 1024, 1.5, true, '']) refused({ memoryMax: bad }, 'limits.memoryMax')
    for (const bad of [0, 10_001, 1.5, '50']) refused({ cpuWeight: bad }, 'limits.cpuWeight')
    for (const bad of [0, -100, 12.5, 100_001]) refused({ cpuQuota: bad }, 'limits.cpuQuota')
    for (const bad of [15, 0, 100.5, '64']) refused({ tasksMax: bad }, 'limits.tasksMax')
    refused({ swapMax: 1 }, 'limits.swapMax')
    refused([], 'limits')
    refused('512M', 'limits')
  })
})

describe('where the host offers no mechanism (an empty cgroup root stands in for a container without cgroups)', () => {
  const asked: LimitSettings = { memoryMax: 64 * MiB, cpuWeight: 50, cpuQuota: 150, tasksMax: 64 }
  const host = () => {
    const root = tmp()
    fs.mkdirSync(path.join(root, 'cgroup'))
    fs.writeFileSync(path.join(root, 'self'), '0::/\n4:memory:/x\n1:cpu:/\n')
    return { cgroupRoot: path.join(root, 'cgroup'), procSelfCgroup: path.join(root, 'self') }
  }

  test('the answer is "not available here", with why for every field asked for, and nothing to join', () => {
    const limits = new AppLimits({ log, limitsOf: () => asked, ...host() })
    const support = limits.detect()
    assert.equal(support.via, null)
    assert.match(support.reason, /^Not available here: no cgroup v2 file system under .*; no usable cgroup v1 hierarchy for memory \(not mounted\).*isolation is off/)
    const r = limits.apply('shop', asked)
    assert.equal(r.via, null)
    assert.deepEqual(r.enforced, {})
    assert.deepEqual(r.notEnforced.map((n) => n.field), ['memoryMax', 'cpuWeight', 'cpuQuota', 'tasksMax'])
    for (const n of r.notEnforced) assert.match(n.reason, /cgroup/, `${n.field} says why`)
    assert.match(r.notEnforced[0].reason, /RLIMIT_AS/, 'memoryMax says why rlimits do not stand in')
    assert.deepEqual(limits.procsFiles('shop'), [])
    assert.deepEqual(limits.prlimitArgs('shop'), [])
    const view = limits.view('shop')
    assert.equal(view.usage, null)
    assert.equal(view.oomKills, null)
    assert.equal(view.hostSupport, support.reason)
  })

  test('with a uid per app, tasksMax alone goes through RLIMIT_NPROC (prlimit --nproc) and the rest is said', () => {
    const limits = new AppLimits({ log, limitsOf: () => asked, perAppUid: () => true, ...host() })
    assert.equal(limits.detect().via, 'rlimit')
    const r = limits.ensure('shop')
    assert.deepEqual(r, { via: 'rlimit', enforced: { tasksMax: 64 }, notEnforced: r.notEnforced })
    assert.deepEqual(r.notEnforced.map((n) => n.field), ['memoryMax', 'cpuWeight', 'cpuQuota'])
    assert.deepEqual(limits.prlimitArgs('shop'), ['--nproc=64:64'])
    assert.deepEqual(limits.procsFiles('shop'), [])
  })
})

test('cgroup v2 (as files: this machine has no delegated v2): berth moves into a leaf, hands the controllers down, writes each limit', () => {
  const root = tmp()
  const own = path.join(root, 'system.slice', 'berth.service')
  fs.mkdirSync(own, { recursive: true })
  fs.writeFileSync(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n')
  fs.writeFileSync(path.join(own, 'cgroup.controllers'), 'cpu memory pids\n')
  fs.writeFileSync(path.join(own, 'cgroup.subtree_control'), '\n')
  fs.writeFileSync(path.join(own, 'cgroup.procs'), '4242\n')
  fs.writeFileSync(path.join(own, 'cgroup.type'), 'domain\n')
  fs.writeFileSync(path.join(root, 'self'), '0::/system.slice/berth.service\n')
  const limits = new AppLimits({ log, limitsOf: () => null, cgroupRoot: root, procSelfCgroup: path.join(root, 'self') })
  assert.equal(limits.detect().via, 'cgroup2')
  const r = limits.apply('shop', { memoryMax: 64 * MiB, cpuWeight: 50, cpuQuota: 150, tasksMax: 100 })
  assert.deepEqual(r, { via: 'cgroup2', enforced: { memoryMax: 64 * MiB, cpuWeight: 50, cpuQuota: 150, tasksMax: 100 }, notEnforced: [] })
  const app = path.join(own, 'app-shop')
  const read = (f: string) => fs.readFileSync(path.join(app, f), 'utf8')
  assert.deepEqual([read('memory.max'), read('cpu.weight'), read('cpu.max'), read('pids.max')], [String(64 * MiB), '50', '150000 100000', '100'])
  assert.equal(fs.readFileSync(path.join(own, 'berth', 'cgroup.procs'), 'utf8'), '4242', 'berth\'s processes went into the leaf')
  assert.match(fs.readFileSync(path.join(own, 'cgroup.subtree_control'), 'utf8'), /^\+(memory|cpu|pids)$/)
  assert.deepEqual(limits.procsFiles('shop'), [], 'limitsOf says none: the launcher puts nothing in it')
})

describe('on this machine\'s cgroups', () => {
  const asked = new Map<string, LimitSettings>()
  const limits = new AppLimits({ log, limitsOf: (app) => asked.get(app) ?? null })
  const support = limits.detect()
  const kernel = support.via === 'cgroup2' || support.via === 'cgroup1'
  const skip = kernel ? false : `no cgroup berth may use here: ${support.reason}`
  const made: string[] = []
  const use = (app: string, l: LimitSettings) => {
    asked.set(app, l)
    made.push(app)
    return limits.ensure(app)
  }
  after(async () => {
    for (const app of made) {
      // Anything still running in the app's cgroups ends, so that they can be removed.
      for (const f of limits.procsFiles(app)) for (const pid of fs.readFileSync(f, 'utf8').split('\n').filter(Boolean)) try { process.kill(Number(pid), 'SIGKILL') } catch { /* gone */ }
      asked.delete(app)
      await until(`the cgroups of ${app} are removed`, () => limits.remove(app).length === 0 || null, 5000)
    }
  })

  /** What the launcher does: the shell joins each cgroup, then execs the app's code. */
  const runIn = (app: string, script: string) => new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    const child = spawn('/bin/sh', ['-c', `while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; ${script}`, 'berth-launch', ...limits.procsFiles(app), '--'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }))
  })

  test('what this host offers is said in one sentence', () => {
    if (kernel) assert.match(support.reason, /^cgroup v[12]: /)
    else assert.match(support.reason, /^(Not available here|Only tasksMax)/)
  })

  test('a process that allocates beyond memoryMax is killed by the kernel, and oomKills counts it', { skip }, async () => {
    const app = `lim-oom-${process.pid}`
    const r = use(app, { ...NONE, memoryMax: 32 * MiB })
    assert.deepEqual(r, { via: support.via, enforced: { memoryMax: 32 * MiB }, notEnforced: [] })
    assert.equal(limits.oomKills(app), 0)
    // dd's one 64 MiB buffer, filled from /dev/zero: twice the limit, in one process.
    const ran = await runIn(app, 'exec dd if=/dev/zero of=/dev/null bs=64M count=1')
    assert.equal(ran.signal, 'SIGKILL', `killed by the kernel, not ${ran.code}: ${ran.stderr}`)
    assert.equal(limits.oomKills(app), 1)
    const usage = limits.usage(app)
    assert.ok(usage && typeof usage.memoryBytes === 'number' && typeof usage.cpuUsageUsec === 'number', JSON.stringify(usage))
    // The same allocation fits once the limit is lifted (same cgroup, so the count stays).
    asked.set(app, { ...NONE, memoryMax: 256 * MiB })
    assert.deepEqual(limits.ensure(app).enforced, { memoryMax: 256 * MiB })
    const fits = await runIn(app, 'exec dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null')
    assert.equal(fits.code, 0, fits.stderr)
    assert.equal(limits.oomKills(app), 1)
  })

  test('tasksMax stops forks; CPU weight and quota land in the kernel\'s files', { skip }, async () => {
    const app = `lim-pids-${process.pid}`
    const r = use(app, { ...NONE, tasksMax: 16, cpuWeight: 200, cpuQuota: 50 })
    assert.deepEqual(r.enforced, { tasksMax: 16, cpuWeight: 200, cpuQuota: 50 })
    const ran = await runIn(app, 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all 40 started >&2')
    assert.match(ran.stderr, /fork/i)
    assert.doesNotMatch(ran.stderr, /all 40 started/)
    const tasks = limits.usage(app)?.tasks
    assert.ok(tasks !== null && tasks !== undefined && tasks <= 16 && tasks >= 10, `the sleeps up to the limit still run: ${tasks}`)
    const files = limits.procsFiles(app).map(path.dirname)
    const cpu = files.find((d) => fs.existsSync(path.join(d, support.via === 'cgroup2' ? 'cpu.max' : 'cpu.cfs_quota_us')))!
    if (support.via === 'cgroup2') assert.equal(fs.readFileSync(path.join(cpu, 'cpu.max'), 'utf8').trim(), '50000 100000')
    else assert.deepEqual(['cpu.cfs_quota_us', 'cpu.shares'].map((f) => fs.readFileSync(path.join(cpu, f), 'utf8').trim()), ['50000', '2048'])
  })

  test('limits lifted: the files say "no limit" and an empty cgroup is removed; one in use stays and is named', { skip }, async () => {
    const app = `lim-lift-${process.pid}`
    use(app, { ...NONE, memoryMax: 64 * MiB })
    const files = limits.procsFiles(app)
    assert.ok(files.length > 0)
    const ran = runIn(app, 'exec sleep 30')
    await until('the sleep is in the cgroup', () => fs.readFileSync(files[0], 'utf8').trim() || null, 5000)
    asked.delete(app)
    assert.deepEqual(limits.ensure(app), { via: null, enforced: {}, notEnforced: [] })
    assert.ok(files.every((f) => fs.existsSync(f)), 'in use: kept')
    for (const pid of fs.readFileSync(files[0], 'utf8').split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL')
    await ran
    await until('removed once empty', () => limits.remove(app).length === 0 || null, 5000)
    assert.ok(files.every((f) => !fs.existsSync(path.dirname(f))))
  })
})

test('the OOM report names the limit and keeps the signal; one kill is told once for the two instances of an app', () => {
  assert.equal(oomExitReason('exited with code 137', 200 * MiB), `out of memory under its limit (memoryMax ${200 * MiB} bytes; exited with code 137)`)
  const handle = (oomKills: number | null) => ({ oomKills }) as Handle
  const [live, standby] = [handle(2), handle(2)]
  assert.equal(explainExit(standby, 'killed by SIGKILL', 3, [live, standby], () => 64 * MiB), `out of memory under its limit (memoryMax ${64 * MiB} bytes; killed by SIGKILL)`)
  assert.equal(explainExit(live, 'exited with code 1', 3, [live], () => 64 * MiB), 'exited with code 1', 'the standby\'s kill is not the live one\'s')
  assert.equal(explainExit(handle(null), 'exited with code 1', 1, [], () => null), 'exited with code 1', 'started outside any cgroup')
  assert.equal(explainExit(handle(0), 'exited with code 1', null, [], () => null), 'exited with code 1', 'its cgroup is gone')
})

describe('through the API', () => {
  test('PUT settings takes limits and GET /v1/apps/{app} shows how they are enforced here, or why not', async () => {
    const d = await startDaemon()
    const app = `lim-api-${process.pid}`
    const json = { 'content-type': 'application/json' }
    try {
      await call(`${d.url}/v1/apps/${app}/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
      const bad = await call(`${d.url}/v1/apps/${app}/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ limits: { memoryMax: '1 lot' } }) })
      assert.equal(bad.status, 400)
      assert.equal(bad.body.code, 'VALIDATION_FAILED')
      const put = await call(`${d.url}/v1/apps/${app}/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ limits: { memoryMax: '256M', tasksMax: 4096 } }) })
      assert.equal(put.status, 200, put.text)
      assert.deepEqual(put.body.limits, { ...NONE, memoryMax: 256 * MiB, tasksMax: 4096 })
      const view = (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body.limits
      assert.deepEqual(view.settings, { ...NONE, memoryMax: 256 * MiB, tasksMax: 4096 })
      const via = d.server.services.limits.detect().via
      if (via === 'cgroup1' || via === 'cgroup2') {
        assert.equal(put.body.warnings, undefined, 'nothing to warn about')
        assert.deepEqual(view, { ...view, via, enforced: { memoryMax: 256 * MiB, tasksMax: 4096 }, notEnforced: [], oomKills: 0 })
        assert.equal(view.usage.tasks, 0, 'its cgroup exists, nothing runs in it yet')
      } else {
        assert.ok(put.body.warnings.some((w: string) => /^limits\.memoryMax is not enforced: /.test(w)), put.text)
        assert.ok(view.notEnforced.some((n: { field: string }) => n.field === 'memoryMax'))
      }
      await call(`${d.url}/v1/apps/${app}/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ limits: null }) })
      assert.equal((await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body.limits.usage, null, 'no limits, no cgroup left behind')
    } finally {
      d.server.services.limits.remove(app)
      await d.stop()
    }
  })

  test('a node whose cgroup counted an OOM kill while it ran is reported as out of memory under its limit, not as a crash', { timeout: 120_000 }, async () => {
    const d = await startDaemon()
    const app = `lim-sup-${process.pid}`
    const json = { 'content-type': 'application/json' }
    const { limits } = d.server.services
    // The kernel's counter stands in here (the node runs in no cgroup until the launcher puts it there);
    // the supervisor reads it through the dep services.ts gives it, as it will the real one.
    let kills = 0
    limits.oomKills = () => kills
    try {
      await call(`${d.url}/v1/apps/${app}/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: '0' }) })
      const put = await call(`${d.url}/v1/apps/${app}/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ releaseName: 'hello', stableWindowMs: 200, limits: { memoryMax: '1G' }, restart: { initialDelayMs: 60_000, maxDelayMs: 60_000, maxRestarts: 5, windowMs: 60_000, rollbackWithinMs: 0 } }) })
      assert.equal(put.status, 200, put.text)
      const res = await upload(d.url, app, fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken, query: 'deploy=true' })
      assert.equal(res.body.deployment?.state, 'succeeded', res.text)
      const beam = (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body.node.beamPid as number
      // What the OOM killer does: count, then SIGKILL the largest process of the cgroup, the BEAM.
      kills = 1
      process.kill(beam, 'SIGKILL')
      const lastExit = await until('the exit is recorded', async () => {
        const s = (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body
        return s.node.pid === null && typeof s.node.lastExit === 'string' ? s.node.lastExit as string : null
      }, 30_000, 100)
      assert.match(lastExit, new RegExp(`out of memory under its limit \\(memoryMax ${1024 ** 3} bytes; (exited with code \\d+|killed by SIG[A-Z]+)\\)$`))
      const events = (await call(`${d.url}/v1/apps/${app}/events?limit=50`, { token: d.adminToken })).body.events as { action: string; detail: { why?: string } | null }[]
      assert.ok(events.some((e) => e.action === 'node.exit' && e.detail?.why?.startsWith('out of memory under its limit (memoryMax')), JSON.stringify(events.map((e) => [e.action, e.detail])))
    } finally {
      await d.stop()
      limits.remove(app)
    }
  })

  // The launcher (isolation/launch.ts) puts the node, and everything of the app, into the app's cgroups.
  test('a node that allocates beyond memoryMax is killed by the kernel and reported as out of memory under its limit', { timeout: 180_000 }, async () => {
    const d = await startDaemon()
    // Its own app name (the release stays hello): cgroups are named by app, and other test files run hello.
    const app = `lim-oom-e2e-${process.pid}`
    const json = { 'content-type': 'application/json' }
    const memoryMax = 200 * MiB
    try {
      const support = d.server.services.limits.detect()
      await call(`${d.url}/v1/apps/${app}/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: '0' }) })
      const put = await call(`${d.url}/v1/apps/${app}/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ releaseName: 'hello', stableWindowMs: 500, limits: { memoryMax }, restart: { initialDelayMs: 200, maxDelayMs: 1000, maxRestarts: 5, windowMs: 60_000, rollbackWithinMs: 0 } }) })
      assert.equal(put.status, 200, put.text)
      if (support.via !== 'cgroup1' && support.via !== 'cgroup2') {
        // Where cgroups are not delegated (CI containers): the clear answer instead.
        assert.ok(put.body.warnings?.some((w: string) => w.startsWith('limits.memoryMax is not enforced: ')), put.text)
        return
      }
      const res = await upload(d.url, app, fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken, query: 'deploy=true' })
      assert.equal(res.body.deployment?.state, 'succeeded', res.text)
      const before = (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body
      assert.ok(before.limits.usage.memoryBytes > 10 * MiB, `the node runs in its cgroup: ${JSON.stringify(before.limits)}`)
      assert.equal(before.limits.oomKills, 0)
      // 600 MB in one binary, three times the limit: the kernel's OOM killer ends the BEAM.
      await call(`${d.url}/v1/apps/${app}/rpc`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ expr: ':binary.copy(<<0>>, 600_000_000) |> byte_size()' }) })
      const lastExit = await until('the node exit is recorded', async () => {
        const s = (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body
        return typeof s.node.lastExit === 'string' && s.node.lastExit.includes('out of memory') ? s.node.lastExit as string : null
      }, 60_000, 200)
      assert.match(lastExit, new RegExp(`out of memory under its limit \\(memoryMax ${memoryMax} bytes; (exited with code \\d+|killed by SIG[A-Z]+)\\)`))
      const events = (await call(`${d.url}/v1/apps/${app}/events?limit=50`, { token: d.adminToken })).body.events as { action: string; detail: { why?: string } | null }[]
      assert.ok(events.some((e) => e.action === 'node.exit' && e.detail?.why?.startsWith('out of memory under its limit')), JSON.stringify(events.map((e) => e.action)))
      assert.ok((await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body.limits.oomKills >= 1)
    } finally {
      await d.stop()
      await until('the app\'s cgroups are removed', () => d.server.services.limits.remove(app).length === 0 || null, 10_000)
    }
  })
})

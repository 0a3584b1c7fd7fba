// Issue 26 from the attacker's side, as root with real users: an app (mallory, the snoop release) whose migration
// and rpc try berth's files and another app's (victim's) cookie, environment and BEAM; every attempt fails with
// EACCES/EPERM, both BEAMs run under uids of their own, no expression shows on a command line, and off means off.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort, processesUnder, startDaemon } from './helpers/daemon.js'
import { fixture, type FixtureName } from './helpers/fixtures.js'
import { call, upload, type Answer } from './helpers/http.js'
import { until } from './helpers/wait.js'

const ROOT = process.getuid?.() === 0
const SKIP = ROOT ? false : 'isolation switches users: run as root (uid 0) to test it'
const json = { 'content-type': 'application/json' }
const TERMINAL = ['succeeded', 'failed', 'rolled_back']

type Op = 'read' | 'ls' | 'append' | 'kill0' | 'link' | 'symlink'
/** name → [op, argument]; what each attempt must get back. */
type Targets = Record<string, [Op, string]>

/** A process's real and effective uid and gid, and its supplementary groups, from /proc/PID/status. */
function idsOf(pid: number): { uid: number; euid: number; gid: number; groups: string } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  // [ \t], not \s: an empty Groups line must not run on into the next one.
  const field = (k: string) => (new RegExp(`^${k}:[ \\t]*(.*)$`, 'm').exec(status)?.[1] ?? '').trim()
  const [uid, euid] = field('Uid').split(/\s+/).map(Number)
  const [gid] = field('Gid').split(/\s+/).map(Number)
  return { uid: uid!, euid: euid!, gid: gid!, groups: field('Groups') }
}

/** What snoop printed: its own ids (`SNOOP-ID …`) and one outcome per target (`ok`, `error eacces`, …). */
function parseSnoop(output: string): { uid: number; euid: number; gid: number; groups: string; results: Record<string, string> } {
  const id = /^SNOOP-ID uid (\d+) (\d+) gid (\d+) (\d+) groups ?(.*)$/m.exec(output)
  assert.ok(id, `snoop printed its ids:\n${output}`)
  const results: Record<string, string> = {}
  for (const m of output.matchAll(/^SNOOP (\S+) (.+)$/gm)) results[m[1]!] = m[2]!.trim()
  return { uid: Number(id[1]), euid: Number(id[2]), gid: Number(id[3]), groups: id[5]!.trim(), results }
}

/** The expected outcome of each target: its own things work (the harness can see success), the rest is refused. */
function expected(targets: Targets): Record<string, string> {
  return Object.fromEntries(Object.entries(targets).map(([name, [op]]) => [name, name.startsWith('own-') ? 'ok' : op === 'kill0' || op === 'link' ? 'error eperm' : 'error eacces']))
}

/** Targets as text, one `name op arg` a line: how the migration gets them (SNOOP_TARGETS). */
const asText = (t: Targets) => Object.entries(t).map(([name, [op, arg]]) => `${name} ${op} ${arg}`).join('\n')
/** Targets as an Elixir map literal, for an rpc expression (JSON strings are Elixir strings for these paths). */
const asElixir = (t: Targets) => `%{${Object.entries(t).map(([name, [op, arg]]) => `${JSON.stringify(name)} => {:${op}, ${JSON.stringify(arg)}}`).join(', ')}}`

/**
 * Watches every /proc/PID/cmdline (as root: every process of every user) for `marker` until stopped; also
 * counts the looks at which a process matching `running` existed, so that a clean answer is known to have
 * been taken while the command ran and not before or after it.
 */
function watchCmdlines(marker: string, running: (cmd: string) => boolean): { stop(): { hits: string[]; looks: number; whileRunning: number } } {
  const hits = new Set<string>()
  let looks = 0
  let whileRunning = 0
  const look = () => {
    looks++
    let seen = false
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      let cmd: string
      try {
        cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ')
      } catch {
        continue
      }
      if (cmd.includes(marker)) hits.add(`${name}: ${cmd}`)
      if (running(cmd)) seen = true
    }
    if (seen) whileRunning++
  }
  const timer = setInterval(look, 40)
  return {
    stop() {
      clearInterval(timer)
      look()
      return { hits: [...hits], looks, whileRunning }
    },
  }
}

interface AppFacts {
  port: number
  release: string
  runErlPid: number
  beamPid: number
}

/** Starts a daemon and the helpers that talk to it; `stop` ends it and says what was left running. */
async function harness(env: Record<string, string> = {}) {
  const d = await startDaemon(env)
  const put = (p: string, body: unknown) => call(`${d.url}${p}`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify(body) })
  const post = (p: string, body: unknown = {}) => call(`${d.url}${p}`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify(body) })
  const node = async (app: string) => (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body.node as { state: string; pid: number | null; beamPid: number | null }
  const deployment = async (app: string, id: string) => (await call(`${d.url}/v1/apps/${app}/deployments/${id}`, { token: d.adminToken })).body
  /** env + settings + upload; answers the release id and the port. */
  async function prepare(app: string, name: FixtureName, releaseName: string, env: Record<string, string>, settings: Record<string, unknown> = {}): Promise<{ port: number; release: string }> {
    const port = await freePort()
    const e = await put(`/v1/apps/${app}/env`, { PORT: String(port), ...env })
    assert.equal(e.status, 200, e.text)
    const s = await put(`/v1/apps/${app}/settings`, { releaseName, stableWindowMs: 300, healthUrl: `http://127.0.0.1:${port}/`, ...settings })
    assert.equal(s.status, 200, s.text)
    const up = await upload(d.url, app, fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
    assert.equal(up.status, 201, up.text)
    return { port, release: up.body.id }
  }
  /** Deploys without ?wait and polls it to its end, so that a test can look at processes meanwhile. */
  async function deploy(app: string, release: string): Promise<Answer['body']> {
    const started = await post(`/v1/apps/${app}/deployments`, { release })
    assert.equal(started.status, 202, started.text)
    return until(`${app}'s deployment to end`, async () => {
      const dep = await deployment(app, started.body.id)
      return TERMINAL.includes(dep.state) ? dep : null
    }, 120_000, 100)
  }
  async function facts(app: string, port: number, release: string): Promise<AppFacts> {
    const n = await until(`${app}'s node to run with a BEAM`, async () => {
      const x = await node(app)
      return x.state === 'running' && x.beamPid ? x : null
    }, 30_000)
    return { port, release, runErlPid: n.pid!, beamPid: n.beamPid! }
  }
  return {
    d,
    put,
    post,
    node,
    prepare,
    deploy,
    facts,
    async stop(): Promise<void> {
      const dir = d.dataDir
      await d.stop()
      assert.deepEqual(processesUnder(dir), [], 'no BEAM, run_erl or epmd is left behind')
    },
  }
}

const httpGet = async (port: number) => (await fetch(`http://127.0.0.1:${port}/`)).text()

describe('isolation on (as root, with real users)', { skip: SKIP }, () => {
  let h: Awaited<ReturnType<typeof harness>>
  let data: string
  let victim: AppFacts
  let mallory: AppFacts
  const secret = `victim-secret-${crypto.randomBytes(8).toString('hex')}`
  const migrateMarker = `MIGMARK-${crypto.randomBytes(8).toString('hex')}`

  /** Every attempt mallory makes, with the real paths: a guessed path that does not exist would prove nothing. */
  function attackTargets(): Targets {
    const v = path.join(data, 'apps', 'victim')
    const m = path.join(data, 'apps', 'mallory')
    const t: Targets = {
      'berth-db': ['read', path.join(data, 'berth.db')],
      'berth-db-append': ['append', path.join(data, 'berth.db')],
      'berth-db-wal': ['read', path.join(data, 'berth.db-wal')],
      'admin-token': ['read', path.join(data, 'initial-admin-token')],
      uploads: ['ls', path.join(data, 'uploads')],
      'app-users': ['read', path.join(data, 'app-users.json')],
      'data-dir-list': ['ls', data],
      'apps-list': ['ls', path.join(data, 'apps')],
      'victim-release-cookie': ['read', path.join(v, 'releases', victim.release, 'releases', 'COOKIE')],
      'victim-shared-list': ['ls', path.join(v, 'shared')],
      'victim-erlang-cookie': ['read', path.join(v, 'shared', '.erlang.cookie')],
      'victim-log-list': ['ls', path.join(v, 'log')],
      'victim-beam-environ': ['read', `/proc/${victim.beamPid}/environ`],
      'victim-run-erl-environ': ['read', `/proc/${victim.runErlPid}/environ`],
      'victim-beam-kill': ['kill0', String(victim.beamPid)],
      'victim-run-erl-kill': ['kill0', String(victim.runErlPid)],
      'berth-kill': ['kill0', String(process.pid)],
      'berth-environ': ['read', `/proc/${process.pid}/environ`],
      // Its own things work: proof that a refusal above is the boundary and not a broken probe.
      'own-shared-list': ['ls', path.join(m, 'shared')],
      'own-erlang-cookie': ['read', path.join(m, 'shared', '.erlang.cookie')],
      'own-environ': ['read', '/proc/self/environ'],
      'own-kill': ['kill0', 'self'],
    }
    // What else berth keeps there, when it exists: its copy of the victim's cookie, its own state.
    for (const [name, file] of [['victim-berth-cookie', path.join(v, 'cookie')], ['victim-berth-cookie-dot', path.join(v, '.cookie')], ['dist-ports', path.join(data, 'dist-ports.json')]] as const) {
      if (fs.existsSync(file)) t[name] = ['read', file]
    }
    if (fs.existsSync(path.join(data, 'run'))) t['run-list'] = ['ls', path.join(data, 'run')]
    return t
  }

  /** Every target mallory is refused exists, as root sees it: the refusal is not an ENOENT of a wrong path. */
  function assertTargetsExist(t: Targets): void {
    for (const [name, [op, arg]] of Object.entries(t)) {
      if (op === 'kill0' || name.startsWith('own-')) continue
      assert.ok(fs.existsSync(arg), `${name}: ${arg} exists`)
    }
  }

  before(async () => {
    if (!ROOT) return
    h = await harness()
    data = h.d.dataDir
    const v = await h.prepare('victim', 'v1', 'hello', { SECRET_B: secret })
    const dep = await h.deploy('victim', v.release)
    assert.equal(dep.state, 'succeeded', JSON.stringify(dep))
    victim = await h.facts('victim', v.port, v.release)
    assert.ok(fs.readFileSync(`/proc/${victim.beamPid}/environ`, 'utf8').includes(`SECRET_B=${secret}`), "the victim's BEAM holds the secret mallory is after")
  })
  after(async () => {
    if (ROOT) await h.stop()
  })

  test('isolation is on by default as root, and /healthz says so', async () => {
    const res = await call(`${h.d.url}/healthz`)
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.details?.isolation?.mode, 'on', res.text)
  })

  test("mallory's migration tries every target: each fails with EACCES/EPERM, its own uid is reported, it deploys", async () => {
    const targets = attackTargets()
    // The migration starts with a sleep, so that its command lines can be read while it runs.
    const m = await h.prepare('mallory', 'snoop', 'snoop', { SNOOP_TARGETS: asText(targets), SNOOP_MIGRATE_SLEEP_MS: '2500' }, { migrateExpr: `Snoop.Release.migrate(); "${migrateMarker}"` })
    assertTargetsExist(targets)
    const mallorysEval = (cmd: string) => cmd.includes(path.join(data, 'apps', 'mallory')) && /\beval\b/.test(cmd)
    const watch = watchCmdlines(migrateMarker, mallorysEval)
    const dep = await h.deploy('mallory', m.release)
    const seen = watch.stop()
    assert.equal(dep.state, 'succeeded', JSON.stringify(dep))
    mallory = await h.facts('mallory', m.port, m.release)

    const output = dep.steps.find((s: { name: string }) => s.name === 'migrating')?.output ?? ''
    const got = parseSnoop(output)
    console.log(`migration's attempts (uid ${got.uid}):\n${Object.entries(got.results).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`)
    assert.deepEqual(seen.hits, [], 'the migration expression is on no command line')
    assert.ok(seen.whileRunning >= 5, `the command lines were read while the migration ran (${seen.whileRunning} of ${seen.looks} looks)`)

    assert.deepEqual(got.results, expected(targets), output)
    assert.ok(got.uid !== 0 && got.euid === got.uid && got.gid === got.uid, `the migration ran as the app's own uid=gid, not root: ${JSON.stringify(got)}`)
    assert.equal(got.groups, '', 'no supplementary groups (setpriv --clear-groups)')
    assert.equal(got.uid, idsOf(mallory.beamPid).uid, "the migration ran as the uid of mallory's node")
    assert.ok(!output.includes(secret), "the victim's secret is nowhere in the output")
  })

  test("two apps' BEAMs run under two uids, neither of them berth's; every process of an app is its own", async () => {
    const berth = process.getuid!()
    const m = idsOf(mallory.beamPid)
    const v = idsOf(victim.beamPid)
    assert.notEqual(m.uid, berth)
    assert.notEqual(v.uid, berth)
    assert.notEqual(m.uid, v.uid)
    for (const [app, ids] of [['mallory', m], ['victim', v]] as const) {
      assert.equal(ids.euid, ids.uid, `${app}: effective = real uid`)
      assert.equal(ids.gid, ids.uid, `${app}: gid = uid`)
      assert.equal(ids.groups, '', `${app}: no supplementary groups`)
      for (const p of processesUnder(path.join(data, 'apps', app))) assert.equal(idsOf(p.pid).uid, ids.uid, `${app}'s ${p.cmd} runs as ${app}'s uid`)
    }
    assert.equal(idsOf(mallory.runErlPid).uid, m.uid, "run_erl holds the node's console: it too is the app's")
    assert.match(await httpGet(mallory.port), new RegExp(`^snoop 0\\.1\\.0 uid ${m.uid}\\n$`))
  })

  test('rpc into mallory tries every target: each fails; the expression is on no command line while it runs', async () => {
    const targets = attackTargets()
    assertTargetsExist(targets)
    const marker = `RPCMARK-${crypto.randomBytes(8).toString('hex')}`
    const mallorysRpc = (cmd: string) => cmd.includes(path.join(data, 'apps', 'mallory')) && /\brpc\b/.test(cmd)
    const watch = watchCmdlines(marker, mallorysRpc)
    const res = await h.post('/v1/apps/mallory/rpc', { expr: `Process.sleep(2500); Snoop.attempts(${asElixir(targets)}); "${marker}"`, timeoutMs: 60_000 })
    const seen = watch.stop()
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.code, 0, res.text)
    const got = parseSnoop(res.body.output)
    console.log(`rpc's attempts (uid ${got.uid}):\n${Object.entries(got.results).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`)
    assert.deepEqual(seen.hits, [], 'the rpc expression is on no command line')
    assert.ok(seen.whileRunning >= 5, `the command lines were read while the rpc ran (${seen.whileRunning} of ${seen.looks} looks)`)
    assert.deepEqual(got.results, expected(targets), res.body.output)
    assert.equal(got.uid, idsOf(mallory.beamPid).uid, "the expression ran in mallory's node, as mallory")
    assert.ok(!res.body.output.includes(secret))
  })

  test("links it plants in its own console log dir do not make berth read berth's files for it (logs API)", async () => {
    const secretPart = h.d.adminToken.slice(23)
    const token = path.join(data, 'initial-admin-token')
    const logDir = path.join(data, 'apps', 'mallory', 'log', 'node')
    const planted = [path.join(logDir, 'erlang.log.8'), path.join(logDir, 'erlang.log.9')]
    // The kernel refuses a hard link to a file its maker may not read (fs.protected_hardlinks=1); where it
    // does not, berth's reading of the log is all that stands between the link and the token.
    const hardlinksProtected = fs.readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim() === '1'
    const targets: Targets = { 'own-token-symlink': ['symlink', `${token} ${planted[1]}`] }
    if (hardlinksProtected) targets['token-hardlink'] = ['link', `${token} ${planted[0]}`]
    try {
      const res = await h.post('/v1/apps/mallory/rpc', { expr: `Snoop.attempts(${asElixir(targets)})` })
      assert.equal(res.body.code, 0, res.text)
      const got = parseSnoop(res.body.output)
      console.log(`link attempts: ${JSON.stringify(got.results)}`)
      assert.deepEqual(got.results, expected(targets), res.body.output)
      assert.ok(fs.lstatSync(planted[1]!).isSymbolicLink(), 'the symlink is there for berth to trip on')
      const reader = h.d.token('mallory-logs', ['read'], ['mallory'])
      for (const format of ['raw', 'text', 'json']) {
        const logs = await call(`${h.d.url}/v1/apps/mallory/logs?source=console&format=${format}&lines=10000`, { token: reader })
        console.log(`logs ${format} with a planted symlink: ${logs.status}`)
        assert.ok(!logs.text.includes(secretPart), `${format}: the admin token came back through mallory's log`)
        assert.equal(logs.status, 200, `${format}: a planted link costs mallory nothing but itself: ${logs.text.slice(0, 300)}`)
      }
    } finally {
      for (const f of planted) fs.rmSync(f, { force: true })
    }
  })

  test("modes: DATA o+x only, the app dir berth:app 0750, shared/ and log/node the app's, berth's files 0600", () => {
    const berth = process.getuid!()
    const uid = idsOf(mallory.beamPid).uid
    const mode = (p: string) => fs.statSync(p).mode & 0o7777
    const octal = (n: number) => n.toString(8).padStart(4, '0')
    // DATA keeps the group bits it was made with (a temp dir: none), plus o+x; DATA/apps is made by berth.
    assert.equal(mode(data) & 0o027, 0o001, `DATA: app users traverse, never list (${octal(mode(data))})`)
    assert.equal(octal(mode(path.join(data, 'apps'))), '0751')
    const appDir = path.join(data, 'apps', 'mallory')
    const st = fs.statSync(appDir)
    assert.deepEqual({ uid: st.uid, gid: st.gid, mode: octal(mode(appDir)) }, { uid: berth, gid: uid, mode: '0750' }, 'the gate: berth owns it, only the app may enter')
    // What the app writes is its own: shared/ (tmp, cookie) and its node's console log dir. log/ itself is
    // berth's (its berth.log lives there), readable by the app through its group.
    for (const dir of ['shared', 'shared/tmp', 'log/node']) {
      const s = fs.statSync(path.join(appDir, dir))
      assert.equal(s.uid, uid, `${dir}/ belongs to the app's uid`)
      assert.equal(s.mode & 0o007, 0, `${dir}/: nothing for others (${octal(mode(path.join(appDir, dir)))})`)
    }
    const log = fs.statSync(path.join(appDir, 'log'))
    assert.deepEqual({ uid: log.uid, gid: log.gid, others: log.mode & 0o007, groupWrite: log.mode & 0o020 }, { uid: berth, gid: uid, others: 0, groupWrite: 0 }, 'log/: berth writes, the app reads')
    for (const file of ['berth.db', 'initial-admin-token', 'app-users.json']) {
      const s = fs.statSync(path.join(data, file))
      assert.equal(s.uid, berth, `${file} is berth's`)
      assert.equal(octal(mode(path.join(data, file))), '0600', file)
    }
    const uploads = fs.statSync(path.join(data, 'uploads'))
    assert.equal(uploads.uid, berth)
    assert.equal(uploads.mode & 0o077, 0, 'uploads/: berth\'s only')
    const users = fs.readFileSync(path.join(data, 'app-users.json'), 'utf8')
    for (const app of ['mallory', 'victim']) assert.ok(users.includes(String(idsOf(app === 'mallory' ? mallory.beamPid : victim.beamPid).uid)), `app-users.json records ${app}'s uid`)
    const rel = path.join(appDir, 'releases', mallory.release)
    assert.equal(mode(rel) & 0o222, 0, 'the release directory is writable by nobody')
  })

  test('afterwards mallory still serves and the victim still runs, the same node', async () => {
    assert.match(await httpGet(mallory.port), /^snoop 0\.1\.0 uid \d+\n$/)
    assert.equal(await httpGet(victim.port), 'hello 0.1.0\n')
    const n = await h.node('victim')
    assert.equal(n.state, 'running')
    assert.deepEqual({ pid: n.pid, beamPid: n.beamPid }, { pid: victim.runErlPid, beamPid: victim.beamPid }, 'the victim was not restarted')
  })
})

describe('isolation off (BERTH_APP_ISOLATION=off)', { skip: SKIP }, () => {
  test('/healthz says off, and the same release runs as root and reads what it was refused', async () => {
    const h = await harness({ BERTH_APP_ISOLATION: 'off' })
    try {
      const health = await call(`${h.d.url}/healthz`)
      assert.equal(health.body.details?.isolation?.mode, 'off', health.text)
      const token = path.join(h.d.dataDir, 'initial-admin-token')
      const m = await h.prepare('mallory', 'snoop', 'snoop', { SNOOP_TARGETS: asText({ 'admin-token': ['read', token] }) })
      const dep = await h.deploy('mallory', m.release)
      assert.equal(dep.state, 'succeeded', JSON.stringify(dep))
      const got = parseSnoop(dep.steps.find((s: { name: string }) => s.name === 'migrating')?.output ?? '')
      // So a test above that passes does so because isolation did something, not because the probe cannot read.
      assert.deepEqual(got.results, { 'admin-token': 'ok' })
      assert.equal(got.uid, process.getuid!())
      const facts = await h.facts('mallory', m.port, m.release)
      assert.equal(idsOf(facts.beamPid).uid, process.getuid!(), 'the BEAM runs as berth')
      assert.match(await httpGet(m.port), new RegExp(`^snoop 0\\.1\\.0 uid ${process.getuid!()}\\n$`))
    } finally {
      await h.stop()
    }
  })
})

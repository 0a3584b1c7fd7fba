// The fleet conductor without agents: the fleet file's checks, the phases (canary, batches, who migrates),
// and halting and putting back, against fake agents that record every request (test/fleet.test.ts is real).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Agent, AgentApp, Deployment } from '../src/fleet/agent.js'
import { hostTokens, parseFleet } from '../src/fleet/file.js'
import { planPhases } from '../src/fleet/phases.js'
import { deployFleet, rollbackFleet } from '../src/fleet/rollout.js'

const hosts = (n: number) => Array.from({ length: n }, (_, i) => `  - { name: h${i + 1}, url: "http://127.0.0.1:${5000 + i}" }`).join('\n')
const fleetText = (n: number, extra = '') => `app: hello\nhosts:\n${hosts(n)}\n${extra}`

test('the fleet file: defaults, a percentage batch, overrides, and each mistake named with a stable code', () => {
  const f = parseFleet(fleetText(4, 'batch: "50%"\n'), 'fleet.yml')
  assert.deepEqual({ canary: f.canary, batch: f.batch, migrate: f.migrate, token: f.hosts[0]!.tokenEnv }, { canary: 1, batch: { percent: 50 }, migrate: 'once', token: 'BERTH_TOKEN' })
  assert.deepEqual(parseFleet(fleetText(4), 'f', { canary: '2', batch: '3', migrate: 'every' }).batch, { count: 3 })
  const bad: [string, RegExp][] = [
    [fleetText(2, 'batch: 0\n'), /batch must be a whole number/],
    [fleetText(2, 'batch: "150%"\n'), /batch must be/],
    [fleetText(2, 'canary: 3\n'), /canary is 3 but the fleet has 2 hosts/],
    [fleetText(2, 'canary: 0\n'), /migrate: once needs canary: 1 or more/],
    [fleetText(2, 'migrate: sometimes\n'), /migrate must be "once"/],
    [fleetText(2, 'batchsize: 2\n'), /unknown key "batchsize"/],
    ['app: hello\nhosts:\n  - { name: a, url: "http://u:secret@h:1" }\n', /must not carry credentials/],
    ['app: hello\nhosts:\n  - { name: a, url: "http://h:1" }\n  - { name: a, url: "http://h:2" }\n', /two hosts have the name "a"/],
    ['app: hello\nhosts:\n  - { name: a, url: "http://h:1", tokenEnv: "1X" }\n', /tokenEnv must name an environment variable/],
    ['app: Hello\nhosts: []\n', /app must be/],
    ['app: hello\nhosts: [\n', /not valid YAML at line/],
  ]
  for (const [text, msg] of bad) assert.throws(() => parseFleet(text, 'fleet.yml'), (e: { code: string; message: string }) => e.code === 'FLEET_FILE_INVALID' && msg.test(e.message), text)
  assert.throws(() => parseFleet(fleetText(2), 'f', { batch: 'lots' }), /--batch: batch must be/)
  const withEnv = parseFleet('app: hello\nhosts:\n  - { name: a, url: "http://h:1", tokenEnv: T_A }\n  - { name: b, url: "http://h:2" }\n', 'f')
  assert.throws(() => hostTokens(withEnv, { T_A: 'tok-a' }), (e: { code: string; message: string }) => e.code === 'FLEET_TOKEN_MISSING' && /b \(BERTH_TOKEN\)/.test(e.message) && !e.message.includes('tok-a'))
  assert.equal(hostTokens(withEnv, { T_A: 'tok-a', BERTH_TOKEN: 'tok' }).get('a'), 'tok-a')
})

test('phases: the canaries alone (the first migrates), then batches without migrating; every migrates each', () => {
  const f = parseFleet(fleetText(8, 'canary: 2\nbatch: 3\n'), 'f')
  const names = f.hosts.map((h) => h.name)
  assert.deepEqual(planPhases(f, names, false), [
    { hosts: ['h1'], migrate: ['h1'] },
    { hosts: ['h2'], migrate: [] },
    { hosts: ['h3', 'h4', 'h5'], migrate: [] },
    { hosts: ['h6', 'h7', 'h8'], migrate: [] },
  ])
  // Resumed: some host is on the release, so its migration ran; the canaries of what is left still go first.
  assert.deepEqual(planPhases(f, ['h5', 'h6', 'h7', 'h8'], true).map((p) => [p.hosts.join(','), p.migrate.length]), [['h5', 0], ['h6', 0], ['h7,h8', 0]])
  const every = parseFleet(fleetText(4, 'canary: 0\nbatch: "50%"\nmigrate: every\n'), 'f')
  assert.deepEqual(planPhases(every, ['h1', 'h2', 'h3', 'h4'], false), [{ hosts: ['h1', 'h2'], migrate: ['h1', 'h2'] }, { hosts: ['h3', 'h4'], migrate: ['h3', 'h4'] }])
})

/** An agent whose deployments end at once in the state `outcome` gives for the host; records every request. */
class FakeAgent implements Agent {
  readonly calls: string[] = []
  current: string | null
  seq = 0
  readonly deps = new Map<string, Deployment>()
  constructor(
    readonly host: { name: string; url: string; tokenEnv: string },
    start: string | null,
    readonly outcome: (kind: string, release: string) => Deployment['state'] | 'unreachable' | 'busy' = () => 'succeeded',
  ) {
    this.current = start
  }
  async upload() {
    this.calls.push('upload')
    return { id: '0.2.0-aaaaaaaaaaaa', version: '0.2.0', created: true }
  }
  async app(): Promise<AgentApp> {
    return { current: this.current, node: { state: 'running', release: this.current }, lastDeployment: [...this.deps.values()].at(-1) ?? null }
  }
  async release(id: string) {
    return { id, version: id.split('-')[0]! }
  }
  async deployments() {
    return [...this.deps.values()].reverse()
  }
  private start(kind: Deployment['kind'], release: string, rollout: string, migrate?: boolean): Deployment {
    this.calls.push(`${kind} ${release}${migrate === false ? ' no-migrate' : ''}`)
    const o = this.outcome(kind, release)
    if (o === 'unreachable') throw Object.assign(new Error('down'), { status: null, code: 'CONNECTION_REFUSED', detail: 'nothing answers' })
    if (o === 'busy') throw Object.assign(new Error('busy'), { status: 409, code: 'DEPLOYMENT_IN_PROGRESS', detail: 'busy' })
    const d = { id: `d${++this.seq}`, app: 'hello', kind, release, previous: this.current, state: o, reason: o === 'succeeded' ? null : 'it broke', reasonCode: o === 'succeeded' ? null : 'HEALTH_CHECK_FAILED', warnings: [], steps: [], actor: null, rollout, createdAt: '', finishedAt: '' } as Deployment
    if (o === 'succeeded') this.current = release
    this.deps.set(d.id, d)
    return d
  }
  async deploy(b: { release: string; migrate: boolean; rollout: string }) {
    return this.start('deploy', b.release, b.rollout, b.migrate)
  }
  async rollback(b: { to?: string; rollout: string }) {
    return this.start('rollback', b.to!, b.rollout)
  }
  async stop() {
    return this.start('stop', this.current ?? '-', '')
  }
  async deployment(id: string) {
    return this.deps.get(id)!
  }
}

const follow = { pollMs: 1, unreachableMs: 10, deadlineMs: 60_000 }
const V1 = '0.1.0-bbbbbbbbbbbb'
const V2 = '0.2.0-aaaaaaaaaaaa'

function fleetOf(n: number, extra: string, outcome: (host: string, kind: string) => Deployment['state'] | 'unreachable' | 'busy' = () => 'succeeded') {
  const fleet = parseFleet(fleetText(n, extra), 'f')
  const agents = fleet.hosts.map((h) => new FakeAgent(h, V1, (kind) => outcome(h.name, kind)))
  return { fleet, agents }
}

test('a rollout uploads everywhere first, migrates on the canary only, and succeeds', async () => {
  const { fleet, agents } = fleetOf(4, 'batch: 2\n')
  const r = await deployFleet({ fleet, agents, file: 'x', sha256: 'y', follow, rollout: 'r1' })
  assert.equal(r.ok, true)
  assert.deepEqual(agents.map((a) => a.calls), [['upload', `deploy ${V2}`], ['upload', `deploy ${V2} no-migrate`], ['upload', `deploy ${V2} no-migrate`], ['upload', `deploy ${V2} no-migrate`]])
  assert.deepEqual(r.phases.map((p) => p.hosts), [['h1'], ['h2', 'h3'], ['h4']])
})

test('a later failure halts: the hosts moved are put back, last first, the rest never touched', async () => {
  const { fleet, agents } = fleetOf(5, 'batch: 1\n', (host, kind) => (host === 'h3' && kind === 'deploy' ? 'rolled_back' : 'succeeded'))
  const r = await deployFleet({ fleet, agents, file: 'x', sha256: 'y', follow, rollout: 'r2' })
  assert.equal(r.ok, false)
  assert.deepEqual(r.halted, { host: 'h3', code: 'HEALTH_CHECK_FAILED', reason: 'it broke' })
  assert.deepEqual(r.hosts.map((h) => h.outcome), ['put_back', 'put_back', 'rolled_back', 'not_deployed', 'not_deployed'])
  assert.deepEqual(agents.map((a) => a.calls.slice(1)), [[`deploy ${V2}`, `rollback ${V1}`], [`deploy ${V2} no-migrate`, `rollback ${V1}`], [`deploy ${V2} no-migrate`], [], []])
  assert.deepEqual(agents.map((a) => a.current), [V1, V1, V1, V1, V1])
})

test('a host that cannot take the upload, or is busy, stops the rollout before anything changes', async () => {
  const { fleet, agents } = fleetOf(3, '')
  agents[2]!.upload = async () => {
    throw Object.assign(new Error('x'), { status: 413, code: 'UPLOAD_TOO_LARGE', detail: 'too large' })
  }
  const r = await deployFleet({ fleet, agents, file: 'x', sha256: 'y', follow })
  assert.deepEqual([r.ok, r.halted?.host, r.halted?.code], [false, 'h3', 'UPLOAD_TOO_LARGE'])
  assert.deepEqual(agents.map((a) => a.calls.filter((c) => c !== 'upload')), [[], [], []])
  const busy = fleetOf(2, '', (host) => (host === 'h1' ? 'busy' : 'succeeded'))
  const b = await deployFleet({ ...busy, file: 'x', sha256: 'y', follow })
  assert.deepEqual([b.halted?.code, b.hosts.map((h) => h.outcome)], ['DEPLOYMENT_IN_PROGRESS', ['refused', 'not_deployed']])
})

test('running it again resumes: hosts on the release are skipped, and their rollout id is kept', async () => {
  const { fleet, agents } = fleetOf(3, '')
  await agents[0]!.deploy({ release: V2, migrate: true, rollout: 'r-old' })
  const r = await deployFleet({ fleet, agents, file: 'x', sha256: 'y', follow })
  assert.equal(r.rollout, 'r-old')
  assert.deepEqual(r.hosts.map((h) => h.outcome), ['skipped', 'done', 'done'])
  assert.deepEqual(agents[1]!.calls, ['upload', `deploy ${V2} no-migrate`], 'the migration ran already: nobody migrates again')
})

test('a fleet rollback goes batch by batch to the release before, and stops at the first failure', async () => {
  const { fleet, agents } = fleetOf(3, 'batch: 2\n', (host, kind) => (host === 'h2' && kind === 'rollback' ? 'failed' : 'succeeded'))
  for (const a of agents) await a.deploy({ release: V2, migrate: false, rollout: 'r' })
  for (const a of agents) a.deps.set('d0', { ...[...a.deps.values()][0]!, id: 'd0', release: V1 })
  const r = await rollbackFleet({ fleet, agents, follow })
  assert.equal(r.release, V1)
  assert.deepEqual(r.hosts.map((h) => h.outcome), ['done', 'failed', 'done'])
  assert.equal(r.halted?.host, 'h2')
})

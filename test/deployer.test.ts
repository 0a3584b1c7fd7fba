// The deployment state machine on its own: real SQLite, real directories and the real `current` symlink,
// with a scripted fake in place of the node (the NodeControl seam), so each path is exercised in milliseconds.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, test } from 'node:test'
import pino from 'pino'
import type { AppSettings } from '../src/apps/settings.js'
import { AppStore } from '../src/apps/store.js'
import { Deployer } from '../src/deploy/deployer.js'
import { isBerthError } from '../src/errors.js'
import { deleteRelease } from '../src/intake/cleanup.js'
import { Paths } from '../src/paths.js'
import { currentReleaseId } from '../src/releases/current.js'
import { openDatabase, type Database } from '../src/store/db.js'
import { DeploymentStore, type Deployment } from '../src/store/deployments.js'
import { EventStore } from '../src/store/events.js'
import { ReleaseStore, type Release } from '../src/store/releases.js'
import type { CommandResult } from '../src/supervision/proc.js'
import type { NodeControl } from '../src/supervision/supervisor.js'

const log = pino({ level: 'silent' })
const V1 = '0.1.0-aaaaaaaaaaaa'
const V2 = '0.2.0-bbbbbbbbbbbb'

/** A node that does what the test scripts: which releases fail verification, how commands answer. */
class FakeNode implements NodeControl {
  calls: string[] = []
  running: string | null = null
  failVerify = new Set<string>()
  failStop = false
  /** Resolves a command; default: exit 0. */
  onCommand: (command: string, args: string[], signal?: AbortSignal) => Promise<CommandResult> = async () => ({ code: 0, signal: null, output: 'ok', timedOut: false, ms: 1 })
  /** Verification waits on this when set (to hold a deployment inside `verifying`). */
  holdVerify: Promise<void> | null = null
  /** A stop waits on this when set; the node counts as up until it resolves, like a real one. */
  holdStop: Promise<void> | null = null

  uidOf(): number | null {
    return null
  }
  kindOf(): 'mix' {
    return 'mix'
  }
  async command(_app: string, release: string, command: string, args: string[], _timeoutMs: number, signal?: AbortSignal): Promise<CommandResult> {
    // An expression travels in a file (releases/expr-file.ts): the call records what the file holds.
    const file = /^Code\.eval_file\("(.+)"\)$/.exec(args[0] ?? '')?.[1]
    const shown = file ? [fs.readFileSync(file, 'utf8'), ...args.slice(1)] : args
    this.calls.push(`command ${release} ${command} ${shown.join(' ')}`)
    return this.onCommand(command, shown, signal)
  }
  async start(_app: string, release: string): Promise<void> {
    this.calls.push(`start ${release}`)
    this.running = release
  }
  async stop(): Promise<string | null> {
    this.calls.push('stop')
    if (this.holdStop) await this.holdStop
    if (this.failStop) throw new TypeError('stuck in D state')
    this.running = null
    return null
  }
  async verify(_app: string, _settings: AppSettings, signal?: AbortSignal): Promise<string> {
    this.calls.push(`verify ${this.running}`)
    if (this.holdVerify) {
      await new Promise<void>((resolve, reject) => {
        void this.holdVerify!.then(resolve)
        signal?.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })), { once: true })
      })
    }
    if (this.running && this.failVerify.has(this.running)) throw new TypeError(`${this.running} exited during boot`)
    return 'verified'
  }
  commandFor(_app: string, _release: string, settings: AppSettings, role: 'eval' | 'start' | 'stop' | 'pid' | 'rpc' | 'remote'): string {
    return settings.commands[role] ?? { start: 'start_iex', eval: 'eval', rpc: 'rpc', remote: 'remote', stop: 'stop', pid: 'pid' }[role]
  }
  commandHint(): string {
    return ''
  }
  isUp(): boolean {
    return this.running !== null
  }
  adopt() {
    return { adopted: [], dead: [] }
  }
}

let dir: string
let db: Database
let paths: Paths
let releases: ReleaseStore
let events: EventStore
let apps: AppStore
let node: FakeNode
let verified: string[]

function deployer(owner = 'test-owner'): { deployer: Deployer; deployments: DeploymentStore } {
  const deployments = new DeploymentStore(db, owner)
  const health = { verified: (app: string) => void verified.push(app) }
  return { deployer: new Deployer({ paths, releases, deployments, apps, events, supervisor: node, health, log }), deployments }
}

function addRelease(id: string): Release {
  const rel: Release = { id, app: 'hello', version: id.split('-')[0]!, sha256: id.padEnd(64, '0'), size: 1, unpackedBytes: 1, files: 1, uploadedAt: new Date().toISOString(), uploadedBy: null, kind: 'mix' }
  fs.mkdirSync(paths.release('hello', id), { recursive: true })
  releases.insert(rel)
  return rel
}

async function settle(d: Deployer, dep: Deployment): Promise<Deployment> {
  return (await d.finished(dep.id))!
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-deployer-'))
  paths = new Paths(dir)
  fs.mkdirSync(paths.apps, { recursive: true })
  db = openDatabase(paths.db, log)
  releases = new ReleaseStore(db)
  events = new EventStore(db, log)
  apps = new AppStore(db, events)
  releases.ensureApp('hello')
  node = new FakeNode()
  verified = []
})

afterEach(() => {
  db.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

test('deploy: migrate (skipped without a Release module), switch, start, verify; current moves', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  const done = await settle(d, await d.deploy('hello', v1, 'ci'))
  assert.equal(done.state, 'succeeded', done.reason ?? '')
  assert.deepEqual(done.steps.map((s) => `${s.name}:${s.state}`), ['migrating:skipped', 'switching:ok', 'starting:ok', 'verifying:ok'])
  assert.equal(await currentReleaseId(paths, 'hello'), V1)
  assert.deepEqual(node.calls, ['stop', `start ${V1}`, `verify ${V1}`])
  assert.equal(events.list('hello').find((e) => e.action === 'deploy')?.outcome, 'succeeded')
})

test('a failed verification rolls back to the previous release, which is started again', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  const v2 = addRelease(V2)
  await settle(d, await d.deploy('hello', v1, 'ci'))
  node.failVerify.add(V2)
  node.calls = []
  const done = await settle(d, await d.deploy('hello', v2, 'ci'))
  assert.equal(done.state, 'rolled_back')
  assert.match(done.reason!, new RegExp(`${V2} exited during boot; rolled back to ${V1}`))
  assert.equal(await currentReleaseId(paths, 'hello'), V1)
  assert.equal(node.running, V1)
  assert.deepEqual(done.steps.map((s) => `${s.name}:${s.state}`), ['migrating:skipped', 'switching:ok', 'starting:ok', 'verifying:failed', 'rollback:ok'])
})

test('a failing migration changes nothing: current and node untouched, output kept', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  const v2 = addRelease(V2)
  await settle(d, await d.deploy('hello', v1, 'ci'))
  apps.saveSettings('hello', { migrateExpr: 'Hello.Release.migrate()' }, 'test')
  node.onCommand = async () => ({ code: 1, signal: null, output: '** (RuntimeError) boom', timedOut: false, ms: 5 })
  node.calls = []
  const done = await settle(d, await d.deploy('hello', v2, 'ci'))
  assert.equal(done.state, 'failed')
  assert.match(done.reason!, /migration exited with code 1; current release and running node are untouched/)
  assert.match(done.steps[0]!.output, /RuntimeError\) boom/)
  assert.equal(await currentReleaseId(paths, 'hello'), V1)
  assert.deepEqual(node.calls, [`command ${V2} eval Hello.Release.migrate()`])
})

test('a first deploy that fails says whether stopping the node worked', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  node.failVerify.add(V1)
  const ok = await settle(d, await d.deploy('hello', v1, 'ci'))
  assert.equal(ok.state, 'failed')
  assert.match(ok.reason!, /no previous release to roll back to, the node is stopped$/)
  node.failStop = true
  const v2 = addRelease(V2)
  node.failVerify.add(V2)
  fs.rmSync(paths.current('hello'))
  const stuck = await settle(d, await d.deploy('hello', v2, 'ci'))
  assert.equal(stuck.state, 'failed')
  assert.match(stuck.reason!, /stopping the node failed too \(stuck in D state\)/)
})

test('one deployment per app at a time: the second is refused with the holder named', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  let release!: () => void
  node.holdVerify = new Promise((r) => (release = r))
  const first = await d.deploy('hello', v1, 'ci')
  await assert.rejects(d.deploy('hello', v1, 'ci'), (err: unknown) => isBerthError(err) && err.code === 'DEPLOYMENT_IN_PROGRESS' && err.extra.deployment === first.id)
  release()
  assert.equal((await settle(d, first)).state, 'succeeded')
})

test('a start during a stop is refused naming the stop, not answered "already running"', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  await settle(d, await d.deploy('hello', v1, 'ci'))
  let stopped!: () => void
  node.holdStop = new Promise((r) => (stopped = r))
  const stop = await d.operate('hello', 'stop', 'oncall')
  await assert.rejects(d.operate('hello', 'start', 'oncall'), (err: unknown) => isBerthError(err) && err.code === 'DEPLOYMENT_IN_PROGRESS' && err.extra.kind === 'stop' && err.extra.deployment === stop.id && /busy with a stop of the node/.test(err.message))
  stopped()
  const done = await settle(d, stop)
  assert.deepEqual(done.steps.map((s) => `${s.name}:${s.state}`), ['stopping:ok'])
  node.holdStop = null
  await settle(d, await d.operate('hello', 'start', 'oncall'))
  const restart = await settle(d, await d.operate('hello', 'restart', 'oncall'))
  assert.deepEqual(restart.steps.map((s) => `${s.name}:${s.state}`), ['stopping:ok', 'starting:ok', 'verifying:ok'])
})

test('a rollback runs the rollback expression under its own step, from the release being left', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  const v2 = addRelease(V2)
  await settle(d, await d.deploy('hello', v1, 'ci'))
  await settle(d, await d.deploy('hello', v2, 'ci'))
  apps.saveSettings('hello', { rollbackExpr: 'Hello.Release.rollback("VERSION")' }, 'test')
  node.calls = []
  const plain = await settle(d, await d.rollback('hello', v1, 'oncall'))
  assert.deepEqual(plain.steps.map((s) => `${s.name}:${s.state}`), ['reverting_migrations:skipped', 'switching:ok', 'starting:ok', 'verifying:ok'])
  await settle(d, await d.deploy('hello', v2, 'ci'))
  node.calls = []
  const done = await settle(d, await d.rollback('hello', v1, 'oncall', { runRollbackExpr: true }))
  assert.equal(done.state, 'succeeded', done.reason ?? '')
  assert.deepEqual(done.steps.map((s) => `${s.name}:${s.state}`), ['reverting_migrations:ok', 'switching:ok', 'starting:ok', 'verifying:ok'])
  assert.equal(node.calls[0], `command ${V2} eval Hello.Release.rollback("0.1.0")`)
})

test('a release an unfinished deployment names cannot be deleted, as target or as previous', async () => {
  const { deployer: d, deployments } = deployer()
  const v1 = addRelease(V1)
  const v2 = addRelease(V2)
  await settle(d, await d.deploy('hello', v1, 'ci'))
  const deps = { paths, releases, deployments, events, log }
  const inUse = (err: unknown) => isBerthError(err) && err.status === 409 && /has not finished/.test(err.message)
  // The target, while it migrates (current is still v1).
  apps.saveSettings('hello', { migrateExpr: 'Hello.Release.migrate()' }, 'test')
  let migrated!: () => void
  const migration = new Promise<void>((r) => (migrated = r))
  node.onCommand = async () => (await migration, { code: 0, signal: null, output: 'ok', timedOut: false, ms: 1 })
  let verifiedNow!: () => void
  node.holdVerify = new Promise((r) => (verifiedNow = r))
  const running = await d.deploy('hello', v2, 'ci')
  await assert.rejects(deleteRelease(deps, 'hello', V2, 'x'), inUse)
  migrated()
  // The one it would roll back to, once current has moved to v2 and the node is being verified.
  while (!node.calls.includes(`verify ${V2}`)) await new Promise((r) => setTimeout(r, 5))
  await assert.rejects(deleteRelease(deps, 'hello', V1, 'x'), inUse)
  assert.ok(fs.existsSync(paths.release('hello', V1)) && fs.existsSync(paths.release('hello', V2)))
  verifiedNow()
  assert.equal((await settle(d, running)).state, 'succeeded')
  // Once it is over, the old one may go.
  await deleteRelease(deps, 'hello', V1, 'x')
  assert.equal(releases.get('hello', V1), null)
})

test('a deployment cannot start for a release deleted a moment before', async () => {
  const { deployer: d, deployments } = deployer()
  const v1 = addRelease(V1)
  await deleteRelease({ paths, releases, deployments, events, log }, 'hello', V1, 'x')
  await assert.rejects(d.deploy('hello', v1, 'ci'), (err: unknown) => isBerthError(err) && err.code === 'RELEASE_NOT_FOUND')
})

test('shutdown during a migration kills it and ends the deployment failed, nothing changed', async () => {
  const { deployer: d } = deployer()
  const v1 = addRelease(V1)
  const v2 = addRelease(V2)
  await settle(d, await d.deploy('hello', v1, 'ci'))
  apps.saveSettings('hello', { migrateExpr: 'Hello.Release.migrate()' }, 'test')
  let sawAbort = false
  node.onCommand = (_c, _a, signal) =>
    new Promise((resolve) => {
      signal?.addEventListener('abort', () => {
        sawAbort = true
        resolve({ code: null, signal: 'SIGKILL', output: 'migrating...', timedOut: false, ms: 50 })
      })
    })
  const dep = await d.deploy('hello', v2, 'ci')
  const job = d.finished(dep.id)!
  await d.shutdown(50)
  const done = await job
  assert.ok(sawAbort, 'the eval saw the abort signal')
  assert.equal(done.state, 'failed')
  assert.ok(done.finishedAt, 'final')
  assert.match(done.reason!, /killed: berth is shutting down; current release and running node are untouched/)
  assert.equal(await currentReleaseId(paths, 'hello'), V1)
  assert.equal(d.inFlight, 0)
})

test('shutdown during verification leaves the deployment to recovery, which puts the previous release back', async () => {
  const { deployer: d } = deployer('agent-1')
  const v1 = addRelease(V1)
  const v2 = addRelease(V2)
  await settle(d, await d.deploy('hello', v1, 'ci'))
  node.holdVerify = new Promise(() => {})
  const dep = await d.deploy('hello', v2, 'ci')
  const job = d.finished(dep.id)!
  await d.shutdown(50)
  const left = await job
  assert.equal(left.state, 'verifying', 'not final: the next start decides')
  assert.equal(left.reason, 'berth shut down during verifying')
  assert.equal(await currentReleaseId(paths, 'hello'), V2)
  // The next agent process.
  node.holdVerify = null
  const next = deployer('agent-2')
  const fixed = await next.deployer.recover()
  assert.equal(fixed.length, 1)
  assert.equal(fixed[0]!.state, 'failed')
  assert.match(fixed[0]!.reason!, new RegExp(`^agent restarted during verifying; put ${V1} back as current$`))
  assert.equal(await currentReleaseId(paths, 'hello'), V1)
  assert.equal(next.deployments.lockedBy('hello'), null, 'the dead agent\'s lock is gone')
})

test('an audit subscriber that throws does not fail the deployment that recorded the event', async () => {
  events.subscribe(() => {
    throw new TypeError('subscriber bug')
  })
  const seen: string[] = []
  events.subscribe((e) => void seen.push(e.action))
  const { deployer: d } = deployer()
  const done = await settle(d, await d.deploy('hello', addRelease(V1), 'ci'))
  assert.equal(done.state, 'succeeded')
  assert.ok(seen.includes('deploy'), 'later subscribers still hear it')
})

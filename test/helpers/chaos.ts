// The chaos harness of issue 12: kills berth with kill -9 at a random moment of random work (uploads small and
// large, deploys of good and bad releases, rollbacks, start/stop/restart, deletes, consoles, its own recovery),
// restarts it on the same data dir and checks the crash-safety invariants after every restart.
// Shared by test/chaos.test.ts (a short run) and bench/chaos.ts (the long one).

import { spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import Database from 'better-sqlite3'
import * as tar from 'tar'
import WebSocket from 'ws'
import { freePort, killProcessesUnder, processesUnder, tempDir, appDataDir } from './daemon.js'
import { fixture, REPO } from './fixtures.js'
// The seeded PRNG the benchmarks use too.
import { prng } from '../../bench/lib.js'

const APP = 'hello'
const FINAL = ['succeeded', 'failed', 'rolled_back']
const VARIANTS = ['v1', 'v2', 'crash_on_boot', 'crash_after_boot', 'migrate_fail', 'migrate_hang'] as const
type Variant = (typeof VARIANTS)[number]

export interface ChaosOptions {
  kills: number
  seed: number
  /** Size of the random padding of the large uploads (a fresh v1-based release each time), MiB. */
  bigUploadMb?: number
  /** How long berth gets after a restart before the invariants must hold (the timeouts below fit in it). */
  settleMs?: number
  /** Only these scenarios (names as printed), e.g. to reproduce or to probe one kind of work. */
  scenarios?: string[]
  /** Where berth's logs go (one file per berth process); default: a temp dir removed at the end. */
  logDir?: string
  log?: (line: string) => void
}

export interface Violation {
  seed: number
  iteration: number
  phase: string
  invariant: string
  detail: string
  /** The known defect of issue 12 that explains it, or null: a new finding. */
  known: string | null
}

export const ITEM_5 = 'issue 12 item 5: a release an unfinished deployment uses can be deleted'
export const ITEM_6 = 'issue 12 item 6: kill -9 between switching and verified leaves an unverified release live'

/**
 * Which known defect a violation is a case of, from what the harness saw in that iteration. Narrow on purpose:
 * anything else is a new finding.
 */
function knownDefect(v: Violation, deletedNow: Set<string>): string | null {
  if (v.invariant === 'no delete of a release in use') return ITEM_5
  if ([...deletedNow].some((id) => v.detail.includes(id)) && /current names|serves|previous release back/.test(v.invariant)) return ITEM_5
  // recover() marks the deployment failed but leaves current on the new release (deployer.ts).
  if (v.invariant === 'an interrupted or failed deployment puts the previous release back' && /agent restarted during (switching|starting|verifying|rollback)\b/.test(v.detail)) return ITEM_6
  // An interrupted stop: stop() recorded desired stopped first, then the restarted berth re-adopted the node
  // that was still running and resolved the stop as failed, leaving a running node nobody will restart.
  if (v.invariant === 'stopped when asked to be' && /the last stop, \S+, ended failed \(agent restarted during/.test(v.detail)) return ITEM_6
  // prepareDaemon starts the node current names and nobody verifies it or marks it running (services.ts).
  if (v.invariant === 'recorded node state matches the processes' && v.detail.startsWith('state starting with no deployment running')) return ITEM_6
  return null
}

export interface ChaosResult {
  seed: number
  kills: number
  /** Phase → how many kills hit it. */
  phases: Record<string, number>
  violations: Violation[]
  ms: number
  logDir: string
  /** Removed at the end (but for logDir when it was given); every process of the run named it. */
  workDir: string
}

/** bootTimeoutMs + stopTimeoutMs below: the longest a node start after a restart may take to settle. */
const BOOT_AND_STOP_MS = 16_000

/** The settings of the app under test: short timeouts, so that every deployment is final within seconds. */
function settings(port: number) {
  return {
    migrateTimeoutMs: 3000,
    bootTimeoutMs: 12_000,
    stableWindowMs: 500,
    stopTimeoutMs: 4000,
    healthUrl: `http://127.0.0.1:${port}/health`,
    healthIntervalMs: 1000,
    healthFailures: 3,
    keepReleases: 3,
    restart: { initialDelayMs: 200, maxDelayMs: 1000, maxRestarts: 2, windowMs: 30_000, rollbackWithinMs: 60_000 },
  }
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// ---------------------------------------------------------------------------------------------------------------
// Processes

interface Proc {
  pid: number
  ppid: number
  comm: string
  cmd: string
}

/** Every live (non-zombie) process; one pass over /proc. */
function scan(): Proc[] {
  const out: Proc[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8')
      const close = stat.lastIndexOf(')')
      const rest = stat.slice(close + 2).split(' ')
      if (rest[0] === 'Z' || rest[0] === 'X') continue
      out.push({ pid: Number(name), ppid: Number(rest[1]), comm: stat.slice(stat.indexOf('(') + 1, close), cmd: fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim() })
    } catch {
      // gone meanwhile
    }
  }
  return out
}

interface ProcView {
  runErls: Proc[]
  /** BEAMs under a run_erl: nodes. */
  nodeBeams: Proc[]
  /** BEAMs of the app's releases under no run_erl: commands (eval, rpc, pid, stop), remote shells, strays. */
  otherBeams: Proc[]
  toErls: Proc[]
}

function view(dataDir: string): ProcView {
  const all = scan()
  const byPid = new Map(all.map((p) => [p.pid, p]))
  const mine = all.filter((p) => p.cmd.includes(dataDir))
  const runErls = mine.filter((p) => p.comm === 'run_erl')
  const underRunErl = (p: Proc) => {
    for (let q = byPid.get(p.ppid); q; q = byPid.get(q.ppid)) if (q.comm === 'run_erl') return true
    return false
  }
  const beams = mine.filter((p) => p.comm.startsWith('beam'))
  return {
    runErls,
    nodeBeams: beams.filter(underRunErl),
    otherBeams: beams.filter((p) => !underRunErl(p)),
    toErls: mine.filter((p) => p.comm === 'to_erl'),
  }
}

function describeProc(p: Proc): string {
  const what = /--eval|--rpc-eval|remsh/.exec(p.cmd)?.[0] ?? ''
  return `${p.comm}[${p.pid}]${what ? ` ${what}` : ''}`
}

// ---------------------------------------------------------------------------------------------------------------
// berth as a child process

class Berth {
  child!: ChildProcess
  url = ''
  exited!: Promise<void>

  constructor(
    private readonly dataDir: string,
    private readonly epmdPort: number,
    private readonly logFile: string,
  ) {}

  /** Starts berth; with `untilListening`, resolves once it listens (after its recovery). */
  async start(untilListening = true): Promise<void> {
    const out = fs.openSync(this.logFile, 'a')
    this.child = spawn(process.execPath, [path.join(REPO, 'bin', 'berth.js'), 'serve'], {
      env: { ...process.env, BERTH_DATA_DIR: this.dataDir, BERTH_LISTEN: '127.0.0.1:0', BERTH_LOG_LEVEL: 'info', BERTH_EPMD_PORT: String(this.epmdPort) },
      stdio: ['ignore', 'pipe', out],
    })
    fs.closeSync(out)
    let buf = ''
    const log = fs.createWriteStream(this.logFile, { flags: 'a' })
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()))
    const listening = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`berth did not listen within 60 s (see ${this.logFile})`)), 60_000)
      this.child.stdout!.on('data', (d: Buffer) => {
        log.write(d)
        if (this.url) return
        buf += d.toString()
        const m = /"url":"(http[^"]+)"/.exec(buf)
        if (m) {
          this.url = m[1]!
          clearTimeout(timer)
          resolve()
        }
      })
      this.child.once('exit', (code, sig) => {
        clearTimeout(timer)
        log.end()
        if (!this.url) reject(new Error(`berth exited (${code ?? sig}) before listening (see ${this.logFile})`))
      })
    })
    if (untilListening) await listening
    else listening.catch(() => {})
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    await this.exited
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

interface Answer {
  status: number
  body: any
}

async function api(b: { url: string; token: string }, method: string, pathname: string, body?: unknown, signal?: AbortSignal): Promise<Answer> {
  const res = await fetch(`${b.url}${pathname}`, {
    method,
    headers: { authorization: `Bearer ${b.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(10_000),
  })
  const text = await res.text()
  let parsed: unknown = null
  try {
    parsed = text ? JSON.parse(text) : null
  } catch {
    parsed = text
  }
  return { status: res.status, body: parsed }
}

/** Streams a file as the body of an upload; `onSent` fires once the last byte has left (the rest is berth's work). */
function uploadFile(b: { url: string; token: string }, file: string, query: string, signal: AbortSignal, onSent: () => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${b.url}/v1/apps/${APP}/releases${query}`)
    const req = http.request(u, { method: 'POST', signal, headers: { authorization: `Bearer ${b.token}`, 'content-type': 'application/octet-stream', 'content-length': fs.statSync(file).size } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        let body: unknown = text
        try {
          body = JSON.parse(text)
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.on('finish', onSent)
    fs.createReadStream(file).on('error', reject).pipe(req)
  })
}

// ---------------------------------------------------------------------------------------------------------------
// The run

interface Deployment {
  id: string
  kind: string
  release: string
  previous: string | null
  state: string
  reason: string | null
  createdAt: string
  finishedAt: string | null
}

/** One piece of work in flight; `status` is what it was doing last (the phase when no deployment says better). */
interface Op {
  name: string
  status: string
  deployment: string | null
  done: Promise<void>
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const started = Date.now()
  const log = opts.log ?? (() => {})
  const rand = prng(opts.seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const between = (lo: number, hi: number) => Math.round(lo + rand() * (hi - lo))
  const settleMs = opts.settleMs ?? 30_000
  const bigBytes = Math.round((opts.bigUploadMb ?? 16) * 1024 * 1024)

  const work = tempDir('berth-chaos-')
  const dataDir = path.join(work, 'data')
  const logDir = opts.logDir ?? path.join(work, 'logs')
  fs.mkdirSync(logDir, { recursive: true })
  const appData = path.join(work, 'hello-data')
  appDataDir(appData)
  const port = await freePort()
  const epmdPort = await freePort()
  const violations: Violation[] = []
  let kills = 0
  const phases: Record<string, number> = {}
  let berthNo = 0
  const live: { berth: Berth | null } = { berth: null }
  const b = { url: '', token: '' }
  const newBerth = async (untilListening = true) => {
    live.berth = new Berth(dataDir, epmdPort, path.join(logDir, `berth-${String(++berthNo).padStart(3, '0')}.log`))
    await live.berth.start(untilListening)
    b.url = live.berth.url
  }
  // Whatever happens, nothing this run started may outlive it (also when the test runner gives up on it).
  const reap = () => {
    try {
      live.berth?.child.kill('SIGKILL')
    } catch {
      // gone
    }
    killProcessesUnder(work)
  }
  process.once('exit', reap)

  try {
    const fixtures = Object.fromEntries(await Promise.all(VARIANTS.map(async (v) => [v, await fixture(v)] as const))) as Record<Variant, Awaited<ReturnType<typeof fixture>>>
    const big = await bigUploadMaker(work, fixtures.v1.tarball, bigBytes)
    await newBerth()
    b.token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
    must(await api(b, 'PUT', `/v1/apps/${APP}/env`, { PORT: String(port), HELLO_DATA_DIR: appData }), 200)
    must(await api(b, 'PUT', `/v1/apps/${APP}/settings`, settings(port)), 200)
    /** Release id of each fixture variant (content-derived, so stable across deletes and re-uploads). */
    const ids = {} as Record<Variant, string>
    for (const v of VARIANTS) ids[v] = must(await uploadFile(b, fixtures[v].tarball, '', AbortSignal.timeout(60_000), () => {}), 200, 201).body.id
    const first = must(await api(b, 'POST', `/v1/apps/${APP}/deployments?wait=true`, { release: ids.v1 }, AbortSignal.timeout(120_000)), 200)
    if (first.body.state !== 'succeeded') throw new Error(`the first deployment did not succeed: ${JSON.stringify(first.body)}`)
    const versionOf = new Map<string, string>(VARIANTS.map((v) => [ids[v], fixtures[v].version]))
    log(`chaos: seed ${opts.seed}, ${opts.kills} kills, data dir ${dataDir}, logs ${logDir}; setup took ${((Date.now() - started) / 1000).toFixed(1)} s`)

    const releases = async (): Promise<{ id: string; version: string; current: boolean }[]> => must(await api(b, 'GET', `/v1/apps/${APP}/releases`), 200).body.releases
    const deployments = async (): Promise<Deployment[]> => must(await api(b, 'GET', `/v1/apps/${APP}/deployments`), 200).body.deployments

    for (let i = 1; kills < opts.kills; i++) {
      const iterStart = new Date()
      const found: Violation[] = []
      const violate = (phase: string, invariant: string, detail: string) => {
        if (found.some((v) => v.invariant === invariant && v.detail === detail)) return
        found.push({ seed: opts.seed, iteration: i, phase, invariant, detail, known: null })
      }
      const ctl = new AbortController()
      const ops: Op[] = []
      const deletes: { release: string; answeredAt: number; status: number }[] = []
      const known = await releases().catch(() => [])
      const current = known.find((r) => r.current)?.id ?? null
      const nodeUp = await api(b, 'GET', `/v1/apps/${APP}`)
        .then((a) => ['running', 'starting'].includes(a.body?.node?.state))
        .catch(() => true)

      // Deployment work: poll it while it runs, so the op's status names its step.
      const follow = async (op: Op, start: Promise<Answer>) => {
        const res = await start
        if (res.status !== 202 && res.status !== 200) {
          op.status = `${op.name}:refused`
          return
        }
        const id: string = res.body.id ?? res.body.deployment?.id
        op.deployment = id
        for (;;) {
          const d = (await api(b, 'GET', `/v1/apps/${APP}/deployments/${id}`, undefined, ctl.signal)).body as Deployment
          op.status = `${d.kind}:${d.state}`
          if (FINAL.includes(d.state)) return
          await sleep(100)
        }
      }
      const launch = (name: string, fn: (op: Op) => Promise<void>) => {
        const op: Op = { name, status: `${name}:request`, deployment: null, done: Promise.resolve() }
        op.done = fn(op).catch(() => {})
        ops.push(op)
      }
      const ensure = async (v: Variant, op: Op) => {
        if (known.some((r) => r.id === ids[v])) return
        op.status = 'upload:sending'
        await uploadFile(b, fixtures[v].tarball, '', ctl.signal, () => (op.status = 'upload:processing'))
      }
      const deploy = (v: Variant) =>
        launch('deploy', async (op) => {
          await ensure(v, op)
          await follow(op, api(b, 'POST', `/v1/apps/${APP}/deployments`, { release: ids[v] }, ctl.signal))
        })
      const uploadBig = (file: string, deployToo: boolean) =>
        launch(deployToo ? 'upload+deploy' : 'upload', async (op) => {
          op.status = 'upload:sending'
          const res = await uploadFile(b, file, deployToo ? '?deploy=true' : '', ctl.signal, () => (op.status = deployToo ? 'upload+deploy:processing' : 'upload:processing'))
          fs.rmSync(file, { force: true })
          if (res.body?.id) versionOf.set(res.body.id, fixtures.v1.version)
          if (res.body?.release?.id) versionOf.set(res.body.release.id, fixtures.v1.version)
          op.status = 'done'
        })
      const operate = (action: 'start' | 'stop' | 'restart') => launch(action, (op) => follow(op, api(b, 'POST', `/v1/apps/${APP}/${action}`, {}, ctl.signal)))
      const rollback = (to: string | null) => launch('rollback', (op) => follow(op, api(b, 'POST', `/v1/apps/${APP}/rollback`, to ? { to } : {}, ctl.signal)))
      const remove = (release: string, afterMs: number) =>
        launch('delete', async (op) => {
          await sleep(afterMs)
          op.status = 'delete'
          const res = await api(b, 'DELETE', `/v1/apps/${APP}/releases/${release}`, undefined, ctl.signal)
          deletes.push({ release, answeredAt: Date.now(), status: res.status })
          op.status = 'done'
        })
      const openConsole = (kind: 'remote' | 'attach') =>
        launch(`console ${kind}`, async (op) => {
          op.status = `console:${kind}`
          const ws = new WebSocket(`${b.url.replace('http', 'ws')}/v1/apps/${APP}/${kind}`, { headers: { authorization: `Bearer ${b.token}` } })
          ctl.signal.addEventListener('abort', () => ws.terminate(), { once: true })
          await new Promise<void>((resolve) => {
            ws.on('open', () => ws.send(Buffer.from('1 + 1\r')))
            ws.on('error', () => resolve())
            ws.on('close', () => resolve())
          })
        })

      // The work of this iteration and the moment of the kill (each scenario returns the latest moment, ms).
      const padded = known.filter((r) => !r.current && !Object.values(ids).includes(r.id))
      const other = (v: 'v1' | 'v2'): Variant => (current === ids[v] ? (v === 'v1' ? 'v2' : 'v1') : v)
      const scenarios: { name: string; weight: number; start: () => Promise<number> }[] = [
        { name: 'deploy good', weight: 20, start: async () => (deploy(other(pick(['v1', 'v2', 'v2'] as const))), 5000) },
        { name: 'deploy crash_on_boot', weight: 5, start: async () => (deploy('crash_on_boot'), 7000) },
        { name: 'deploy crash_after_boot', weight: 2, start: async () => (deploy('crash_after_boot'), 4000) },
        { name: 'deploy migrate_fail', weight: 3, start: async () => (deploy('migrate_fail'), 1200) },
        { name: 'deploy migrate_hang', weight: 3, start: async () => (deploy('migrate_hang'), 4500) },
        { name: 'upload big', weight: 6, start: async () => (uploadBig(await big.make(), false), 1500) },
        { name: 'upload big ?deploy=true', weight: 4, start: async () => (uploadBig(await big.make(), true), 6000) },
        {
          name: 'rollback',
          weight: 8,
          start: async () => {
            const target = known.filter((r) => !r.current && [ids.v1, ids.v2].includes(r.id)).map((r) => r.id)
            rollback(rand() < 0.5 || target.length === 0 ? null : pick(target))
            return 4500
          },
        },
        { name: 'stop', weight: 5, start: async () => (operate('stop'), 2000) },
        // A start of a running node is refused at once: then the work is a stop.
        { name: 'start', weight: 4, start: async () => (nodeUp ? (operate('stop'), 2000) : (operate('start'), 4000)) },
        { name: 'restart', weight: 3, start: async () => (operate('restart'), 5000) },
        {
          // A delete racing a deployment, of its release or of the one it replaces: issue 12, item 5.
          name: 'deploy + delete',
          weight: 8,
          start: async () => {
            const target = rand() < 0.3 ? 'migrate_hang' : other(pick(['v1', 'v2'] as const))
            deploy(target)
            remove(rand() < 0.6 || !current ? ids[target] : current, between(200, 2000))
            return 4500
          },
        },
        { name: 'upload big + deploy', weight: 6, start: async () => (uploadBig(await big.make(), false), deploy(other(pick(['v1', 'v2'] as const))), 5500) },
        {
          // Also keeps the disk bounded: a padded release nobody uses goes first.
          name: 'delete',
          weight: 5,
          start: async () => {
            const target = padded.length > 0 ? pick(padded) : pick(known.filter((r) => !r.current))
            if (target) remove(target.id, 0)
            return 200
          },
        },
        { name: 'console', weight: 7, start: async () => (openConsole(pick(['remote', 'attach'] as const)), 3000) },
        { name: 'idle', weight: 4, start: async () => 1500 },
      ]
      const allowed = scenarios.filter((x) => !opts.scenarios || opts.scenarios.includes(x.name))
      let r = rand() * allowed.reduce((n, x) => n + x.weight, 0)
      const chosen = allowed.find((x) => (r -= x.weight) < 0) ?? allowed[0]!
      const scenario = chosen.name
      const killAfter = between(0, await chosen.start())
      await sleep(killAfter)
      const statusAtKill = ops.map((o) => o.status)
      const before = view(dataDir)
      const runningAtKill = [...before.otherBeams, ...before.toErls].map(describeProc)
      await live.berth!.kill()
      kills++
      ctl.abort()
      await Promise.race([Promise.allSettled(ops.map((o) => o.done)), sleep(5000)])
      for (const f of fs.readdirSync(work).filter((x) => /^big-\d+\.tar\.gz$/.test(x))) fs.rmSync(path.join(work, f), { force: true })

      // Immediately after the kill: nothing berth ran as a command may outlive it.
      const orphans = await waitFor(() => {
        const v = view(dataDir)
        const left = [...v.otherBeams, ...v.toErls]
        return left.length === 0 ? null : left
      }, 2000)
      if (orphans) violate('?', 'no orphan after kill', `still running 2 s after kill -9 of berth: ${orphans.map(describeProc).join(', ')}`)

      // Sometimes the kill lands in the next berth's own recovery.
      let recoveryKill = false
      if (kills < opts.kills && rand() < 0.12) {
        await newBerth(false)
        await sleep(between(0, 1500))
        recoveryKill = true
        await live.berth!.kill()
        kills++
        phases.recovery = (phases.recovery ?? 0) + 1
        const left = await waitFor(() => {
          const v = view(dataDir)
          return v.otherBeams.length + v.toErls.length === 0 ? null : [...v.otherBeams, ...v.toErls]
        }, 2000)
        if (left) violate('recovery', 'no orphan after kill', `still running 2 s after kill -9 of berth in recovery: ${left.map(describeProc).join(', ')}`)
      }

      try {
        await newBerth()
      } catch (err) {
        // berth must always come back; without it nothing else can be checked, so the run ends here.
        const tail = fs.readFileSync(path.join(logDir, `berth-${String(berthNo).padStart(3, '0')}.log`), 'utf8').trim().split('\n').slice(-5).join(' | ')
        violate(statusAtKill.join('+') || 'idle', 'berth starts again after kill -9', `${(err as Error).message}: ${tail.slice(0, 600)}`)
        violations.push(...found)
        log(`kill ${kills}/${opts.kills} (iteration ${i}, seed ${opts.seed}) ${scenario}: berth did not start again; the run ends here`)
        break
      }
      // Right after the restart (its sweep and recovery ran before it listened).
      const leftUploads = fs.readdirSync(path.join(dataDir, 'uploads'))
      if (leftUploads.length > 0) violate('?', 'uploads/ empty after restart', leftUploads.join(', '))

      // The phase: the step recovery found each interrupted deployment in, else what the work was doing.
      const recent = (await deployments()).filter((d) => Date.parse(d.createdAt) >= iterStart.getTime() - 1000)
      const hit = new Set<string>()
      const recovered = new Set<string>()
      for (const d of recent) {
        const m = /restarted during (\w+)/.exec(d.reason ?? '')
        if (m) {
          hit.add(`${d.kind}:${m[1]}`)
          recovered.add(d.id)
        }
      }
      // A request in flight whose deployment recovery resolved is already named by its step.
      for (const [n, s] of statusAtKill.entries()) {
        const op = ops[n]!
        if (s === 'done' || s.endsWith(':refused') || FINAL.some((f) => s.endsWith(`:${f}`))) continue
        const plainUpload = s.startsWith('upload:')
        if (!plainUpload && !s.startsWith('console') && !s.startsWith('delete') && (recovered.size > 0 || (op.deployment && recovered.has(op.deployment)))) continue
        hit.add(s)
      }
      const phase = hit.size === 0 ? 'idle' : [...hit].sort().join('+')
      phases[phase] = (phases[phase] ?? 0) + 1
      for (const v of found) v.phase = v.phase === '?' ? phase : v.phase

      // Item 5: a DELETE that succeeded while a deployment naming the release was unfinished.
      for (const del of deletes.filter((x) => x.status === 200)) {
        for (const d of recent) {
          if (d.release !== del.release && d.previous !== del.release) continue
          if (Date.parse(d.createdAt) < del.answeredAt && (!d.finishedAt || Date.parse(d.finishedAt) > del.answeredAt)) {
            violate(phase, 'no delete of a release in use', `DELETE ${del.release} answered 200 while ${d.kind} ${d.id} (${d.release}, previous ${d.previous}) was unfinished`)
          }
        }
      }

      // After berth settles: every invariant must hold within settleMs. A failure that stays the same for 5 s
      // while nothing is in motion (no deployment running, no node booting or in backoff) is final already.
      const restarted = Date.now()
      let last: Snapshot = { fails: [], quiet: true }
      let same = Date.now()
      for (;;) {
        const next = await check({ b, dataDir, port, versionOf, since: iterStart.getTime() - 1000 })
        if (JSON.stringify(next.fails) !== JSON.stringify(last.fails)) same = Date.now()
        last = next
        if (last.fails.length === 0 || Date.now() - restarted > settleMs) break
        if (Date.now() - same > 5000 && (last.quiet || Date.now() - restarted > BOOT_AND_STOP_MS + 3000)) break
        await sleep(500)
      }
      for (const [invariant, detail] of last.fails) violate(phase, invariant!, detail!)
      const deletedNow = new Set(deletes.filter((x) => x.status === 200).map((x) => x.release))
      for (const v of found) v.known = knownDefect(v, deletedNow)
      const took = Math.round((Date.now() - iterStart.getTime()) / 100) / 10
      log(`kill ${kills}/${opts.kills} (iteration ${i}, seed ${opts.seed}) ${scenario}: kill after ${killAfter} ms hit ${phase}${runningAtKill.length ? ` (running: ${runningAtKill.join(', ')})` : ''}${recoveryKill ? ', then a kill in recovery' : ''}; ${found.length === 0 ? 'ok' : `${found.length} violation(s)`} (${took} s)`)
      for (const v of found) log(`   VIOLATION ${v.invariant}: ${v.detail}${v.known ? ` [known: ${v.known.split(':')[0]}]` : ''}`)
      violations.push(...found)
    }
  } finally {
    await live.berth?.kill().catch(() => {})
    // Every BEAM, run_erl, epmd and to_erl of this run names its data dir on its command line.
    for (let n = 0; n < 5 && processesUnder(work).length > 0; n++) {
      killProcessesUnder(work)
      await sleep(200)
    }
    process.removeListener('exit', reap)
    // The logs stay when the caller named their place (it may be inside the work dir).
    for (const entry of fs.readdirSync(work)) if (path.join(work, entry) !== opts.logDir) fs.rmSync(path.join(work, entry), { recursive: true, force: true })
    if (fs.readdirSync(work).length === 0) fs.rmSync(work, { recursive: true, force: true })
  }
  const result = { seed: opts.seed, kills, phases, violations, ms: Date.now() - started, logDir, workDir: work }
  log(summary(result))
  for (const v of violations) log(`  seed ${v.seed} iteration ${v.iteration} [${v.phase}] ${v.invariant}: ${v.detail}${v.known ? ` [known: ${v.known.split(':')[0]}]` : ''}`)
  return result
}

export function summary(r: ChaosResult): string {
  return `${r.kills} kills, ${Object.keys(r.phases).length} distinct phases, ${r.violations.length} invariant violations`
}

function must(a: Answer, ...ok: number[]): Answer {
  if (!ok.includes(a.status)) throw new Error(`unexpected answer ${a.status}: ${JSON.stringify(a.body).slice(0, 400)}`)
  return a
}

async function waitFor<T>(fn: () => T | null, ms: number): Promise<T | null> {
  const end = Date.now() + ms
  let v = fn()
  while (v !== null && Date.now() < end) {
    await sleep(50)
    v = fn()
  }
  return v
}

interface Snapshot {
  /** Each failed invariant: [invariant, detail]. */
  fails: string[][]
  /** Nothing is in motion: no deployment runs, and the node is not booting, stopping or in backoff. */
  quiet: boolean
}

/** The invariants on one snapshot of berth, the disk and /proc. `since`: deployments of this iteration start then. */
async function check(c: { b: { url: string; token: string }; dataDir: string; port: number; versionOf: Map<string, string>; since: number }): Promise<Snapshot> {
  const out: string[][] = []
  const fail = (invariant: string, detail: string) => out.push([invariant, detail])
  const { b, dataDir } = c
  let app: any
  let rels: { id: string; version: string }[]
  let deps: Deployment[]
  try {
    app = must(await api(b, 'GET', `/v1/apps/${APP}`), 200).body
    rels = must(await api(b, 'GET', `/v1/apps/${APP}/releases`), 200).body.releases
    deps = must(await api(b, 'GET', `/v1/apps/${APP}/deployments`), 200).body.deployments
  } catch (err) {
    return { fails: [['berth answers', (err as Error).message]], quiet: false }
  }
  const appDir = path.join(dataDir, 'apps', APP)
  let link: string | null = null
  try {
    link = path.basename(fs.readlinkSync(path.join(appDir, 'current')))
  } catch {
    link = null
  }
  const current = link ? rels.find((r) => r.id === link) ?? null : null

  // current names a complete, recorded release.
  if (!link) fail('current names a complete, recorded release', 'there is no current link')
  else {
    if (!current) fail('current names a complete, recorded release', `current -> ${link}, which GET releases does not list`)
    if (!fs.existsSync(path.join(appDir, 'releases', link, 'bin', APP)) || !fs.existsSync(path.join(appDir, 'releases', link, 'releases', 'start_erl.data'))) {
      fail('current names a complete, recorded release', `current -> ${link}, whose directory is missing or incomplete`)
    }
    if (app.current !== link) fail('current names a complete, recorded release', `GET app says current ${app.current}, the link says ${link}`)
  }

  // Every deployment is final.
  for (const d of deps.filter((x) => !FINAL.includes(x.state))) fail('every deployment final within its timeouts', `${d.kind} ${d.id} of ${d.release} is still ${d.state}`)
  const unfinished = deps.some((x) => !FINAL.includes(x.state))

  // The outcome of this iteration's latest deploy or rollback: succeeded, or the previous release is current again.
  const last = deps.find((d) => d.kind === 'deploy' || d.kind === 'rollback')
  if (last && Date.parse(last.createdAt) >= c.since && FINAL.includes(last.state) && last.state !== 'succeeded' && last.previous && link !== last.previous) {
    fail('an interrupted or failed deployment puts the previous release back', `${last.kind} ${last.id} ended ${last.state} (${last.reason}) but current is ${link}, not the previous ${last.previous}`)
  }

  // Recorded node state against the processes that exist; at most one node.
  const v = view(dataDir)
  const node = app.node as { state: string; pid: number | null; beamPid: number | null; release: string | null }
  let desired: string | null = null
  let dbPid: number | null = null
  try {
    const db = new Database(path.join(dataDir, 'berth.db'), { readonly: true, fileMustExist: true })
    try {
      const row = db.prepare('SELECT desired, pid FROM nodes WHERE app = ?').get(APP) as { desired: string; pid: number | null } | undefined
      desired = row?.desired ?? null
      dbPid = row?.pid ?? null
    } finally {
      db.close()
    }
  } catch (err) {
    fail('berth answers', `cannot read the node record: ${(err as Error).message}`)
  }
  if (v.runErls.length > 1 || v.nodeBeams.length > 1) fail('at most one node per app', `run_erl ${v.runErls.map((p) => p.pid).join(',')}, node BEAMs ${v.nodeBeams.map((p) => p.pid).join(',')}`)
  const runErlPids = v.runErls.map((p) => p.pid)
  if (node.state === 'running') {
    if (node.pid === null || !runErlPids.includes(node.pid)) fail('recorded node state matches the processes', `state running with pid ${node.pid}, but run_erl processes are [${runErlPids.join(',')}]`)
    else if (v.nodeBeams.length === 0) fail('recorded node state matches the processes', `state running, run_erl ${node.pid} has no BEAM`)
    if (dbPid !== node.pid) fail('recorded node state matches the processes', `GET app says pid ${node.pid}, the node record says ${dbPid}`)
  } else if (node.state === 'stopped' || node.state === 'errored') {
    if (runErlPids.length > 0 || v.nodeBeams.length > 0) fail('recorded node state matches the processes', `state ${node.state}, yet run_erl [${runErlPids.join(',')}] and node BEAMs [${v.nodeBeams.map((p) => p.pid).join(',')}] run`)
  } else if (!unfinished) {
    fail('recorded node state matches the processes', `state ${node.state} with no deployment running (pid ${node.pid}, run_erl [${runErlPids.join(',')}])`)
  }

  // No orphan eval, to_erl or remote shell.
  if (!unfinished && (v.otherBeams.length > 0 || v.toErls.length > 0)) fail('no orphan eval, to_erl or remote shell', [...v.otherBeams, ...v.toErls].map(describeProc).join(', '))

  // uploads/ holds no finished work.
  const uploads = fs.readdirSync(path.join(dataDir, 'uploads'))
  if (uploads.length > 0) fail('uploads/ empty of finished work', uploads.join(', '))

  // The app serves the release current names, or is stopped when asked to be.
  if (!unfinished) {
    const answer = await fetch(`http://127.0.0.1:${c.port}/`, { signal: AbortSignal.timeout(3000) })
      .then((r) => r.text())
      .catch(() => null)
    const version = current?.version ?? (link ? c.versionOf.get(link) : undefined)
    if (desired === 'running') {
      if (answer !== `hello ${version}\n`) fail('the app serves the release current names', `desired running, current ${link} (${version}), the app answers ${JSON.stringify(answer)}`)
      if (node.release !== link) fail('the app serves the release current names', `the node runs ${node.release}, current is ${link}`)
    } else if (desired === 'stopped' && answer !== null) {
      const stop = deps.find((d) => d.kind === 'stop')
      const why = stop ? `; the last stop, ${stop.id}, ended ${stop.state}${stop.reason ? ` (${stop.reason})` : ''}` : ''
      fail('stopped when asked to be', `desired stopped, the app answers ${JSON.stringify(answer)}${why}`)
    }
  }
  return { fails: out, quiet: !unfinished && ['running', 'stopped', 'errored'].includes(node.state) }
}

/** Large uploads: v1 unpacked once plus random padding and a nonce, packed fresh for each upload (new content). */
async function bigUploadMaker(work: string, v1: string, padBytes: number): Promise<{ make(): Promise<string> }> {
  const src = path.join(work, 'big-src')
  fs.mkdirSync(src)
  await tar.x({ file: v1, cwd: src })
  const priv = fs.readdirSync(path.join(src, 'lib')).find((d) => d.startsWith(`${APP}-`))!
  fs.mkdirSync(path.join(src, 'lib', priv, 'priv'), { recursive: true })
  fs.writeFileSync(path.join(src, 'lib', priv, 'priv', 'padding.bin'), crypto.randomBytes(padBytes))
  let n = 0
  return {
    async make() {
      fs.writeFileSync(path.join(src, 'lib', priv, 'priv', 'nonce'), crypto.randomBytes(16).toString('hex'))
      const file = path.join(work, `big-${++n}.tar.gz`)
      await tar.c({ gzip: { level: 1 }, file, cwd: src, portable: true }, fs.readdirSync(src))
      return file
    },
  }
}

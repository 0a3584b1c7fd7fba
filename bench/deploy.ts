#!/usr/bin/env node
// Deploy benchmark: how much time berth adds to a deployment, compared with doing the same work by hand.
//
//   npm run build && node dist/bench/deploy.js [--runs N] [--json FILE] [--probe] [--cpu-prof DIR] [--berth-root D] [--keep]
//
//   --runs N        timed runs of each side (default 5); v1 and v2 alternate, each run replaces a running node
//   --json FILE     also write the raw results (every run, every step) as JSON
//   --cpu-prof DIR  run the daemon with `node --cpu-prof --cpu-prof-dir=DIR` (written when it stops);
//                   summarise with `node dist/bench/cpuprofile-top.js FILE`
//   --berth-root D  run the berth found in D (D/bin/berth.js, D/dist) instead of this checkout
//   --probe         preload a probe into the daemon that times, per deploy, the main-thread time spent in
//                   child_process spawn() (fork+exec is synchronous), better-sqlite3 writes and /proc scans
//   --node-options S  extra NODE_OPTIONS for the daemon
//   --keep          leave the temporary directory (logs, data dirs) in place; processes are still stopped
//
// berth:   `POST /v1/apps/hello/deployments?wait=true` with stableWindowMs 0 and a healthUrl, timed from the
//          request to the end of the answer (upload and settings are not timed).
// by hand: one `sh -c` script per run, from an unpacked copy of the same release (untimed `tar xzf` beforehand),
//          same environment as berth gives its nodes (ERL_EPMD_PORT, ERL_EPMD_ADDRESS, ERL_AFLAGS, RELEASE_TMP,
//          HOME, RUN_ERL_LOG_*, PORT, HELLO_DATA_DIR, RELEASE_NODE), doing what berth does in the same order:
//            bin/hello eval "Hello.Release.migrate()"  →  old/bin/hello stop, wait for run_erl to exit  →
//            setsid run_erl PIPE/ LOG/ "exec bin/hello start_iex" &  →
//            until bin/hello pid; sleep 0.2  →  until curl -sf HEALTH; sleep 0.2
//          Both poll intervals are 200 ms because that is what berth's verify uses (supervisor.ts), so both sides
//          are quantised the same way. The wait for the old node's exit polls /proc every 10 ms (berth gets the
//          exit event at once); that is at most ~10 ms in berth's favour.
//
// Design: steady-state deploys. Each side first deploys v1 on a fresh app and then v2 (two untimed warm-ups),
// then every timed run deploys the other version over the running node, so the stop of the previous node is in
// both timed regions (berth's `starting` step is stop + start). The two sides use their own node name
// (RELEASE_NODE), HTTP port, data dir and temp dirs, and share one isolated epmd (a free port, never 4369) started
// up front, so neither pays for starting epmd. Runs alternate which side goes first, with a 1 s pause between.
// Everything runs under one temp dir; on exit or Ctrl+C the daemon is stopped and every process whose command
// line or environment names that dir (BEAM, run_erl, epmd, shells) is killed, then the dir is removed.
// No npm dependencies: node, sh, tar, setsid, curl.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {
  type Answer, type Berth, FIXTURES, type OptionSpec, REPO, fmt, freePorts, killGroup, killProcessesNaming, mdTable, median, onInterrupt, parseCli, percentile,
  procCpuSeconds, request, rmTreeSync, signed, sleep, startBerth,
} from './lib.js'

const APP = 'hello'
/** berth's verify: `bin/APP pid`, sleep 200 ms on failure; then GET healthUrl, sleep 200 ms on failure. */
const PID_POLL_S = '0.2'
const HEALTH_POLL_S = '0.2'
const EXIT_POLL_S = '0.01'
const SETTLE_MS = 1000
const RUN_TIMEOUT_MS = 180_000

// ---------------------------------------------------------------------------------------------------------------
// Options

const OPTIONS: Record<string, OptionSpec> = {
  '--runs': { key: 'runs', type: 'int', min: 1 },
  '--json': { key: 'json', type: 'path' },
  '--cpu-prof': { key: 'cpuProf', type: 'path' },
  '--berth-root': { key: 'berthRoot', type: 'path' },
  '--node-options': { key: 'nodeOptions', type: 'string' },
  '--keep': { key: 'keep' },
  '--probe': { key: 'probe' },
}
const DEFAULTS = { runs: 5, json: null as string | null, cpuProf: null as string | null, berthRoot: REPO, keep: false, nodeOptions: '', probe: false }

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

const log = (...a: unknown[]) => process.stderr.write(a.join(' ') + '\n')
const nowMs = () => Number(process.hrtime.bigint()) / 1e6
/** User+system CPU ms of a process so far (all threads). */
const procCpuMs = (pid: number) => procCpuSeconds(pid) * 1000

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Everything we start, and how it is cleaned up

const state: { root: string | null; daemon: Berth | null; shells: Set<ChildProcess>; keep: boolean; cleaned: boolean } = { root: null, daemon: null, shells: new Set(), keep: false, cleaned: false }

/** Idempotent; the synchronous part also runs from process.on('exit'). */
function cleanupSync() {
  if (state.cleaned) return
  state.cleaned = true
  for (const c of state.shells) killGroup(c.pid!)
  state.daemon?.kill()
  if (state.root) {
    // Every process whose command line or environment names the temp root: BEAM, run_erl, epmd, shells.
    const n = killProcessesNaming(state.root, { env: `DEPLOY_BENCH_ROOT=${state.root}` })
    if (n > 0) log(`cleanup: killed ${n} process(es) left under ${state.root}`)
    if (!state.keep) rmTreeSync(state.root)
    else log(`kept ${state.root}`)
  }
}

async function cleanup() {
  for (const c of state.shells) killGroup(c.pid!)
  await state.daemon?.stop().catch(() => {})
  state.daemon = null
  cleanupSync()
}

const signals = onInterrupt('bench/deploy', cleanup)
process.on('exit', cleanupSync)

// ---------------------------------------------------------------------------------------------------------------
// The daemon

/**
 * --probe: preloaded into the daemon (CommonJS, before berth's ESM loads). Appends one JSON line per call:
 * spawn (ChildProcess.prototype.spawn: libuv forks and waits for the exec on the main thread), sql
 * (Statement.run of better-sqlite3: synchronous, includes the WAL fsync with synchronous=FULL), proc (readdir of
 * /proc and reads of /proc/N/*: Supervisor.status() → descendants() scans every process).
 */
const PROBE = `'use strict'
const fs = require('node:fs')
const cp = require('node:child_process')
const out = fs.openSync(process.env.DEPLOY_BENCH_PROBE_OUT, 'a')
const w = (k, t, what) => { const ms = performance.now() - t; fs.writeSync(out, JSON.stringify({ k, ms, at: Date.now(), what }) + '\\n') }
const spawn0 = cp.ChildProcess.prototype.spawn
cp.ChildProcess.prototype.spawn = function (o) {
  const t = performance.now()
  try { return spawn0.call(this, o) } finally { w('spawn', t, String(o.file).split('/').pop() + ' ' + ((o.args || [])[1] || '')) }
}
try {
  const Database = require(require.resolve('better-sqlite3', { paths: [process.cwd()] }))
  const prepare0 = Database.prototype.prepare
  Database.prototype.prepare = function (sql) {
    const st = prepare0.call(this, sql)
    const run0 = st.run
    st.run = function (...a) { const t = performance.now(); try { return run0.apply(this, a) } finally { w('sql', t, sql.slice(0, 30)) } }
    return st
  }
} catch (e) { fs.writeSync(out, JSON.stringify({ k: 'probe-error', what: e.message }) + '\\n') }
let procMs = 0
let procScans = 0
for (const name of ['readdirSync', 'readFileSync']) {
  const f0 = fs[name]
  fs[name] = function (p, ...a) {
    if (typeof p !== 'string' || !p.startsWith('/proc')) return f0.call(this, p, ...a)
    if (name === 'readdirSync' && p === '/proc') procScans++
    const t = performance.now()
    try { return f0.call(this, p, ...a) } finally { procMs += performance.now() - t }
  }
}
setInterval(() => {
  if (procMs > 0) fs.writeSync(out, JSON.stringify({ k: 'proc', ms: procMs, n: procScans, at: Date.now() }) + '\\n')
  procMs = 0
  procScans = 0
}, 100).unref()
`

type ProbeKind = 'spawn' | 'sql' | 'proc'
type ProbeSum = Record<ProbeKind, { n: number; ms: number }>

/** Probe lines written between two wall-clock times (ms), summed by kind. */
function probeWindow(root: string, from: number, to: number): ProbeSum | null {
  const file = path.join(root, 'probe.jsonl')
  if (!fs.existsSync(file)) return null
  const sum: ProbeSum = { spawn: { n: 0, ms: 0 }, sql: { n: 0, ms: 0 }, proc: { n: 0, ms: 0 } }
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue
    const x = JSON.parse(line) as { k: string; ms: number; at: number; n?: number }
    if (x.at < from || x.at > to || !Object.hasOwn(sum, x.k)) continue
    const k = x.k as ProbeKind
    sum[k].ms += x.ms
    sum[k].n += k === 'proc' ? (x.n ?? 0) : 1
  }
  return sum
}

type Options = typeof DEFAULTS

async function startDaemon(opts: Options, root: string, listenPort: number, epmdPort: number) {
  const env: Record<string, string> = { BERTH_EPMD_PORT: String(epmdPort) }
  const nodeOptions = [opts.nodeOptions]
  if (opts.probe) {
    const file = path.join(root, 'probe.cjs')
    fs.writeFileSync(file, PROBE)
    nodeOptions.push(`--require ${file}`)
    env.DEPLOY_BENCH_PROBE_OUT = path.join(root, 'probe.jsonl')
  }
  state.daemon = await startBerth({
    berthRoot: opts.berthRoot,
    dataDir: path.join(root, 'berth-data'),
    port: listenPort,
    env,
    nodeOptions: nodeOptions.join(' '),
    cpuProf: opts.cpuProf ? { dir: opts.cpuProf, name: `berth-deploy-${Date.now()}.cpuprofile` } : null,
  })
  return state.daemon
}

/** One API call; body is an object (sent as JSON) or a file path (streamed raw). */
function api(d: Berth, method: string, urlPath: string, body: unknown = null) {
  return request(d, method, urlPath, typeof body === 'string' ? { file: body, timeoutMs: RUN_TIMEOUT_MS } : { json: body ?? undefined, timeoutMs: RUN_TIMEOUT_MS })
}

async function must(resP: Promise<Answer>, want: number, what: string) {
  const res = await resP
  if (res.status !== want) throw new Error(`${what}: HTTP ${res.status} (expected ${want}): ${res.text.slice(0, 1000)}`)
  return res.json
}

// ---------------------------------------------------------------------------------------------------------------
// berth side

const iso = (s: string | null | undefined) => (s ? Date.parse(s) : NaN)

/** A fixture release, unpacked for the by-hand side and uploaded to berth. */
interface Release {
  name: string
  file: string
  version: string
  dir?: string
  berthId?: string
}

/** The by-hand side's layout, like berth's, and the environment its nodes get. */
interface ByHandLayout {
  shared: string
  log: string
  data: string
  pipe: string
  pidFile: string
  cmdLog: string
  env: Record<string, string>
}

interface Context {
  daemon: Berth
  base: ByHandLayout
  berthHttpPort: number
  baseHttpPort: number
  root: string
  probe: boolean
}

interface StepTiming {
  ms: number
  start: number
  end: number
  state?: string
  output?: string
}

interface BerthRun {
  ms: number
  cpu: number
  id: string
  steps: Record<string, StepTiming>
  phases: Record<string, number>
  release: string
  probe: ProbeSum | null
}

interface ByHandRun {
  ms: number
  phases: Record<string, number>
  retries: { pid: number; health: number }
  release: string
}

/** Timed deploy through the API, then (untimed) the node record and a check that the right version answers. */
async function berthDeploy(ctx: Context, rel: Release): Promise<BerthRun> {
  const { daemon } = ctx
  const cpu0 = procCpuMs(daemon.pid)
  const wall0 = Date.now()
  const t0 = nowMs()
  const res = await api(daemon, 'POST', `/v1/apps/${APP}/deployments?wait=true`, { release: rel.berthId })
  const ms = nowMs() - t0
  const wall1 = Date.now()
  const cpu = procCpuMs(daemon.pid) - cpu0
  if (res.status !== 200 || res.json?.state !== 'succeeded') {
    throw new Error(`berth deploy of ${rel.name} answered ${res.status} ${res.json?.state ?? ''}: ${res.text.slice(0, 3000)}\n--- daemon output ---\n${daemon.output()}`)
  }
  const d = res.json
  const appInfo = await must(api(daemon, 'GET', `/v1/apps/${APP}`), 200, 'GET app')
  await checkServes(ctx.berthHttpPort, rel.version, 'berth')

  const steps: Record<string, StepTiming> = {}
  for (const s of d.steps as { name: string; startedAt: string; endedAt: string; state: string; output: string }[]) steps[s.name] = { ms: iso(s.endedAt) - iso(s.startedAt), start: iso(s.startedAt), end: iso(s.endedAt), state: s.state, output: s.output }
  const verifyOut = steps.verifying?.output ?? ''
  const nodeStart = iso(appInfo.node?.startedAt)
  const answeredAfter = Number(/node answered .*? after (\d+) ms/.exec(verifyOut)?.[1] ?? NaN)
  const healthAfter = Number(/answered 2xx after (\d+) ms/.exec(verifyOut)?.[1] ?? NaN)
  const st = (n: string): StepTiming => steps[n] ?? { ms: NaN, start: NaN, end: NaN }
  // Timeline in wall-clock ms (berth's timestamps have ms resolution; this process and berth share the clock).
  const phases = {
    before: st('migrating').start - wall0,
    migrate: st('migrating').ms,
    switch: st('verifying').start - st('migrating').end - (st('starting').end - st('starting').start),
    stop: nodeStart - st('starting').start,
    start: st('starting').end - nodeStart,
    pid: nodeStart + answeredAfter - st('verifying').start,
    health: healthAfter - answeredAfter,
    after: wall1 - (nodeStart + healthAfter),
  }
  const probe = ctx.probe ? probeWindow(ctx.root, wall0, wall1 + 5) : null
  return { ms, cpu, id: d.id, steps, phases, release: rel.name, probe }
}

// ---------------------------------------------------------------------------------------------------------------
// by-hand side

const SCRIPT = `set -e
new=$1 old=$2 pidfile=$3 pipe=$4 logd=$5 url=$6 cmdlog=$7
echo @migrate
"$new/bin/${APP}" eval "Hello.Release.migrate()" >>"$cmdlog" 2>&1
echo @stop
if [ -n "$old" ]; then
  read -r oldpid <"$pidfile"
  "$old/bin/${APP}" stop >>"$cmdlog" 2>&1 || echo "bin/${APP} stop failed" >&2
  echo @stop-returned
  while read -r _ _ st _ 2>/dev/null <"/proc/$oldpid/stat" && [ "$st" != Z ]; do sleep ${EXIT_POLL_S}; done
fi
echo @start
rm -rf "$pipe" && mkdir "$pipe"
for e in "$new"/erts-*; do erts=$e; done
setsid "$erts/bin/run_erl" "$pipe/" "$logd/" "exec \\"$new/bin/${APP}\\" start_iex" </dev/null >/dev/null 2>&1 &
echo $! >"$pidfile"
echo @pid
until "$new/bin/${APP}" pid >>"$cmdlog" 2>&1; do echo @pid-retry; sleep ${PID_POLL_S}; done
echo @health
until curl -sf -o /dev/null --max-time 2 "$url"; do echo @health-retry; sleep ${HEALTH_POLL_S}; done
echo @done
`

/** Runs the by-hand script for `rel`, replacing `prev` (or nothing); returns wall ms and the marker timeline. */
async function byHandDeploy(ctx: Context, rel: Release, prev: Release | null): Promise<ByHandRun> {
  const b = ctx.base
  const args = [rel.dir!, prev?.dir ?? '', b.pidFile, b.pipe, b.log, `http://127.0.0.1:${ctx.baseHttpPort}/health`, b.cmdLog]
  const marks: [string, number][] = []
  const retries = { pid: 0, health: 0 }
  let err = ''
  const t0 = nowMs()
  const child = spawn('sh', ['-c', SCRIPT, 'sh', ...args], { cwd: b.shared, env: b.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  state.shells.add(child)
  let buf = ''
  child.stdout.on('data', (d: Buffer) => {
    const t = nowMs() - t0
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (line === '@pid-retry') retries.pid++
      else if (line === '@health-retry') retries.health++
      else if (line.startsWith('@')) marks.push([line.slice(1), t])
    }
  })
  child.stderr.on('data', (d: Buffer) => (err += d))
  const timer = setTimeout(() => {
    killGroup(child.pid!)
  }, RUN_TIMEOUT_MS)
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
  const ms = nowMs() - t0
  clearTimeout(timer)
  await new Promise<void>((r) => (child.stdout.readableEnded ? r() : child.stdout.on('end', r)))
  state.shells.delete(child)
  if (code !== 0) {
    const tail = fs.existsSync(b.cmdLog) ? fs.readFileSync(b.cmdLog, 'utf8').slice(-3000) : ''
    throw new Error(`by-hand deploy of ${rel.name} failed (${code ?? signal}): ${err}\n--- command output ---\n${tail}`)
  }
  if (err.trim()) log(`   by hand: ${err.trim()}`)
  await checkServes(ctx.baseHttpPort, rel.version, 'by hand')
  const at: Record<string, number> = Object.fromEntries(marks)
  const phases = {
    before: at.migrate!,
    migrate: at.stop! - at.migrate!,
    stop: at.start! - at.stop!,
    // of which: the rpc \`bin/hello stop\` itself, and then waiting for run_erl to exit
    stopRpc: at['stop-returned']! - at.stop!,
    stopExit: at.start! - at['stop-returned']!,
    start: at.pid! - at.start!,
    pid: at.health! - at.pid!,
    health: at.done! - at.health!,
    after: ms - at.done!,
  } as Record<string, number>
  return { ms, phases, retries, release: rel.name }
}

async function checkServes(port: number, version: string, who: string) {
  const r = await request({ port }, 'GET', '/', { timeoutMs: 2000 }).catch((e: Error) => ({ status: 0, text: e.message }))
  if (r.status !== 200 || r.text.trim() !== `hello ${version}`) throw new Error(`${who}: GET / on port ${port} answered ${r.status} ${JSON.stringify(r.text)}, expected "hello ${version}"`)
}

// ---------------------------------------------------------------------------------------------------------------
// Setup

function loadFixtures(): Release[] {
  const manifestFile = path.join(FIXTURES, 'manifest.json')
  const have = () => fs.existsSync(manifestFile) && ['v1', 'v2'].every((v) => fs.existsSync(path.join(FIXTURES, `${v}.tar.gz`)))
  if (!have()) {
    log('fixtures missing: running `node scripts/build-fixtures.mjs` …')
    const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'build-fixtures.mjs')], { cwd: REPO, stdio: 'inherit' })
    if (r.status !== 0 || !have()) throw new Error('could not build the fixture releases (node scripts/build-fixtures.mjs)')
  }
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { variants: Record<string, { version: string }> }
  return ['v1', 'v2'].map((name) => ({ name, file: path.join(FIXTURES, `${name}.tar.gz`), version: manifest.variants[name]!.version }))
}

/** Which build of the deploy code ran: others edit src/ and rebuild dist/ while benchmarks run. */
function buildId(root: string) {
  const h = crypto.createHash('sha256')
  const src = path.join(root, 'dist', 'src')
  const dirs = ['deploy', 'supervision', 'process', 'instances'].map((d) => path.join(src, d))
  const files = [...dirs.flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.js')).sort().map((f) => path.join(d, f)) : [])), path.join(src, 'store', 'deployments.js')]
  for (const f of files) if (fs.existsSync(f)) h.update(fs.readFileSync(f))
  const mtime = Math.max(...files.filter((f) => fs.existsSync(f)).map((f) => fs.statSync(f).mtimeMs))
  return `${h.digest('hex').slice(0, 12)} (newest of dist/src/{deploy,supervision,process,instances}/*.js and store/deployments.js ${new Date(mtime).toISOString()})`
}

function machine(root: string) {
  const df = spawnSync('df', ['-T', root], { encoding: 'utf8' }).stdout.trim().split('\n').pop()?.split(/\s+/)
  return {
    cpus: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    memGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    node: process.version,
    fs: df ? `${df[0]} (${df[1]})` : '?',
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

interface Result {
  machine: ReturnType<typeof machine>
  build: string
  loadBefore: number[]
  loadAfter?: number[]
  idleCpuMsPerS?: number
  runs: number
  warmup: { byHand: ByHandRun; berth: BerthRun }
  byHand: ByHandRun[]
  berth: BerthRun[]
}

function report(r: Result) {
  const B = r.berth.map((x) => x.ms)
  const H = r.byHand.map((x) => x.ms)
  const paired = r.berth.map((x, i) => x.ms - r.byHand[i]!.ms)
  const overhead = median(B) - median(H)
  // The two polling waits depend on when the new node happens to answer relative to the 200 ms polls and on how
  // long the node takes to boot on a busy machine; the rest of a deploy is not quantised.
  const fixed = (x: BerthRun | ByHandRun) => x.ms - x.phases.pid! - x.phases.health!
  const Hf = r.byHand.map(fixed)
  const Bf = r.berth.map(fixed)
  const pairedF = r.berth.map((x, i) => fixed(x) - fixed(r.byHand[i]!))
  const overheadFixed = median(Bf) - median(Hf)
  // berth's bookkeeping from its own step timestamps: the request's wall time less the three steps that do
  // the work (eval, stop + spawn, waiting for the node), i.e. HTTP, lock, DB writes, the switching step and the
  // gaps between steps. BEAM boots are inside the work steps, so their ±1 s does not reach this figure.
  const book = r.berth.map((x) => x.ms - ['migrating', 'starting', 'verifying'].reduce((a, s) => a + (x.steps[s]?.ms ?? 0), 0))
  const row = (name: string, xs: number[]) => [name, String(xs.length), fmt(median(xs)), fmt(percentile(xs, 90)), fmt(Math.min(...xs)), fmt(Math.max(...xs))]
  const summary = mdTable(['deploy (replaces the running node)', 'runs', 'median ms', 'p90 ms', 'min ms', 'max ms'], [
    row('by hand (`sh -c`)', H),
    row('berth `deployments?wait=true`', B),
    ['berth − by hand, paired per run', String(paired.length), signed(median(paired)), signed(percentile(paired, 90)), signed(Math.min(...paired)), signed(Math.max(...paired))],
    row('by hand, without the two polling waits', Hf),
    row('berth, without the two polling waits', Bf),
    ['berth − by hand without the waits, paired', String(pairedF.length), signed(median(pairedF)), signed(percentile(pairedF, 90)), signed(Math.min(...pairedF)), signed(Math.max(...pairedF))],
    row('berth bookkeeping: wall − (migrating + starting + verifying) from its step timestamps', book),
  ])

  const ph = (side: 'berth' | 'byHand', k: string) => r[side].map((x: BerthRun | ByHandRun) => x.phases[k])
  const phaseRows = ([
    ['before the first step (sh start / HTTP, lock, DB)', 'before', 'before'],
    ['migrate: `bin/hello eval "Hello.Release.migrate()"`', 'migrate', 'migrate'],
    ['switch `current` + gaps between steps', null, 'switch'],
    ['stop old node: `bin/hello stop` + its exit', 'stop', 'stop'],
    ['  of which until `bin/hello stop` returns (by hand only)', 'stopRpc', null],
    ['  of which until run_erl has exited (by hand only)', 'stopExit', null],
    ['start: spawn run_erl (+ record)', 'start', 'start'],
    ['wait for `bin/hello pid` (200 ms polls)', 'pid', 'pid'],
    ['wait for health 2xx (200 ms polls)', 'health', 'health'],
    ['after health 2xx → answer (sh exit / stable window 0, retention, DB, HTTP)', 'after', 'after'],
  ] as [string, string | null, string | null][]).map(([label, h, b]) => {
    const hm = h ? median(ph('byHand', h)) : 0
    if (!b) return [label, fmt(hm), '–', '']
    const bm = median(ph('berth', b))
    return [label, h ? fmt(hm) : '–', fmt(bm), signed(bm - hm)]
  })
  phaseRows.push(['**total (median of the wall times)**', fmt(median(H)), fmt(median(B)), signed(overhead)])
  const phases = mdTable(['phase (medians)', 'by hand ms', 'berth ms', 'berth − by hand'], phaseRows)

  const stepNames = ['migrating', 'switching', 'starting', 'verifying']
  const perRun = mdTable(
    ['run', 'release', 'by hand ms', 'pid/health retries', 'berth ms', ...stepNames.map((s) => `${s} ms`), 'outside steps ms', 'berth CPU ms'],
    r.berth.map((b, i) => {
      const h = r.byHand[i]!
      const inSteps = stepNames.reduce((a, s) => a + (b.steps[s]?.ms ?? 0), 0)
      return [String(i + 1), b.release, fmt(h.ms), `${h.retries.pid}/${h.retries.health}`, fmt(b.ms), ...stepNames.map((s) => fmt(b.steps[s]?.ms)), fmt(b.ms - inSteps), fmt(b.cpu)]
    }),
  )
  const stepStats = mdTable(
    ['berth step', 'median ms', 'p90 ms'],
    stepNames.map((s) => [s, fmt(median(r.berth.map((b) => b.steps[s]?.ms))), fmt(percentile(r.berth.map((b) => b.steps[s]?.ms), 90))]),
  )
  const first = mdTable(['first deploy on a fresh app (warm-up, n=1, no node to stop)', 'by hand ms', 'berth ms', 'berth − by hand'], [
    ['v1', fmt(r.warmup.byHand.ms), fmt(r.warmup.berth.ms), signed(r.warmup.berth.ms - r.warmup.byHand.ms)],
  ])
  let probe = ''
  if (r.berth[0]?.probe) {
    const pr = (k: ProbeKind, f: 'n' | 'ms') => median(r.berth.map((b) => b.probe?.[k][f]))
    probe = '\n\n' + mdTable(['berth main thread, per deploy (--probe, medians)', 'calls', 'ms blocked'], [
      ['child_process spawn() (fork + wait for exec)', fmt(pr('spawn', 'n')), fmt(pr('spawn', 'ms'))],
      ['better-sqlite3 writes (Statement.run, WAL fsync)', fmt(pr('sql', 'n')), fmt(pr('sql', 'ms'))],
      ['/proc scans (Supervisor.status → descendants) and /proc reads', fmt(pr('proc', 'n')), fmt(pr('proc', 'ms'))],
    ])
  }
  return { overheadFixed, text: `${summary}\n\n**overhead = median berth − median by hand = ${signed(overhead)} ms** (target ≤ 150 ms, stable window 0); without the two polling waits (pid, health): ${signed(overheadFixed)} ms\n\n${phases}\n\nPer run:\n\n${perRun}\n\n${stepStats}\n\n${first}${probe}`, overhead }
}

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  const opts = parseCli('bench/deploy', import.meta.url, OPTIONS, DEFAULTS)
  state.keep = opts.keep
  if (!fs.existsSync(path.join(opts.berthRoot, 'dist', 'src', 'cli', 'main.js'))) throw new Error(`${opts.berthRoot}/dist is missing: run \`npm run build\` first`)
  for (const tool of ['tar', 'setsid', 'curl']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is needed`)
  }
  const rels = loadFixtures()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-deploy-'))
  state.root = root
  const [listenPort, epmdPort, berthHttpPort, baseHttpPort] = await freePorts(4)
  const m = machine(root)
  log(`machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memGiB.toFixed(1)} GiB RAM, kernel ${m.kernel}, node ${m.node}, temp dir on ${m.fs}`)
  log(`load:    ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}${os.loadavg()[0] > 0.5 ? '  (something else is running: figures will be noisy)' : ''}`)
  log(`build:   ${buildId(opts.berthRoot)}`)
  log(`temp:    ${root}; epmd port ${epmdPort}, berth on ${listenPort}, app HTTP ${berthHttpPort} (berth) / ${baseHttpPort} (by hand)`)

  // By-hand side: unpacked copies (untimed) and its own writable dirs, laid out like berth's.
  const baseDir = path.join(root, 'byhand')
  const shared = path.join(baseDir, 'shared')
  const logDir = path.join(baseDir, 'log')
  const base: ByHandLayout = {
    shared,
    log: logDir,
    data: path.join(baseDir, 'data'),
    pipe: path.join(shared, 'pipe'),
    pidFile: path.join(shared, 'run_erl.pid'),
    cmdLog: path.join(logDir, 'commands.log'),
    env: {},
  }
  for (const d of [base.shared, path.join(base.shared, 'tmp'), base.log, base.data]) fs.mkdirSync(d, { recursive: true, mode: 0o750 })
  for (const rel of rels) {
    rel.dir = path.join(baseDir, 'releases', rel.name)
    fs.mkdirSync(rel.dir, { recursive: true })
    const t = spawnSync('tar', ['xzf', rel.file, '-C', rel.dir], { encoding: 'utf8' })
    if (t.status !== 0) throw new Error(`tar xzf ${rel.file}: ${t.stderr}`)
  }
  const nodeEnvCommon = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: process.env.LANG ?? 'C.UTF-8',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    ERL_EPMD_PORT: String(epmdPort),
    ERL_AFLAGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    RUN_ERL_LOG_MAXSIZE: String(10 * 1024 * 1024),
    RUN_ERL_LOG_GENERATIONS: '5',
    RUN_ERL_LOG_ALIVE_MINUTES: '1440',
  }
  // The same variables berth's Supervisor.nodeEnv gives a node, plus the app env both sides get.
  base.env = {
    ...nodeEnvCommon,
    HOME: base.shared,
    PORT: String(baseHttpPort),
    HELLO_DATA_DIR: base.data,
    RELEASE_NODE: 'bench_byhand',
    DEPLOY_BENCH_ROOT: root,
    RELEASE_TMP: path.join(base.shared, 'tmp'),
    ERL_CRASH_DUMP: path.join(base.log, 'erl_crash.dump'),
  }

  // One epmd for both sides, started before anything is timed (it would otherwise be started by the first node).
  const erts = fs.readdirSync(rels[0]!.dir!).find((f) => f.startsWith('erts-'))
  if (!erts) throw new Error(`no erts-* in ${rels[0]!.dir}: the fixture releases include ERTS`)
  const ep = spawnSync(path.join(rels[0]!.dir!, erts, 'bin', 'epmd'), ['-daemon'], { env: base.env, encoding: 'utf8' })
  if (ep.status !== 0) throw new Error(`epmd -daemon: ${ep.stderr}`)
  for (let i = 0; !(await canConnect(epmdPort)); i++) {
    if (i > 100) throw new Error(`epmd did not listen on ${epmdPort}`)
    await sleep(50)
  }

  const daemon = await startDaemon(opts, root, listenPort, epmdPort)
  const berthData = path.join(root, 'berth-app-data')
  fs.mkdirSync(berthData)
  await must(api(daemon, 'PUT', `/v1/apps/${APP}/env`, { PORT: String(berthHttpPort), HELLO_DATA_DIR: berthData, RELEASE_NODE: 'bench_berth', DEPLOY_BENCH_ROOT: root }), 200, 'PUT env')
  await must(api(daemon, 'PUT', `/v1/apps/${APP}/settings`, { stableWindowMs: 0, healthUrl: `http://127.0.0.1:${berthHttpPort}/health` }), 200, 'PUT settings')
  for (const rel of rels) {
    const up = await must(api(daemon, 'POST', `/v1/apps/${APP}/releases`, rel.file), 201, `upload ${rel.name}`)
    rel.berthId = up.id
  }
  log(`berth:   pid ${daemon.pid}, releases ${rels.map((r) => `${r.name}=${r.berthId}`).join(', ')}; ERTS ${erts.slice(5)}`)

  const ctx: Context = { daemon, base, berthHttpPort: berthHttpPort!, baseHttpPort: baseHttpPort!, root, probe: opts.probe }
  const [v1, v2] = rels as [Release, Release]

  log('warm-up: first deploy of v1 on each side, then v2 over it (untimed) …')
  const warmByHand = await byHandDeploy(ctx, v1, null)
  await sleep(SETTLE_MS)
  const warm = { byHand: warmByHand, berth: await berthDeploy(ctx, v1) }
  await sleep(SETTLE_MS)
  log(`   first deploy: by hand ${fmt(warm.byHand.ms)} ms, berth ${fmt(warm.berth.ms)} ms`)
  const w2h = await byHandDeploy(ctx, v2, v1)
  await sleep(SETTLE_MS)
  const w2b = await berthDeploy(ctx, v2)
  await sleep(SETTLE_MS)
  log(`   replace:      by hand ${fmt(w2h.ms)} ms, berth ${fmt(w2b.ms)} ms`)

  const result: Result = { machine: m, build: buildId(opts.berthRoot), loadBefore: os.loadavg(), runs: opts.runs, warmup: warm, byHand: [], berth: [] }
  let prev = v2
  for (let i = 0; i < opts.runs; i++) {
    const rel = prev === v1 ? v2 : v1
    let h: ByHandRun, b: BerthRun
    if (i % 2 === 0) {
      h = await byHandDeploy(ctx, rel, prev)
      await sleep(SETTLE_MS)
      b = await berthDeploy(ctx, rel)
    } else {
      b = await berthDeploy(ctx, rel)
      await sleep(SETTLE_MS)
      h = await byHandDeploy(ctx, rel, prev)
    }
    await sleep(SETTLE_MS)
    result.byHand.push(h)
    result.berth.push(b)
    prev = rel
    const steps = ['migrating', 'switching', 'starting', 'verifying'].map((s) => `${s.slice(0, 5)} ${fmt(b.steps[s]?.ms)}`).join(', ')
    log(`run ${i + 1}/${opts.runs} (${rel.name}${i % 2 ? ', berth first' : ''}): by hand ${fmt(h.ms)} ms (retries pid ${h.retries.pid}, health ${h.retries.health}), berth ${fmt(b.ms)} ms (${steps}; CPU ${fmt(b.cpu)} ms)  Δ ${signed(b.ms - h.ms)} ms`)
  }
  result.loadAfter = os.loadavg()
  // What the daemon costs while nothing happens but its node running (health polling, status scans).
  const idle0 = procCpuMs(daemon.pid)
  await sleep(5000)
  result.idleCpuMsPerS = (procCpuMs(daemon.pid) - idle0) / 5

  // Sanity: every deploy migrated exactly once on its side.
  const lines = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').length : 0)
  const expected = opts.runs + 2
  const got = { byHand: lines(path.join(base.data, 'migrations.log')), berth: lines(path.join(berthData, 'migrations.log')) }
  if (got.byHand !== expected || got.berth !== expected) log(`WARNING: migrations.log has ${got.byHand} (by hand) / ${got.berth} (berth) lines, expected ${expected} each`)

  const { text } = report(result)
  process.stdout.write(`\n${text}\n\n`)
  process.stdout.write([
    `machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memGiB.toFixed(1)} GiB RAM, kernel ${m.kernel}, node ${m.node}, ERTS ${erts.slice(5)}, temp dir on ${m.fs}`,
    `load average: ${result.loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ${result.loadAfter.map((x) => x.toFixed(2)).join(' ')} after`,
    `berth build ${result.build}; daemon CPU while idle with its node running: ${fmt(result.idleCpuMsPerS, 1)} ms per s`,
    'Runs alternate v1/v2 and which side goes first; each run replaces the node the previous run started (stop included on both sides).',
    'p90 is nearest-rank (with 5 runs: the slowest). Every phase that boots a BEAM (eval, stop, pid) varies by hundreds of ms',
    `from run to run when the CPUs are busy${os.loadavg()[0] > 1 ? ` (load average ${os.loadavg()[0].toFixed(1)} on ${m.cpus} CPUs now)` : ''}: compare medians over several invocations or more --runs.`,
    'Both sides poll `bin/hello pid` and the health URL every 200 ms (berth\'s fixed intervals), so each wait is quantised to',
    '~200 ms plus the ~0.3–0.5 s an rpc `bin/hello pid` takes; compare the phase table for the parts that are not quantised.',
    'berth phases come from steps[].startedAt/endedAt (ms resolution), the node\'s startedAt and the verify step\'s output;',
    'by-hand phases from markers the script echoes (timestamped here on arrival). berth CPU = daemon user+system during the request.',
  ].join('\n') + '\n')
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ opts, ...result }, null, 2))
}

main()
  .catch((err) => {
    if (signals.interrupted) return
    log(`\nbench/deploy: ${err.stack ?? err}`)
    process.exitCode = 1
  })
  .finally(async () => {
    if (!signals.interrupted) await cleanup()
  })

#!/usr/bin/env node
// Fleet benchmark: the wall time of `berth fleet deploy` to 4 and to 8 local agents with batch 1, 2 and all,
// against a single-host deploy in the same run, and the orchestration overhead of the rollout.
//
//   npm run build && node dist/bench/fleet.js [--hosts 4,8] [--batches 1,2,all] [--runs N] [--json FILE] [--keep]
//
//   --hosts LIST    fleet sizes (default 4,8); one agent more than the largest is started
//   --batches LIST  batch sizes, a number or `all` (default 1,2,all); canary 1 and migrate: once always
//   --runs N        timed rollouts of each size and batch (default 1); v1 and v2 alternate
//   --json FILE     also write every run (phases, each host's deployment time) as JSON
//   --keep          leave the temporary directory (data dirs, logs) in place; processes are still stopped
//
// Each agent is `berth serve` as a child process with its own data dir, port and epmd; the hello release of
// every host writes its migrations into one shared directory. Settings: stableWindowMs 0 and a healthUrl, so a
// deployment is migrate (the canary) + stop + boot + health. The rollout runs the fleet conductor that
// `berth fleet deploy` runs (dist/src/fleet, over HTTP), in this process, timed from the first upload:
//   upload     until every host has the release and has been read (the uploads run in parallel)
//   deploy     from then to the end of the rollout
//   work       the sum over the phases of the phase's slowest deployment, as the agents timed it
//              (createdAt to finishedAt): what the hosts had to do, one phase after another
//   overhead   (deploy - work) / work: polling, requests, and the conductor itself
// The single-host deploy is `POST /v1/apps/hello/deployments?wait=true` on one more agent that is in no fleet,
// between the rollouts (median of them): what a batch of one costs at best.
// On exit or Ctrl+C every agent is stopped and every process naming the temp dir is killed, then it is removed.

import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { HttpAgent } from '../src/cli/fleet-agent.js'
import { DEFAULT_FOLLOW } from '../src/fleet/agent.js'
import { parseFleet } from '../src/fleet/file.js'
import { deployFleet } from '../src/fleet/rollout.js'
import { type Berth, BenchError, FIXTURES, type OptionSpec, fmt, freePorts, killProcessesNaming, mdTable, median, onInterrupt, parseCli, request, rmTreeSync, sleep, startBerth } from './lib.js'

const OPTIONS: Record<string, OptionSpec> = {
  '--hosts': { key: 'hosts', type: 'list' },
  '--batches': { key: 'batches', type: 'list' },
  '--runs': { key: 'runs', type: 'int', min: 1 },
  '--json': { key: 'json', type: 'path' },
  '--keep': { key: 'keep', value: true },
}
const opts = parseCli('bench/fleet', import.meta.url, OPTIONS, { hosts: ['4', '8'], batches: ['1', '2', 'all'], runs: 1, json: null as string | null, keep: false })
const sizes = opts.hosts.map(Number)
const wrong = (why: string) => {
  process.stderr.write(`bench/fleet: ${why}\n`)
  process.exit(2)
}
if (sizes.some((n) => !Number.isInteger(n) || n < 2)) wrong('--hosts: each size must be a whole number of at least 2')
for (const b of opts.batches) if (b !== 'all' && !(Number(b) >= 1)) wrong(`--batches: "${b}" is neither a number nor all`)

/** A fixture release, as scripts/build-fixtures.mjs lists it in manifest.json. */
interface FixtureRelease {
  tarball: string
  sha256?: string
}
/** A deployment as GET /v1/apps/{app}/deployments/{id} answers it: the agent's own timing. */
interface Timed {
  createdAt: string
  finishedAt: string
}

const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as { variants: Record<string, FixtureRelease> }
const releases = ['v1', 'v2'].map((v) => manifest.variants[v]!)
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fleet-bench-'))
const shared = path.join(root, 'shared')
fs.mkdirSync(shared)
const agents: Berth[] = []

async function cleanup() {
  await Promise.allSettled(agents.map((a) => a.stop()))
  killProcessesNaming(root)
  if (!opts.keep) rmTreeSync(root)
}
const signals = onInterrupt('bench/fleet', cleanup)

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
const ms = (d: Timed) => Date.parse(d.finishedAt) - Date.parse(d.createdAt)

async function setUp(n: number) {
  const ports = await freePorts(n * 3)
  for (let i = 0; i < n; i++) {
    const [listen, epmd, app] = ports.slice(i * 3, i * 3 + 3) as [number, number, number]
    const a = await startBerth({ dataDir: path.join(root, `agent-${i + 1}`), port: listen, env: { BERTH_EPMD_PORT: String(epmd) } })
    agents.push(a)
    const calls: [string, unknown][] = [
      ['/env', { PORT: String(app), HELLO_DATA_DIR: shared }],
      ['/settings', { stableWindowMs: 0, bootTimeoutMs: 120_000, migrateTimeoutMs: 60_000, healthUrl: `http://127.0.0.1:${app}/health` }],
    ]
    for (const [p, body] of calls) {
      const r = await request(a, 'PUT', `/v1/apps/hello${p}`, { json: body })
      if (r.status !== 200) throw new BenchError('SETUP_FAILED', `agent ${i + 1} PUT ${p}: ${r.text}`)
    }
    process.stderr.write(`agent ${i + 1} of ${n} up on ${a.url}\n`)
  }
}

/** One rollout of `release` over the first n agents; answers its timings. */
async function rollout(n: number, batch: string, release: FixtureRelease) {
  const text = `app: hello\nhosts:\n${agents.slice(0, n).map((a, i) => `  - { name: h${i + 1}, url: "${a.url}", tokenEnv: T${i + 1} }\n`).join('')}canary: 1\nbatch: ${batch === 'all' ? '"100%"' : batch}\nmigrate: once\n`
  const fleet = parseFleet(text, 'bench')
  const clients = fleet.hosts.map((h, i) => new HttpAgent(h, 'hello', agents[i]!.token))
  const t0 = performance.now()
  let tPlan = NaN
  const r = await deployFleet({ fleet, agents: clients, file: release.tarball, sha256: release.sha256 ?? sha256(release.tarball), follow: DEFAULT_FOLLOW, onEvent: (e) => e.type === 'plan' && (tPlan = performance.now()) })
  const tEnd = performance.now()
  if (!r.ok) throw new BenchError('ROLLOUT_HALTED', `the rollout halted: ${JSON.stringify(r.halted)}`)
  const byHost = new Map<string, number>()
  for (const [i, h] of r.hosts.entries()) {
    const d = (await request(agents[i]!, 'GET', `/v1/apps/hello/deployments/${h.deployment}`)).json
    byHost.set(h.host, ms(d))
  }
  const phases = r.phases.map((p) => ({ hosts: p.hosts, maxMs: Math.max(...p.hosts.map((h) => byHost.get(h) ?? NaN)) }))
  const work = phases.reduce((s, p) => s + p.maxMs, 0)
  const deploy = tEnd - tPlan
  return { hosts: n, batch, release: r.release, totalMs: tEnd - t0, uploadMs: tPlan - t0, deployMs: deploy, workMs: work, overheadPct: ((deploy - work) / work) * 100, phases, perHostMs: Object.fromEntries(byHost) }
}

/** The extra agent, in no fleet: a deploy of the other release there, timed. */
let singleTurn = 0
async function singleDeploy() {
  const extra = agents[agents.length - 1]!
  const up = await request(extra, 'POST', `/v1/apps/hello/releases`, { file: releases[singleTurn++ % 2]!.tarball })
  const t0 = performance.now()
  const r = await request(extra, 'POST', '/v1/apps/hello/deployments?wait=true', { json: { release: up.json.id } })
  const wall = performance.now() - t0
  if (r.json?.state !== 'succeeded') throw new BenchError('DEPLOY_FAILED', `single deploy: ${r.text}`)
  return { wallMs: wall, agentMs: ms(r.json) }
}

async function main() {
  const most = Math.max(...sizes)
  // One more agent than the largest fleet: the single-host deploys run there, outside every fleet.
  await setUp(most + 1)
  const load0 = os.loadavg()[0]
  let turn = 0
  const next = () => releases[turn++ % 2]!
  // Warm-up: the first deploy of each host (no previous node), then one of the other release; two single ones.
  await rollout(most, 'all', next())
  await rollout(most, 'all', next())
  await singleDeploy()
  await singleDeploy()
  const runs: Awaited<ReturnType<typeof rollout>>[] = []
  const singles: Awaited<ReturnType<typeof singleDeploy>>[] = []
  for (const n of sizes) {
    for (const batch of opts.batches) {
      for (let k = 0; k < opts.runs; k++) {
        const release = next()
        const run = await rollout(n, batch, release)
        runs.push(run)
        process.stderr.write(`${n} hosts, batch ${batch}: ${fmt(run.totalMs)} ms (deploy ${fmt(run.deployMs)}, work ${fmt(run.workMs)}, overhead ${fmt(run.overheadPct, 1)} %)\n`)
        // The hosts beyond this fleet follow untimed, so that every rollout moves every host of its fleet.
        if (n < most) await rollout(most, 'all', release)
        await sleep(500)
        singles.push(await singleDeploy())
        await sleep(500)
      }
    }
  }
  const single = median(singles.map((s) => s.wallMs))
  const rows = runs.map((r) => [String(r.hosts), r.batch, String(r.phases.length), fmt(r.totalMs), fmt(r.uploadMs), fmt(r.deployMs), fmt(r.workMs), fmt(r.deployMs - r.workMs), fmt(r.overheadPct, 1), fmt(r.deployMs / single, 2)])
  process.stdout.write(`\nsingle-host deploy (POST ?wait=true, median of ${singles.length}): ${fmt(single)} ms; load average ${load0.toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end\n\n`)
  process.stdout.write(mdTable(['hosts', 'batch', 'phases', 'total ms', 'upload ms', 'deploy ms', 'work ms (Σ phase max)', 'overhead ms', 'overhead %', 'deploy / single'], rows))
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ single: singles, runs }, null, 2))
}

try {
  await main()
} catch (err) {
  if (!signals.interrupted) {
    process.stderr.write(`bench/fleet: ${(err as Error | undefined)?.stack ?? err}\n`)
    process.exitCode = 1
  }
} finally {
  await cleanup()
}

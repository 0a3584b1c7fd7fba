#!/usr/bin/env node
// API benchmark: req/s and p50/p99 latency of berth's read routes against a bare Fastify server that answers
// the same paths with the same JSON bytes, both as child processes, measured with autocannon in the same run.
//
//   npm run build && node dist/bench/api.js [--rounds N] [--duration S] [--connections 1,10] [--routes LIST] [--json FILE]
//
//   --rounds N        how many times the whole matrix is measured, interleaved (default 3)
//   --duration S      seconds per measurement (default 3)
//   --connections L   keep-alive connections, a comma-separated list (default 1,10)
//   --routes L        which routes: healthz, apps, app, releases, deployments (default all)
//   --log-level L     berth's BERTH_LOG_LEVEL (default info, as in production)
//   --cpu-prof DIR    run berth under `node --cpu-prof` (written when it stops)
//   --berth-root D    run the berth in D (D/bin/berth.js, D/dist) instead of this checkout
//   --json FILE       also write every raw figure as JSON
//
// Set-up (untimed): a temp root with berth's data dir; berth (`bin/berth.js serve`, the initial admin token)
// with its own epmd port; app `hello` gets PORT, a health URL and the fixture releases v1 and v2 (v1 deployed,
// then v2, so there are two releases, two deployments and a running node with a BEAM). The bare server is
// `node -e` of Fastify with one route per measured path, each sending the exact body berth answered for it
// (`content-type: application/json`), without auth. One untimed second of warm-up per target and route.
// Each round measures every route × connections pair on berth and on the bare server back to back, so both see
// the same machine; the figures per round are autocannon's mean req/s and its p50 and p99 latency, and the
// server's CPU time (user+system, all threads, /proc/PID/stat) divided by the requests it answered.

import autocannon from 'autocannon'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import {
  type Berth, FIXTURES, type OptionSpec, REPO, fmt, freePorts, killProcessesNaming, mdTable, median, onInterrupt, parseCli, procCpuSeconds, procMem, request, rmTreeSync,
  startBerth,
} from './lib.js'

const require = createRequire(import.meta.url)

const ROUTES: Record<string, string> = {
  healthz: '/healthz',
  apps: '/v1/apps',
  app: '/v1/apps/hello',
  releases: '/v1/apps/hello/releases',
  deployments: '/v1/apps/hello/deployments',
}
const OPTIONS: Record<string, OptionSpec> = {
  '--rounds': { key: 'rounds', type: 'int', min: 1 },
  '--duration': { key: 'duration', type: 'number', min: 0.5 },
  '--connections': { key: 'connections', type: 'list' },
  '--routes': { key: 'routes', type: 'list', choices: Object.keys(ROUTES) },
  '--log-level': { key: 'logLevel', type: 'string' },
  '--cpu-prof': { key: 'cpuProf', type: 'path' },
  '--berth-root': { key: 'berthRoot', type: 'path' },
  '--json': { key: 'json', type: 'path' },
}
const DEFAULTS = { rounds: 3, duration: 3, connections: ['1', '10'], routes: Object.keys(ROUTES), logLevel: 'info', cpuProf: null as string | null, berthRoot: REPO, json: null as string | null }

const log = (...a: unknown[]) => process.stderr.write(a.join(' ') + '\n')
const state: { root: string; daemon: Berth | null; bare: ChildProcess | null; cleaned: boolean } = { root: '', daemon: null, bare: null, cleaned: false }
const MARKER = 'API_BENCH_ROOT'

function cleanupSync() {
  if (state.cleaned) return
  state.cleaned = true
  state.daemon?.kill()
  if (state.bare && state.bare.exitCode === null) state.bare.kill('SIGKILL')
  if (state.root) {
    killProcessesNaming(state.root, { env: `${MARKER}=${state.root}` })
    rmTreeSync(state.root)
  }
}
async function cleanup() {
  await state.daemon?.stop().catch(() => {})
  state.daemon = null
  cleanupSync()
}
const signals = onInterrupt('bench/api', cleanup)
process.on('exit', cleanupSync)

/** A string body is a file to upload. */
async function must(d: Berth, method: string, p: string, json?: unknown, status = 200) {
  const r = await request(d, method, p, json === undefined ? { timeoutMs: 120_000 } : typeof json === 'string' ? { file: json, timeoutMs: 120_000 } : { json, timeoutMs: 120_000 })
  if (r.status !== status) throw new Error(`${method} ${p} answered ${r.status} (expected ${status}): ${r.text.slice(0, 400)}`)
  return r
}

/** The bare baseline: Fastify, one GET route per path sending fixed bytes. */
async function startBare(port: number, bodies: Record<string, string>) {
  const file = path.join(state.root, 'bodies.json')
  fs.writeFileSync(file, JSON.stringify(bodies))
  const script = `
    const fastify = require(${JSON.stringify(require.resolve('fastify'))})
    const bodies = require(${JSON.stringify(file)})
    const app = fastify({ logger: false })
    for (const [p, body] of Object.entries(bodies)) app.get(p, (req, reply) => { reply.type('application/json; charset=utf-8').send(body) })
    app.listen({ host: '127.0.0.1', port: ${port} }).then(() => process.stdout.write('listening\\n'))
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } })
  state.bare = child
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => String(d).includes('listening') && resolve(undefined))
    child.on('exit', (code) => reject(new Error(`bare server exited (${code})`)))
  })
  return child
}

interface Measurement {
  rps: number
  p50: number
  p99: number
  non2xx: number
  errors: number
  total: number
  /** Server CPU per answer, µs: set by the caller, which knows the server's pid. */
  cpuUs?: number
}

/** One autocannon measurement. */
function cannon(url: string, connections: number, duration: number, headers: Record<string, string>): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration, headers, pipelining: 1 }, (err, res) => {
      if (err) return reject(err)
      resolve({ rps: res.requests.average, p50: res.latency.p50, p99: res.latency.p99, non2xx: res.non2xx, errors: res.errors + res.timeouts, total: res.requests.total })
    })
  })
}

async function main() {
  const opts = parseCli('bench/api', import.meta.url, OPTIONS, DEFAULTS)
  const conns = opts.connections.map(Number)
  state.root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-api-'))
  const [listenPort, epmdPort, appPort, barePort] = await freePorts(4)
  log(`machine: ${os.availableParallelism?.() ?? os.cpus().length} CPUs (${os.cpus()[0]?.model}), node ${process.version}`)
  log(`load:    ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`)

  state.daemon = await startBerth({
    berthRoot: opts.berthRoot,
    dataDir: path.join(state.root, 'data'),
    port: listenPort,
    env: { BERTH_EPMD_PORT: String(epmdPort), BERTH_LOG_LEVEL: opts.logLevel, BERTH_AUTH_FAILURES_PER_MINUTE: '1000000' },
    cpuProf: opts.cpuProf ? { dir: opts.cpuProf, name: `berth-api-${Date.now()}.cpuprofile` } : null,
  })
  const d = state.daemon
  const appData = path.join(state.root, 'app-data')
  fs.mkdirSync(appData)
  await must(d, 'PUT', '/v1/apps/hello/env', { PORT: String(appPort), HELLO_DATA_DIR: appData, RELEASE_NODE: 'bench_api', [MARKER]: state.root })
  await must(d, 'PUT', '/v1/apps/hello/settings', { stableWindowMs: 0, healthUrl: `http://127.0.0.1:${appPort}/health` })
  for (const v of ['v1', 'v2']) {
    const up = await must(d, 'POST', '/v1/apps/hello/releases?deploy=true', path.join(FIXTURES, `${v}.tar.gz`), 201)
    if (up.json?.deployment?.state !== 'succeeded') throw new Error(`deploy of ${v}: ${up.text.slice(0, 400)}`)
  }
  const app = (await must(d, 'GET', '/v1/apps/hello')).json
  log(`berth:   pid ${d.pid} on ${listenPort}, log level ${opts.logLevel}; hello ${app.current} ${app.node.state}, beam ${app.node.beamPid}`)

  const paths = opts.routes.map((r) => ROUTES[r]!)
  const bodies: Record<string, string> = {}
  for (const p of paths) bodies[p] = (await must(d, 'GET', p)).text
  log(`bodies:  ${paths.map((p) => `${p} ${bodies[p]!.length} B`).join(', ')}`)
  await startBare(barePort, bodies)
  const auth = { authorization: `Bearer ${d.token}` }
  const targets = [
    { name: 'berth', base: `http://127.0.0.1:${listenPort}`, headers: auth, pid: d.pid },
    { name: 'bare', base: `http://127.0.0.1:${barePort}`, headers: auth, pid: state.bare!.pid! },
  ]
  for (const t of targets) for (const p of paths) await cannon(t.base + p, 1, 1, t.headers)

  const results: Record<string, { berth: Measurement[]; bare: Measurement[] }> = {}
  const rssBefore = procMem(d.pid)?.rss ?? NaN
  for (let round = 0; round < opts.rounds; round++) {
    for (const p of paths) {
      for (const c of conns) {
        const key = `${p} @${c}`
        results[key] ??= { berth: [], bare: [] }
        // Alternate which side goes first, so neither always gets the cooler machine.
        const order = (round % 2 === 0) ? targets : [...targets].reverse()
        for (const t of order) {
          const cpu0 = procCpuSeconds(t.pid)
          const r = await cannon(t.base + p, c, opts.duration, t.headers)
          // CPU per answer: steadier than req/s on a shared machine, since waiting for a CPU costs none.
          r.cpuUs = ((procCpuSeconds(t.pid) - cpu0) / r.total) * 1e6
          if (r.non2xx || r.errors) throw new Error(`${t.name} ${key}: ${r.non2xx} non-2xx, ${r.errors} errors`)
          results[key][t.name as 'berth' | 'bare'].push(r)
        }
        const last = { berth: results[key].berth.at(-1)!, bare: results[key].bare.at(-1)! }
        log(`round ${round + 1}/${opts.rounds} ${key}: berth ${fmt(last.berth.rps)} req/s p99 ${last.berth.p99} ms, bare ${fmt(last.bare.rps)} req/s p99 ${last.bare.p99} ms, load ${os.loadavg()[0].toFixed(2)}`)
      }
    }
  }
  const rssAfter = procMem(d.pid)?.rss ?? NaN

  const range = (xs: number[], dg = 0) => (Math.min(...xs) === Math.max(...xs) ? fmt(xs[0], dg) : `${fmt(Math.min(...xs), dg)}–${fmt(Math.max(...xs), dg)}`)
  const rows = Object.entries(results).map(([key, r]) => {
    const ratio = r.berth.map((b, i) => b.rps / r.bare[i]!.rps)
    return [
      key,
      range(r.berth.map((x) => x.rps)),
      range(r.berth.map((x) => x.p50)),
      range(r.berth.map((x) => x.p99)),
      range(r.bare.map((x) => x.rps)),
      range(r.bare.map((x) => x.p99)),
      `${range(ratio, 2)} (median ${fmt(median(ratio), 2)})`,
      range(r.berth.map((x) => x.cpuUs ?? NaN)),
      range(r.bare.map((x) => x.cpuUs ?? NaN)),
    ]
  })
  process.stdout.write('\n' + mdTable(['route @connections', 'berth req/s', 'berth p50 ms', 'berth p99 ms', 'bare req/s', 'bare p99 ms', 'berth / bare req/s', 'berth CPU µs/req', 'bare CPU µs/req'], rows) + '\n\n')
  process.stdout.write(`Ranges over ${opts.rounds} rounds of ${opts.duration} s each (autocannon 9, mean req/s; p50/p99 from its histogram, ms). `
    + `berth log level ${opts.logLevel}; berth RSS ${fmt((rssBefore / 1048576), 1)} MiB before, ${fmt(rssAfter / 1048576, 1)} MiB after; load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}.\n`)
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ opts, results, load: os.loadavg() }, null, 2))
}

main()
  .catch((err) => {
    log(`\nbench/api: ${err.stack ?? err}`)
    process.exitCode = 1
  })
  .finally(async () => {
    if (signals.interrupted) return
    await cleanup()
    process.exit()
  })

#!/usr/bin/env node
// Footprint benchmark: start-to-listening time, idle RSS and RSS after 100 API calls of the berth daemon,
// against `node -e` of an empty Fastify server in the same run; and what each module berth loads at start costs.
//
//   npm run build && node dist/bench/footprint.js [--runs N] [--imports] [--berth-root D] [--json FILE]
//
//   --runs N        timed starts of each side, interleaved (default 5)
//   --imports       also time `import()` of each dependency and of berth's own top modules, each in a fresh
//                   `node` (ms and RSS growth), several times
//   --berth-root D  run the berth in D (D/bin/berth.js, D/dist) instead of this checkout
//   --compare D     also start the berth in D (e.g. an older build) in every run, as side "berth B"
//   --json FILE     also write every raw figure as JSON
//
// One run of a side: spawn it (`node FLAGS bin/berth.js serve`, FLAGS from the first line of that build's
// bin/berth.js as in production, with a data dir made by an untimed first start, so the run is a restart
// with migrations done; or the bare server), connect to its port every 2 ms until a
// connection is accepted (start-to-listening: from spawn to that moment), wait 1 s and read VmRSS (idle), make
// 100 API calls on one keep-alive connection (berth: GET /v1/apps, /v1/apps/hello, /v1/apps/hello/releases,
// /healthz and /metrics in turn, with a token; bare: GET / 100 times), wait 0.5 s, read VmRSS again, then
// SIGTERM. The app `hello` exists (the fixture v1 uploaded, not deployed: no BEAM runs).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import {
  FIXTURES, type OptionSpec, MiB, REPO, berthNodeFlags, fmt, freePort, mdTable, median, onInterrupt, parseCli, procMem, request, rmTreeSync, sleep, startBerth,
} from './lib.js'

const require = createRequire(import.meta.url)
const OPTIONS: Record<string, OptionSpec> = {
  '--runs': { key: 'runs', type: 'int', min: 1 },
  '--imports': { key: 'imports', value: true },
  '--berth-root': { key: 'berthRoot', type: 'path' },
  '--compare': { key: 'compare', type: 'path' },
  '--json': { key: 'json', type: 'path' },
}
const DEFAULTS = { runs: 5, imports: false, berthRoot: REPO, compare: null as string | null, json: null as string | null }
const log = (...a: unknown[]) => process.stderr.write(a.join(' ') + '\n')
const state = { root: '', children: new Set<ChildProcess>() }

function cleanupSync() {
  for (const c of state.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  if (state.root) rmTreeSync(state.root)
  state.root = ''
}
const signals = onInterrupt('bench/footprint', cleanupSync)
process.on('exit', cleanupSync)

/** Resolves once 127.0.0.1:port accepts a connection. */
async function listening(port: number, child: ChildProcess, deadlineMs = 30_000) {
  const end = Date.now() + deadlineMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before listening`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => (s.destroy(), resolve(true)))
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > end) throw new Error(`not listening on ${port} after ${deadlineMs} ms`)
    await sleep(2)
  }
}

/** n GETs over one keep-alive connection, cycling through paths. */
async function calls(port: number, paths: string[], n: number, token: string | null) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    for (let i = 0; i < n; i++) {
      await new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: paths[i % paths.length], agent, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
          res.resume()
          res.on('end', () => (res.statusCode === 200 ? resolve(undefined) : reject(new Error(`GET ${paths[i % paths.length]}: ${res.statusCode}`))))
        })
        req.on('error', reject)
      })
    }
  } finally {
    agent.destroy()
  }
}

async function stop(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(t)
  state.children.delete(child)
}

type Side = 'berth' | 'berthB' | 'bare'
interface Context {
  berthRoot: string
  compare: string | null
  dataDir: string
  token: string
}
interface Start {
  listenMs: number
  idleRss: number
  afterRss: number
}

/** One start of a side. */
async function runOnce(side: Side, ctx: Context): Promise<Start> {
  const port = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' }
  let args: string[]
  if (side !== 'bare') {
    Object.assign(env, { BERTH_DATA_DIR: ctx.dataDir, BERTH_LISTEN: `127.0.0.1:${port}`, BERTH_LOG_LEVEL: 'warn' })
    const root = side === 'berth' ? ctx.berthRoot : ctx.compare!
    // With the node flags production uses (bin/berth.js's first line), read from that build.
    args = [...berthNodeFlags(root), path.join(root, 'bin', 'berth.js'), 'serve']
  } else {
    args = ['-e', `const app = require(${JSON.stringify(require.resolve('fastify'))})({ logger: false }); app.get('/', async () => ({ ok: true })); app.listen({ host: '127.0.0.1', port: ${port} })`]
  }
  const started = performance.now()
  const child = spawn(process.execPath, args, { cwd: ctx.berthRoot, env, stdio: ['ignore', 'ignore', 'pipe'] })
  state.children.add(child)
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err = (err + d).slice(-4000)))
  try {
    await listening(port, child)
    const listenMs = performance.now() - started
    await sleep(1000)
    const idleRss = procMem(child.pid!)?.rss ?? NaN
    if (side !== 'bare') await calls(port, ['/v1/apps', '/v1/apps/hello', '/v1/apps/hello/releases', '/healthz', '/metrics'], 100, ctx.token)
    else await calls(port, ['/'], 100, null)
    await sleep(500)
    const afterRss = procMem(child.pid!)?.rss ?? NaN
    return { listenMs, idleRss, afterRss }
  } catch (e) {
    throw new Error(`${side}: ${(e as Error).message}\n${err}`)
  } finally {
    await stop(child)
  }
}

/** What importing each module costs in a fresh node: wall ms of the import() and RSS growth. */
function importCosts(berthRoot: string, rounds = 3) {
  const dist = (p: string) => path.join(berthRoot, 'dist', 'src', p)
  const mods = [
    'fastify', '@fastify/websocket', '@fastify/multipart', '@fastify/swagger', '@fastify/swagger-ui', 'pino', 'pino-pretty',
    'prom-client', 'node-pty', 'better-sqlite3', 'tar', 'yaml', 'ws',
    dist('log.js'), dist('services.js'), dist('http/app.js'), dist('http/server.js'), dist('cli/serve.js'),
  ]
  const out: { module: string; ms: number[]; rss: number[] }[] = []
  for (const m of mods) {
    const spec = m.startsWith('/') ? m : require.resolve(m, { paths: [berthRoot] })
    const script = `const r0 = process.memoryUsage().rss; const t = performance.now(); import(${JSON.stringify(spec)}).then(() => { const ms = performance.now() - t; process.stdout.write(JSON.stringify({ ms, rss: process.memoryUsage().rss - r0 })) })`
    const ms: number[] = []
    const rss: number[] = []
    for (let i = 0; i < rounds; i++) {
      const r = spawnSync(process.execPath, ['-e', script], { cwd: berthRoot, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })
      if (r.status !== 0) throw new Error(`import ${m}: ${r.stderr}`)
      const j = JSON.parse(r.stdout) as { ms: number; rss: number }
      ms.push(j.ms)
      rss.push(j.rss)
    }
    out.push({ module: m.startsWith('/') ? path.relative(berthRoot, m) : m, ms, rss })
  }
  return out
}

const range = (xs: number[], dg = 0) => (Math.min(...xs).toFixed(dg) === Math.max(...xs).toFixed(dg) ? fmt(xs[0], dg) : `${fmt(Math.min(...xs), dg)}–${fmt(Math.max(...xs), dg)}`)

async function main() {
  const opts = parseCli('bench/footprint', import.meta.url, OPTIONS, DEFAULTS)
  state.root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-footprint-'))
  log(`machine: ${os.availableParallelism?.() ?? os.cpus().length} CPUs (${os.cpus()[0]?.model}), node ${process.version}; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  const loads = [os.loadavg()[0]]

  // Untimed first start: database, migrations, the initial token, the app with one release.
  const dataDir = path.join(state.root, 'data')
  const first = await startBerth({ berthRoot: opts.berthRoot, dataDir })
  const up = await request(first, 'POST', '/v1/apps/hello/releases', { file: path.join(FIXTURES, 'v1.tar.gz'), timeoutMs: 120_000 })
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${up.text}`)
  const token = first.token
  await first.stop()
  const ctx = { berthRoot: opts.berthRoot, compare: opts.compare, dataDir, token }

  const res: Record<Side, Start[]> = { berth: [], berthB: [], bare: [] }
  const sides: Side[] = opts.compare ? ['berth', 'berthB', 'bare'] : ['berth', 'bare']
  for (let i = 0; i < opts.runs; i++) {
    for (const side of i % 2 ? [...sides].reverse() : sides) {
      const r = await runOnce(side, ctx)
      res[side].push(r)
      log(`run ${i + 1}/${opts.runs} ${side}: listening after ${fmt(r.listenMs)} ms, idle RSS ${fmt(r.idleRss / MiB, 1)} MiB, after 100 calls ${fmt(r.afterRss / MiB, 1)} MiB, load ${os.loadavg()[0].toFixed(2)}`)
      loads.push(os.loadavg()[0])
    }
  }
  const row = (name: string, rs: Start[]) => [
    name,
    `${range(rs.map((r) => r.listenMs))} (median ${fmt(median(rs.map((r) => r.listenMs)))})`,
    `${range(rs.map((r) => r.idleRss / MiB), 1)} (median ${fmt(median(rs.map((r) => r.idleRss / MiB)), 1)})`,
    `${range(rs.map((r) => r.afterRss / MiB), 1)} (median ${fmt(median(rs.map((r) => r.afterRss / MiB)), 1)})`,
  ]
  const ratio = (k: keyof Start) => range(res.berth.map((r, i) => r[k] / res.bare[i]![k]), 2)
  process.stdout.write('\n' + mdTable(['side', 'start to listening ms', 'idle RSS MiB', 'RSS after 100 calls MiB'], [
    row('berth serve', res.berth),
    ...(opts.compare ? [row(`berth B (${opts.compare})`, res.berthB)] : []),
    row('node -e empty Fastify', res.bare),
    ['berth / bare (per run)', ratio('listenMs'), ratio('idleRss'), ratio('afterRss')],
  ]) + '\n\n')
  process.stdout.write(`${opts.runs} runs each, interleaved; load average during the runs ${range(loads, 1)}.\n`)

  let imports: ReturnType<typeof importCosts> | null = null
  if (opts.imports) {
    imports = importCosts(opts.berthRoot)
    process.stdout.write('\n' + mdTable(['module (alone, fresh node)', 'import ms', 'RSS growth MiB'], imports.map((m) => [m.module, range(m.ms), range(m.rss.map((x) => x / MiB), 1)])) + '\n')
  }
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ opts, res, imports, loads }, null, 2))
}

main()
  .catch((err) => {
    log(`\nbench/footprint: ${err.stack ?? err}`)
    process.exitCode = 1
  })
  .finally(() => {
    if (signals.interrupted) return
    cleanupSync()
    process.exit()
  })

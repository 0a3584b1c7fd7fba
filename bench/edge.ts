#!/usr/bin/env node
// Edge benchmark (issue 25): what the shared edge costs against bare haproxy and against no proxy at all.
//
//   npm run build && node dist/bench/edge.js [--duration S] [--runs N] [--connections LIST] [--apps N] [--perf] [--json FILE]
//
//   --duration S        seconds of each measured wrk run (default 5; every target gets a 2 s warm-up first)
//   --runs N            rounds; each round runs every target once, in a rotated order (default 3)
//   --connections LIST  keep-alive connection counts, comma-separated (default 1,50)
//   --apps N            apps on the edge for the memory and reload figures, 2 hostnames and certificates each (default 20)
//   --perf              also profile the edge's and bare haproxy's worker with `perf record` during one plain run each
//   --json FILE         also write the raw results as JSON
//
// One keep-alive Node HTTP server (a child process, 6-byte answer) is the app. In front of it, in the same run:
// bare haproxy (a hand-written config: one plain frontend, one `bind … ssl crt FILE` frontend, one backend, the
// edge's timeouts and global TLS lines, no maps, no header rules) and the real Edge class (src/edge/edge.ts, with
// its Fallback on the unix socket) routing app0.test to the same server, with app0.test's certificate installed
// through edge.install. Both haproxies run master-worker (-W), each in a session of its own, with nbthread unset
// (one thread per CPU); a second bare haproxy with nbthread 1 shows what one thread does on plain HTTP. The load
// generator is wrk (installed with apt-get when missing and root), one thread, Host/SNI app0.test resolved to
// 127.0.0.1 by its Lua script. Measures: plain HTTP direct / bare / edge and HTTPS bare / edge at each connection
// count (keep-alive); new TLS handshakes per second, bare / edge (Connection: close, 50 connections, session
// resumption off in the client: an LD_PRELOAD shim built with cc makes wrk forget the session it would resume);
// CPU seconds of haproxy (master + workers), the app and wrk during each run; RSS of master + current worker for
// bare haproxy, the edge with 1 app and 1 certificate and the edge with --apps apps and 2 × --apps certificates;
// the time of one reload (ensure of one more app) and one certificate install at that size (3 of each).
// Every process started runs from the temp dir and is killed by it on exit or Ctrl+C.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import type { ProxySettings } from '../src/apps/proxy-settings.js'
import type { EdgeConfig } from '../src/config.js'
import { Challenges } from '../src/edge/challenges.js'
import { Edge } from '../src/edge/edge.js'
import { Fallback } from '../src/edge/fallback.js'
import { parseShowProc } from '../src/edge/process.js'
import { Paths } from '../src/paths.js'
import { runtimeCommand, type SlotTarget } from '../src/proxy/haproxy.js'
import type { ProxyRoutes } from '../src/proxy/proxy.js'
import type { EventStore } from '../src/store/events.js'
import { BenchError, type OptionSpec, descendants, fmt, freePorts, killProcessesNaming, mdTable, median, onInterrupt, parseCli, procCpuSeconds, procMem, rmTreeSync, sleep } from './lib.js'

const OPTIONS: Record<string, OptionSpec> = {
  '--duration': { key: 'duration', type: 'int', min: 1 },
  '--runs': { key: 'runs', type: 'int', min: 1 },
  '--connections': { key: 'connections', type: 'string' },
  '--apps': { key: 'apps', type: 'int', min: 2 },
  '--perf': { key: 'perf', value: true },
  '--json': { key: 'json', type: 'path' },
}
const DEFAULTS = { duration: 5, runs: 3, connections: '1,50', apps: 20, perf: false, json: '' }

const HAPROXY = process.env.BERTH_HAPROXY || '/usr/sbin/haproxy'
const HOST = 'app0.test'
const MiB = 1024 * 1024

/** The app: keep-alive HTTP/1.1, the same small answer to every request. */
const BACKEND = `const http = require('node:http')
const s = http.createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'text/plain' }); res.end('hello\\n') })
s.keepAliveTimeout = 65000
s.listen(Number(process.argv[1]), '127.0.0.1')`

/** wrk's script: every URL's host resolves to 127.0.0.1 (SNI and Host stay the name); one JSON line at the end. */
const WRK_LUA = `function wrk.resolve(host, service) wrk.addrs = wrk.lookup("127.0.0.1", service) end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('\\nBENCH {"requests":%d,"us":%d,"errors":%d,"p50":%.1f,"p99":%.1f}\\n', s.requests, s.duration, e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))
end
`

/** Makes wrk forget its TLS session when it closes a connection: the next one is a full handshake. */
const FRESH_TLS_C = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
int SSL_clear(SSL *s) {
  static int (*real)(SSL *);
  if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
  SSL_set_session(s, NULL);
  return real(s);
}
`

interface Run {
  target: string
  mode: 'keep-alive' | 'handshake'
  connections: number
  rps: number
  p50: number
  p99: number
  errors: number
  /** CPU seconds during the run. */
  cpu: { haproxy: number; app: number; wrk: number }
  /** Connections haproxy opened to the app during the run (its `connect` counter): keep-alive on the server side? */
  appConnects: number
  /** TLS connections haproxy accepted during the run (`CumSslConns` of `show info`). */
  tlsConns: number
}

function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env })
  if (r.status !== 0) throw new BenchError('COMMAND_FAILED', `${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim().slice(0, 400)}`)
  return r.stdout
}

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

/** wrk, installed from Debian when missing (root only): the benches' one optional tool outside npm. */
function ensureWrk(): string {
  if (!have('wrk') && process.getuid?.() === 0 && have('apt-get')) {
    console.error('bench/edge: installing wrk (apt-get)')
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'wrk'], { stdio: 'inherit', env })
  }
  if (!have('wrk')) throw new BenchError('NO_WRK', 'wrk not found: apt-get install wrk')
  return spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0]!.trim()
}

/** A self-signed ECDSA P-256 certificate for host (as the edge's own default one), chain then key, mode 0600. */
function certPem(dir: string, host: string): string {
  const key = path.join(dir, `${host}.key`)
  const crt = path.join(dir, `${host}.crt`)
  sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '30', '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`])
  const pem = path.join(dir, `${host}.pem`)
  fs.writeFileSync(pem, fs.readFileSync(crt, 'utf8') + fs.readFileSync(key, 'utf8'), { mode: 0o600 })
  fs.rmSync(key)
  fs.rmSync(crt)
  return pem
}

function waitListening(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const c = net.connect(port, '127.0.0.1')
      c.once('connect', () => {
        c.destroy()
        resolve()
      })
      c.once('error', () => (Date.now() > deadline ? reject(new BenchError('NOT_LISTENING', `nothing listens on ${port}`)) : setTimeout(attempt, 50)))
    }
    attempt()
  })
}

/** The lines of a section of the edge's config (`global`, `defaults`) that match. */
function edgeLines(edgeConfig: string, section: string, keep: RegExp): string[] {
  const lines = edgeConfig.split('\n')
  const from = lines.indexOf(section)
  const to = lines.indexOf('', from)
  return lines.slice(from + 1, to).filter((l) => keep.test(l))
}

/** Bare haproxy: the global TLS lines and the timeouts of the edge's own config (read back), nothing else. */
function bareConfig(dir: string, edgeConfig: string, plain: number, tls: number, backend: number, pem: string, nbthread: number | null): string {
  return [
    'global',
    `  stats socket ${path.join(dir, 'runtime.sock')} mode 600 level admin`,
    ...(nbthread ? [`  nbthread ${nbthread}`] : []),
    ...edgeLines(edgeConfig, 'global', /^ {2}(noreuseport|ssl-|tune\.ssl)/),
    '',
    'defaults',
    '  mode http',
    ...edgeLines(edgeConfig, 'defaults', /^ {2}timeout /),
    '',
    'frontend plain',
    `  bind 127.0.0.1:${plain}`,
    '  default_backend app',
    '',
    'frontend tls',
    `  bind 127.0.0.1:${tls} ssl crt ${pem}`,
    '  default_backend app',
    '',
    'backend app',
    `  server a 127.0.0.1:${backend}`,
    '',
  ].join('\n')
}

async function startBare(dir: string, cfg: string): Promise<{ master: number; masterSocket: string }> {
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, 'haproxy.cfg')
  fs.writeFileSync(file, cfg)
  const masterSocket = path.join(dir, 'master.sock')
  // In a session of its own, as the edge's (edge/process.ts): with the kernel's autogroup scheduling a session is a
  // CPU group, and a bare haproxy left in the load generator's group made the edge look 0.45-0.62x of it (README).
  const child = spawn(HAPROXY, ['-W', '-db', '-S', `${masterSocket},mode,600`, '-f', file], { cwd: dir, detached: true, stdio: ['ignore', 'ignore', 'inherit'] })
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const info = await runtimeCommand(path.join(dir, 'runtime.sock'), 'show info').catch(() => '')
    if (info.includes('Pid:')) return { master: child.pid!, masterSocket }
    await sleep(50)
  }
  throw new BenchError('BARE_START', 'bare haproxy did not start')
}

/** The `connect` counter (connections opened to the servers) of one backend, from `show stat`. */
async function backendConnects(runtimeSocket: string, backend: string): Promise<number> {
  const [head, ...rows] = (await runtimeCommand(runtimeSocket, 'show stat')).trim().split('\n')
  const col = head!.replace(/^# /, '').split(',').indexOf('connect')
  const row = rows.map((r) => r.split(',')).find((r) => r[0] === backend && r[1] === 'BACKEND')
  return Number(row?.[col] ?? NaN)
}

/** TLS connections the current worker has accepted so far. */
async function tlsAccepted(runtimeSocket: string): Promise<number> {
  return Number(/^CumSslConns: (\d+)/m.exec(await runtimeCommand(runtimeSocket, 'show info'))?.[1] ?? NaN)
}

/** CPU seconds of a haproxy master and its workers. */
const treeCpu = (master: number) => [master, ...descendants(master)].reduce((s, pid) => s + (procCpuSeconds(pid) || 0), 0)

/** RSS of a master and its current worker (from `show proc`), and of old workers still finishing. */
async function haproxyRss(master: number, masterSocket: string): Promise<{ master: number; worker: number; old: number }> {
  const w = parseShowProc(await runtimeCommand(masterSocket, 'show proc'))
  const rss = (pid: number | null) => (pid ? (procMem(pid)?.rss ?? 0) : 0)
  return { master: rss(master), worker: rss(w.current), old: w.old.reduce((s, pid) => s + rss(pid), 0) }
}

async function main() {
  const opts = parseCli('bench/edge', import.meta.url, OPTIONS, DEFAULTS)
  const connections = opts.connections.split(',').map(Number)
  if (connections.some((c) => !Number.isInteger(c) || c < 1)) throw new BenchError('USAGE', `--connections: whole numbers >= 1, got ${opts.connections}`)
  const wrkVersion = ensureWrk()
  // Short: the edge's unix sockets must stay under 100 bytes.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-edge-bench-'))
  const children: ChildProcess[] = []
  let edge: Edge | null = null
  let fallback: Fallback | null = null
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL')
    killProcessesNaming(tmp)
    rmTreeSync(tmp)
  }
  onInterrupt('bench/edge', cleanup)
  try {
    const shim = path.join(tmp, 'fresh-tls.so')
    fs.writeFileSync(`${shim}.c`, FRESH_TLS_C)
    sh('cc', ['-shared', '-fPIC', '-O2', '-o', shim, `${shim}.c`, '-ldl'])
    const lua = path.join(tmp, 'bench.lua')
    fs.writeFileSync(lua, WRK_LUA)

    const [appPort, barePlain, bareTls, edgeHttp, edgeHttps, bare1Plain, bare1Tls] = await freePorts(7)
    // Its own session too, as an app's BEAM under run_erl: neither haproxy shares a CPU group with it or with wrk.
    const app = spawn(process.execPath, ['-e', BACKEND, String(appPort), tmp], { detached: true, stdio: ['ignore', 'ignore', 'inherit'] })
    children.push(app)
    await waitListening(appPort!)

    // The edge, as src/services.ts builds it, in a data dir of its own.
    const paths = new Paths(path.join(tmp, 'data'))
    fs.mkdirSync(paths.edgeCerts, { recursive: true, mode: 0o700 })
    const certs = new Map<string, string>()
    const cert = (host: string) => certs.get(host) ?? certs.set(host, certPem(paths.edgeCerts, host)).get(host)!

    const routed = new Map<string, SlotTarget | null>()
    const routes: ProxyRoutes = { routed: (a) => routed.get(a) ?? null, route: (a, to) => void routed.set(a, to) }
    const log = pino({ level: 'silent' })
    const events = { record: () => undefined } as unknown as EventStore
    edge = new Edge({ paths, events, log, haproxy: HAPROXY, routes, config: { http: `127.0.0.1:${edgeHttp}`, https: `127.0.0.1:${edgeHttps}`, masterSocket: null, acme: { directory: 'https://acme.invalid/directory', email: null, caFile: null, renewFraction: 2 / 3 } as EdgeConfig['acme'] } })
    fallback = new Fallback({ paths, log, challenges: new Challenges(), socket: edge.fallbackSocket, pausedFor: (a) => edge!.pausedFor(a) })
    await fallback.start()
    await edge.start()
    // TLS by a custom certificate, no redirect (plain HTTP reaches the app too), no HSTS: bare haproxy sends none.
    const settings = (hosts: string[]): ProxySettings => ({ listen: null, drainTimeoutMs: 2000, healthPath: '/health', hosts, tls: 'custom', httpsRedirect: false, hstsMaxAge: null, maxBodyBytes: null, timeoutMs: 60_000 })
    const live: SlotTarget = { slot: 'a', port: appPort! }
    await edge.ensure('app0', settings([HOST, `www.${HOST}`]), live)
    await edge.install(HOST, cert(HOST))
    const edgeMaster = edge.status().pid!
    const edgeMasterSocket = path.join(paths.edge, 'master.sock')
    const edgeConfig = fs.readFileSync(path.join(paths.edge, 'haproxy.cfg'), 'utf8')
    const bare = await startBare(path.join(tmp, 'bare'), bareConfig(path.join(tmp, 'bare'), edgeConfig, barePlain!, bareTls!, appPort!, cert(HOST), null))
    // What one thread instead of one per CPU does on these 2 shared cores (the per-app proxy runs nbthread 1).
    const bare1 = await startBare(path.join(tmp, 'bare1'), bareConfig(path.join(tmp, 'bare1'), edgeConfig, bare1Plain!, bare1Tls!, appPort!, cert(HOST), 1))
    // Idle, before any load: the worker's pools grow with the connections it has served.
    const mem: Record<string, { master: number; worker: number; old: number }> = {}
    mem['bare haproxy, idle before the load'] = await haproxyRss(bare.master, bare.masterSocket)
    mem['edge, 1 app, 1 cert, idle before the load'] = await haproxyRss(edgeMaster, edgeMasterSocket)

    // Each answers 200 from the app (and the edge routes by name: a wrong route would be berth's 404).
    const bareStat = { master: bare.master, runtime: path.join(tmp, 'bare', 'runtime.sock'), backend: 'app' }
    const edgeStat = { master: edgeMaster, runtime: path.join(paths.edge, 'runtime.sock'), backend: 'app_app0' }
    const targets: Record<string, { url: string; haproxy: typeof bareStat | null }> = {
      direct: { url: `http://${HOST}:${appPort}/`, haproxy: null },
      'bare http': { url: `http://${HOST}:${barePlain}/`, haproxy: bareStat },
      'bare1 http': { url: `http://${HOST}:${bare1Plain}/`, haproxy: { master: bare1.master, runtime: path.join(tmp, 'bare1', 'runtime.sock'), backend: 'app' } },
      'edge http': { url: `http://${HOST}:${edgeHttp}/`, haproxy: edgeStat },
      'bare https': { url: `https://${HOST}:${bareTls}/`, haproxy: bareStat },
      'edge https': { url: `https://${HOST}:${edgeHttps}/`, haproxy: edgeStat },
    }
    for (const [name, t] of Object.entries(targets)) {
      const r = spawnSync('wrk', ['-t1', '-c1', '-d1s', '-s', lua, t.url], { encoding: 'utf8' })
      const j = JSON.parse(/BENCH (.*)/.exec(r.stdout)?.[1] ?? 'null')
      if (!j || j.errors > 0 || j.requests === 0) throw new BenchError('TARGET_DOWN', `${name} (${t.url}) does not answer 200: ${r.stdout}${r.stderr}`)
    }

    const wrk = async (target: string, conns: number, seconds: number, handshake: boolean): Promise<Run> => {
      const t = targets[target]!
      const h = t.haproxy
      const args = ['-t1', `-c${conns}`, `-d${seconds}s`, '-s', lua, ...(handshake ? ['-H', 'Connection: close'] : []), t.url]
      const connects0 = h ? await backendConnects(h.runtime, h.backend) : 0
      const tls0 = h ? await tlsAccepted(h.runtime) : 0
      const cpu0 = { haproxy: h ? treeCpu(h.master) : 0, app: procCpuSeconds(app.pid!) }
      const run = await new Promise<Run>((resolve, reject) => {
        // `times` after wrk: the CPU of the shell's children, i.e. wrk's.
        const child = spawn('sh', ['-c', 'wrk "$@"; times', 'sh', ...args], { env: handshake ? { ...process.env, LD_PRELOAD: shim } : process.env, stdio: ['ignore', 'pipe', 'inherit'] })
        let out = ''
        child.stdout.on('data', (b: Buffer) => (out += b.toString()))
        child.on('error', reject)
        child.on('close', () => {
          const j = JSON.parse(/BENCH (.*)/.exec(out)?.[1] ?? 'null')
          if (!j) return reject(new BenchError('WRK_OUTPUT', `wrk ${args.join(' ')}: ${out}`))
          const times = out.trim().split('\n').at(-1)!.split(/\s+/).map((s) => {
            const m = /(\d+)m([\d.]+)s/.exec(s)
            return m ? Number(m[1]) * 60 + Number(m[2]) : 0
          })
          resolve({
            target,
            mode: handshake ? 'handshake' : 'keep-alive',
            connections: conns,
            rps: j.requests / (j.us / 1e6),
            p50: j.p50 / 1000,
            p99: j.p99 / 1000,
            errors: j.errors,
            cpu: { haproxy: h ? treeCpu(h.master) - cpu0.haproxy : 0, app: procCpuSeconds(app.pid!) - cpu0.app, wrk: times[0]! + times[1]! },
            appConnects: 0,
            tlsConns: 0,
          })
        })
      })
      run.appConnects = h ? (await backendConnects(h.runtime, h.backend)) - connects0 : conns
      run.tlsConns = h ? (await tlsAccepted(h.runtime)) - tls0 : 0
      return run
    }

    // Warm-up, then rounds: every target once per round, the order rotated so no side always runs first.
    type Job = { target: string; conns: number; handshake: boolean }
    const groups: Job[][] = [
      ...connections.map((c) => ['direct', 'bare http', 'bare1 http', 'edge http'].map((target) => ({ target, conns: c, handshake: false }))),
      ...connections.map((c) => ['bare https', 'edge https'].map((target) => ({ target, conns: c, handshake: false }))),
      ['bare https', 'edge https'].map((target) => ({ target, conns: 50, handshake: true })),
    ]
    for (const g of groups) for (const j of g) await wrk(j.target, j.conns, 2, j.handshake)
    const runs: Run[] = []
    for (let round = 0; round < opts.runs; round++) {
      for (const g of groups) {
        for (let i = 0; i < g.length; i++) {
          const j = g[(i + round) % g.length]!
          const r = await wrk(j.target, j.conns, opts.duration, j.handshake)
          runs.push(r)
          console.error(`round ${round + 1}: ${j.target} ${r.mode} c${j.conns}: ${fmt(r.rps)} req/s, p99 ${fmt(r.p99, 2)} ms`)
        }
      }
    }

    let perfReport: Record<string, string> = {}
    if (opts.perf) perfReport = await profile({ bare: bare, edge: { master: edgeMaster, masterSocket: edgeMasterSocket } }, (target) => wrk(target, 50, opts.duration, false), tmp)

    // Memory: bare and the edge with 1 app after the load, then the edge grown to --apps apps and 2 × --apps certificates.
    mem['bare haproxy, after the load'] = await haproxyRss(bare.master, bare.masterSocket)
    mem['edge, 1 app, 1 cert, after the load'] = await haproxyRss(edgeMaster, edgeMasterSocket)
    await edge.install(`www.${HOST}`, cert(`www.${HOST}`))
    for (let i = 1; i < opts.apps; i++) await edge.ensure(`app${i}`, settings([`app${i}.test`, `www.app${i}.test`]), live)
    for (let i = 1; i < opts.apps; i++) for (const h of [`app${i}.test`, `www.app${i}.test`]) await edge.install(h, cert(h))
    const certCount = (await runtimeCommand(path.join(paths.edge, 'runtime.sock'), 'show ssl cert')).split('\n').filter((l) => l.endsWith('.pem')).length
    // One reload and one install at this size, 3 times, each on an app added then removed.
    const reloads: number[] = []
    const installs: number[] = []
    for (let k = 0; k < 3; k++) {
      const h = `extra${k}.test`
      const pem = cert(h)
      let t0 = performance.now()
      await edge.ensure(`extra${k}`, settings([h]), live)
      reloads.push(performance.now() - t0)
      t0 = performance.now()
      await edge.install(h, pem)
      installs.push(performance.now() - t0)
      await edge.uninstall(h, pem)
      await edge.remove(`extra${k}`)
    }
    // What a reload starts with: `haproxy -c` of the edge's config (edge/process.ts checks before it reloads).
    const checks: number[] = []
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now()
      sh(HAPROXY, ['-c', '-q', '-f', path.join(paths.edge, 'haproxy.cfg')])
      checks.push(performance.now() - t0)
    }
    // Once the old workers are gone (no connection holds them), then again after 2 s of HTTPS load.
    const deadline = Date.now() + 10_000
    while ((await haproxyRss(edgeMaster, edgeMasterSocket)).old > 0 && Date.now() < deadline) await sleep(200)
    const big = `edge, ${opts.apps} apps, ${certCount} certs`
    mem[`${big}, idle`] = await haproxyRss(edgeMaster, edgeMasterSocket)
    await wrk('edge https', 50, 2, false)
    await wrk('edge http', 50, 2, false)
    mem[`${big}, after 2+2 s of load`] = await haproxyRss(edgeMaster, edgeMasterSocket)

    report({ wrkVersion, opts, runs, mem, reloads, installs, checks, perfReport, load: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') })
  } finally {
    await edge?.stop().catch(() => undefined)
    await fallback?.close().catch(() => undefined)
    cleanup()
  }
}

/** perf record on each haproxy's current worker during one plain-HTTP run at 50 connections: the top symbols. */
async function profile(masters: Record<string, { master: number; masterSocket: string }>, run: (target: string) => Promise<Run>, tmp: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  if (!have('perf')) return out
  for (const [name, m] of Object.entries(masters)) {
    const worker = parseShowProc(await runtimeCommand(m.masterSocket, 'show proc')).current!
    const data = path.join(tmp, `perf-${name}.data`)
    const rec = spawn('perf', ['record', '-F', '999', '-g', '-o', data, '-p', String(worker)], { stdio: 'ignore' })
    await sleep(300)
    await run(`${name} http`)
    rec.kill('SIGINT')
    await new Promise((resolve) => rec.on('close', resolve))
    const top = (args: string[]) => spawnSync('perf', ['report', '-i', data, '--stdio', '--no-children', '-g', 'none', ...args], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^\s+\d/.test(l)).map((l) => l.trimEnd())
    out[name] = [...top(['--sort', 'dso', '--percent-limit', '1']).slice(0, 8), '  of which in haproxy itself:', ...top(['--sort', 'symbol', '--dsos', 'haproxy', '--percent-limit', '0.5']).slice(0, 12)].join('\n')
  }
  return out
}

function report(r: { wrkVersion: string; opts: typeof DEFAULTS; runs: Run[]; mem: Record<string, { master: number; worker: number; old: number }>; reloads: number[]; installs: number[]; checks: number[]; perfReport: Record<string, string>; load: string }) {
  const of = (target: string, mode: string, conns: number) => r.runs.filter((x) => x.target === target && x.mode === mode && x.connections === conns)
  const med = (xs: Run[], f: (x: Run) => number) => median(xs.map(f))
  const lines: string[][] = []
  const row = (label: string, xs: Run[], base: Run[] | null) => {
    const rps = med(xs, (x) => x.rps)
    const p99 = med(xs, (x) => x.p99)
    // Per-round ratios: each run against its baseline of the same round.
    const ratios = base ? xs.map((x, i) => x.rps / base[i]!.rps) : []
    const n = med(xs, (x) => x.rps * r.opts.duration)
    const perReq = (f: (x: Run) => number) => fmt((med(xs, f) / n) * 1e6, 1)
    lines.push([
      label,
      `${fmt(rps)} (${xs.map((x) => fmt(x.rps)).join(', ')})`,
      base ? `${fmt(rps / med(base, (x) => x.rps), 2)}x (${fmt(Math.min(...ratios), 2)}–${fmt(Math.max(...ratios), 2)})` : '',
      fmt(med(xs, (x) => x.p50), 2),
      `${fmt(p99, 2)}${base ? ` (${p99 - med(base, (x) => x.p99) >= 0 ? '+' : ''}${fmt(p99 - med(base, (x) => x.p99), 2)})` : ''}`,
      String(xs.reduce((s, x) => s + x.errors, 0)),
      perReq((x) => x.cpu.haproxy),
      perReq((x) => x.cpu.app),
      perReq((x) => x.cpu.wrk),
      fmt(med(xs, (x) => x.appConnects)),
      fmt(med(xs, (x) => x.tlsConns)),
    ])
  }
  const conns = r.opts.connections.split(',').map(Number)
  for (const c of conns) {
    row(`plain, c${c}: direct`, of('direct', 'keep-alive', c), null)
    row(`plain, c${c}: bare haproxy`, of('bare http', 'keep-alive', c), of('direct', 'keep-alive', c))
    row(`plain, c${c}: bare haproxy, nbthread 1`, of('bare1 http', 'keep-alive', c), of('direct', 'keep-alive', c))
    row(`plain, c${c}: edge`, of('edge http', 'keep-alive', c), of('direct', 'keep-alive', c))
    row(`plain, c${c}: edge vs bare`, of('edge http', 'keep-alive', c), of('bare http', 'keep-alive', c))
  }
  for (const c of conns) {
    row(`https, c${c}: bare haproxy`, of('bare https', 'keep-alive', c), null)
    row(`https, c${c}: edge`, of('edge https', 'keep-alive', c), of('bare https', 'keep-alive', c))
  }
  row('new TLS, c50: bare haproxy', of('bare https', 'handshake', 50), null)
  row('new TLS, c50: edge', of('edge https', 'handshake', 50), of('bare https', 'handshake', 50))
  console.log(`wrk: ${r.wrkVersion}; ${r.opts.runs} rounds of ${r.opts.duration} s; load average at the end ${r.load}`)
  console.log()
  console.log(mdTable(['measure', 'req/s median (runs)', 'ratio of medians (per round)', 'p50 ms', 'p99 ms (vs base)', 'errors', 'haproxy CPU µs/req', 'app CPU µs/req', 'wrk CPU µs/req', 'connections to the app', 'TLS connections accepted'], lines))
  console.log()
  console.log(mdTable(['haproxy', 'master MiB', 'current worker MiB', 'master + worker MiB', 'old workers MiB'], Object.entries(r.mem).map(([k, m]) => [k, fmt(m.master / MiB, 1), fmt(m.worker / MiB, 1), fmt((m.master + m.worker) / MiB, 1), fmt(m.old / MiB, 1)])))
  console.log()
  console.log(`reload with ${r.opts.apps} apps (ensure of one more): ${r.reloads.map((x) => fmt(x)).join(', ')} ms, of which \`haproxy -c\` alone ${r.checks.map((x) => fmt(x)).join(', ')} ms; certificate install at runtime: ${r.installs.map((x) => fmt(x)).join(', ')} ms`)
  for (const [name, text] of Object.entries(r.perfReport)) console.log(`\nperf, ${name} worker, plain c50 (self %, dso, symbol):\n${text}`)
  if (r.opts.json) fs.writeFileSync(r.opts.json, JSON.stringify(r, null, 2))
}

main().catch((err) => {
  console.error(err.stack ?? err)
  process.exit(1)
})

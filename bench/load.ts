#!/usr/bin/env node
// Load benchmark: uploads, console sessions and read traffic at the same time, bounded in time. Every request
// must either succeed or get one of berth's defined refusals (503 TOO_MANY_UPLOADS with Retry-After, 429), no
// release may be corrupted, and memory must stay bounded.
//
//   npm run build && node dist/bench/load.js [--uploads N] [--consoles N] [--connections N] [--duration S] [--json FILE]
//
//   --uploads N      concurrent uploads of the fixture release (default 50)
//   --consoles N     concurrent console sessions (default 20)
//   --connections N  keep-alive connections of the GET load (default 32)
//   --duration S     length of the GET load in seconds (default 20)
//   --json FILE      also write the figures (and every failure) as JSON
//
// Set-up (untimed): berth runs in this process (startDaemon from dist/test/helpers) with
// BERTH_MAX_SESSIONS_PER_APP=25, BERTH_MAX_CONCURRENT_UPLOADS=8, BERTH_AUTH_FAILURES_PER_MINUTE=1000000; the
// fixture release test/.fixtures/v1.tar.gz is deployed as app `hello` (PORT env, stableWindowMs 300,
// upload ?deploy=true). The upload variants are made up front: the fixture's tar re-gzipped at levels 1-9, and
// each upload i also gets its own gzip header MTIME (bytes 4-7), so every upload has a different sha256 (berth
// answers 200 and stores no new release for bytes it already has) but unpacks to exactly the fixture's files.
// Only the 9 re-gzipped buffers are held; an upload sends its own 10-byte header, then the shared rest.
//
// Then, all at once (t=0):
// 1. Uploads: N raw-body POSTs to /v1/apps/hello/releases, one connection each. 201 (stored) and 200 (already
//    present) are successes; 503 TOO_MANY_UPLOADS with Retry-After and 429 are the defined refusals. A 503 is
//    retried after Retry-After seconds plus 0-1 s of jitter, at most 3 times. Anything else (another status, a
//    503 without Retry-After, a connection error before the answer) is an undefined outcome.
// 2. Consoles: M websockets on /v1/apps/hello/remote; each waits for the IEx prompt, types 1+41, waits for 42
//    (ANSI stripped), closes. Time-to-42 is from opening the socket. 429 (HTTP) or close code 4429 is a defined
//    refusal; anything else, or no 42 within 120 s, is a failure.
// 3. GET load, in a worker thread so the client does not share the daemon's event loop: a closed loop over
//    `connections` keep-alive sockets (http.Agent keepAlive, maxSockets = connections), alternating
//    GET /v1/apps/hello/releases (admin token) and GET /healthz; no new request starts after --duration seconds.
//    Every request's latency is recorded; 200 is success, 429/503 defined, anything else undefined.
// 4. process.memoryUsage().rss is sampled every 50 ms from t=0 until all three are done. berth runs in this
//    process, so the figure includes the load generator (worker, upload buffers, websocket clients); the BEAM
//    node and the remote shells are separate processes and not included. The event-loop delay of the main
//    thread (the daemon's loop) is measured too, and, from /proc/self/task/PID/schedstat, how long that thread
//    ran and how long it was runnable but waiting for a CPU: on a small or shared host, 20 remote shells (each
//    a BEAM booting) starve the daemon of CPU, and this tells that apart from berth keeping its loop busy.
//
// Afterwards: every release listed must be byte-identical to a fresh `tar xzf` of the fixture (same paths, same
// type, same sha256 of each file, same executable bits; reference computed once; berth's own
// .berth-release.json at the top aside), have the sha256 and size of bytes we sent, and every stored upload
// must be listed; apps/hello/releases holds exactly the listed releases and uploads/ is empty; no console
// session stays active; the node still serves.
// Exits 1 on any undefined status, console failure or failed check.
// Cleanup: d.stop() (stops the node, kills leftovers, removes the data dir); also on Ctrl+C.

import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import zlib from 'node:zlib'
import type WebSocketClass from 'ws'
import type { TestDaemon } from '../test/helpers/daemon.js'
import { MiB, type OptionSpec, freePort, onInterrupt, parseCli, percentiles, rssSampler, schedstat, sleep } from './lib.js'

const APP = 'hello'
const RSS_SAMPLE_MS = 50
const UPLOAD_RETRIES = 3
const CONSOLE_TIMEOUT_MS = 120_000
const GET_TIMEOUT_MS = 30_000
const OVERALL_TIMEOUT_MS = 600_000

// ---------------------------------------------------------------------------------------------------------------
// Options

const OPTIONS: Record<string, OptionSpec> = {
  '--uploads': { key: 'uploads', type: 'int', min: 0 },
  '--consoles': { key: 'consoles', type: 'int', min: 0 },
  '--connections': { key: 'connections', type: 'int', min: 1 },
  '--duration': { key: 'duration', type: 'int', min: 1 },
  '--json': { key: 'json', type: 'path' },
}
const DEFAULTS = { uploads: 50, consoles: 20, connections: 32, duration: 20, json: null as string | null }

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`
const ms = (v: number | null | undefined) => (v == null || Number.isNaN(v) ? '-' : `${v.toFixed(1)} ms`)

/** Latency figures: nearest-rank percentiles (bench/lib.ts), max = p100. */
function summary(values: Iterable<unknown> & { length: number }) {
  const [p50, p90, p99, max] = percentiles(values, [50, 90, 99, 100])
  return { n: values.length, p50, p90, p99, max }
}

type Counts = Record<string, number>

function bump(counts: Counts, key: string) {
  counts[key] = (counts[key] ?? 0) + 1
}

/** Every path under root, with what it is: dir, link (target), file (sha256, executable). */
function tree(root: string) {
  const out = new Map<string, string>()
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      const abs = path.join(root, r)
      if (e.isDirectory()) {
        out.set(r, 'dir')
        walk(r)
      } else if (e.isSymbolicLink()) out.set(r, `link ${fs.readlinkSync(abs)}`)
      else if (e.isFile()) {
        const st = fs.statSync(abs)
        const sha = crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')
        out.set(r, `file ${st.size} ${sha} ${st.mode & 0o111 ? 'x' : '-'}`)
      } else out.set(r, 'other')
    }
  }
  walk('')
  return out
}

function compareTrees(ref: Map<string, string>, got: Map<string, string>) {
  const diffs: string[] = []
  for (const [p, v] of ref) {
    if (!got.has(p)) diffs.push(`missing ${p}`)
    else if (got.get(p) !== v) diffs.push(`differs ${p}: ${got.get(p)} (expected ${v})`)
  }
  for (const p of got.keys()) if (!ref.has(p)) diffs.push(`extra ${p}`)
  return diffs
}

// ---------------------------------------------------------------------------------------------------------------
// GET load (worker thread)

interface GetLoadOptions {
  url: string
  token: string
  connections: number
  durationMs: number
}

/** What the worker posts back: latencies as transferable arrays, one per path. */
interface GetLoadResult {
  paths: string[]
  latencies: Float64Array[]
  statuses: Counts[]
  sockets: number
  elapsedMs: number
  undefinedOutcomes: string[]
  timeline: ({ sec: number } & ReturnType<typeof summary>)[]
  doneAt?: number
}

async function getLoadWorker({ url, token, connections, durationMs }: GetLoadOptions) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const paths = ['/v1/apps/hello/releases', '/healthz']
  const lat: number[][] = paths.map(() => [])
  /** Per whole second since the start: requests finished and their latencies, for the JSON timeline. */
  const perSecond: number[][] = []
  const statuses: Counts[] = paths.map(() => ({}))
  const sockets = new Set<unknown>()
  const undefinedOutcomes: string[] = []
  const started = performance.now()
  const end = started + durationMs
  let seq = 0

  const one = (which: number) =>
    new Promise<{ status: number | string | undefined; ms: number }>((resolve) => {
      const t0 = performance.now()
      const req = http.get(`${url}${paths[which]}`, { agent, headers: which === 0 ? { authorization: `Bearer ${token}` } : {}, timeout: GET_TIMEOUT_MS }, (res) => {
        res.on('data', () => {})
        res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0 }))
        res.on('error', (err: NodeJS.ErrnoException) => resolve({ status: `error ${err.code ?? err.message}`, ms: performance.now() - t0 }))
      })
      req.on('socket', (s) => sockets.add(s))
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: `error ${err.code ?? err.message}`, ms: performance.now() - t0 }))
    })

  const loop = async () => {
    while (performance.now() < end) {
      const which = seq++ % paths.length
      const r = await one(which)
      lat[which]!.push(r.ms)
      const sec = Math.floor((performance.now() - started) / 1000)
      ;(perSecond[sec] ??= []).push(r.ms)
      bump(statuses[which]!, String(r.status))
      if (r.status !== 200 && r.status !== 429 && r.status !== 503 && undefinedOutcomes.length < 20) undefinedOutcomes.push(`GET ${paths[which]}: ${r.status}`)
      // A refusal answers fast; do not let a refused loop spin.
      if (r.status === 429 || r.status === 503) await sleep(50)
    }
  }
  await Promise.all(Array.from({ length: connections }, loop))
  const elapsed = performance.now() - started
  agent.destroy()
  const arrays = lat.map((l) => Float64Array.from(l))
  const timeline = Array.from(perSecond, (l = [], sec) => ({ sec, ...summary(l) }))
  const result: GetLoadResult = { paths, latencies: arrays, statuses, sockets: sockets.size, elapsedMs: elapsed, undefinedOutcomes, timeline }
  parentPort!.postMessage(result, arrays.map((a) => a.buffer))
}

function runGetLoad(opts: GetLoadOptions): Promise<GetLoadResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: opts })
    let result: GetLoadResult | null = null
    w.on('message', (m: GetLoadResult) => (result = m))
    w.on('error', reject)
    w.on('exit', (code) => (result ? resolve(result) : reject(new Error(`GET load worker exited with ${code} and no result`))))
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Uploads

/** The variants: the tar re-gzipped at levels 1-9; upload i = level 1 + i % 9 with MTIME base + i. */
interface Variant {
  i: number
  level: number
  header: Buffer
  rest: Buffer
  size: number
  sha256: string
}

function makeVariants(fixtureFile: string, count: number) {
  const tar = zlib.gunzipSync(fs.readFileSync(fixtureFile))
  const levels: Buffer[] = []
  for (let level = 1; level <= Math.min(9, count); level++) levels.push(zlib.gzipSync(tar, { level }))
  const variants: Variant[] = []
  for (let i = 0; i < count; i++) {
    const body = levels[i % levels.length]!
    const header = Buffer.from(body.subarray(0, 10))
    // FLG must be 0 (no optional fields) so that the header is exactly 10 bytes and MTIME is bytes 4-7.
    if (header[0] !== 0x1f || header[1] !== 0x8b || header[3] !== 0) throw new Error('unexpected gzip header from zlib')
    header.writeUInt32LE(1_700_000_000 + i, 4)
    const rest = body.subarray(10)
    const sha256 = crypto.createHash('sha256').update(header).update(rest).digest('hex')
    variants.push({ i, level: 1 + (i % levels.length), header, rest, size: body.length, sha256 })
  }
  return { variants, tarBytes: tar.length, levelSizes: levels.map((b) => b.length) }
}

/** One raw-body upload on its own connection; resolves with the status (or a transport error) and the answer. */
interface UploadAnswer {
  status: number | string | undefined
  retryAfter: string | string[] | null
  body: { code?: string; id?: string } | null
  ms: number
}

function sendUpload(base: string, token: string, v: Variant): Promise<UploadAnswer> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    let answered = false
    const req = http.request(`${base}/v1/apps/${APP}/releases`, {
      method: 'POST',
      agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': String(v.size) },
    })
    req.on('response', (res) => {
      answered = true
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      const done = () => {
        let body: UploadAnswer['body'] = null
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] ?? null, body, ms: performance.now() - t0 })
      }
      res.on('end', done)
      res.on('error', done)
    })
    // After an early refusal berth closes the connection while we may still be sending: not an error then.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered) resolve({ status: `error ${err.code ?? err.message}`, retryAfter: null, body: null, ms: performance.now() - t0 })
    })
    req.write(v.header)
    req.end(v.rest)
  })
}

interface UploadFinal {
  i: number
  sha256: string
  size: number
  status: UploadAnswer['status']
  code: string | undefined
  outcome: string
  attempts: number
  ms: number
  release: string | null
  doneAt: number
  text: string | undefined
}

async function runUploads(base: string, token: string, variants: Variant[]) {
  const attempts: Counts = {}
  const finals: UploadFinal[] = []
  const t0 = performance.now()
  await Promise.all(
    variants.map(async (v) => {
      for (let attempt = 0; ; attempt++) {
        const r = await sendUpload(base, token, v)
        const code = r.body?.code
        const key = r.status === 503 ? `503 ${code ?? '?'}${r.retryAfter ? '' : ' (no Retry-After)'}` : String(r.status)
        bump(attempts, key)
        const defined503 = r.status === 503 && code === 'TOO_MANY_UPLOADS' && r.retryAfter !== null && Number(r.retryAfter) > 0
        if (defined503 && attempt < UPLOAD_RETRIES) {
          await sleep(Number(r.retryAfter) * 1000 + Math.random() * 1000)
          continue
        }
        let outcome: string
        if (r.status === 201 || r.status === 200) outcome = r.status === 201 ? 'stored (201)' : 'already present (200)'
        else if (defined503) outcome = `refused 503 after ${UPLOAD_RETRIES} retries`
        else if (r.status === 429) outcome = 'refused 429'
        else outcome = 'UNDEFINED'
        finals.push({ i: v.i, sha256: v.sha256, size: v.size, status: r.status, code, outcome, attempts: attempt + 1, ms: r.ms, release: r.body?.id ?? null, doneAt: performance.now() - t0, text: outcome === 'UNDEFINED' ? JSON.stringify(r.body)?.slice(0, 300) : undefined })
        return
      }
    }),
  )
  return { attempts, finals, wallMs: performance.now() - t0, doneAt: NaN }
}

// ---------------------------------------------------------------------------------------------------------------
// Consoles

interface ConsoleResult {
  outcome: string
  detail?: string
  promptMs?: number | null
  to42Ms?: number
  closedMs?: number
}

function runConsole(WebSocket: typeof WebSocketClass, base: string, token: string): Promise<ConsoleResult> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    let out = ''
    let phase = 'connecting'
    let settled = false
    let tPrompt: number | null = null
    const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/apps/${APP}/remote`, { headers: { authorization: `Bearer ${token}` } })
    const finish = (r: ConsoleResult) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        ws.once('close', () => resolve({ ...r, closedMs: performance.now() - t0 }))
        ws.close()
        setTimeout(() => ws.terminate(), 5000).unref()
      } else resolve({ ...r, closedMs: performance.now() - t0 })
    }
    const timer = setTimeout(() => finish({ outcome: 'FAILED', detail: `timed out ${phase} after ${CONSOLE_TIMEOUT_MS} ms` }), CONSOLE_TIMEOUT_MS)
    ws.on('unexpected-response', (req, res) => {
      settled = true
      clearTimeout(timer)
      res.resume()
      req.destroy()
      resolve({ outcome: res.statusCode === 429 ? 'refused 429' : 'FAILED', detail: `HTTP ${res.statusCode}` })
    })
    ws.on('error', (err) => finish({ outcome: 'FAILED', detail: `socket error in ${phase}: ${err.message}` }))
    ws.on('open', () => (phase = 'waiting for the prompt'))
    ws.on('close', (code, reason) => {
      if (settled) return
      finish({ outcome: code === 4429 ? 'refused 4429' : 'FAILED', detail: `closed ${code} ${reason} while ${phase}` })
    })
    ws.on('message', (m, binary) => {
      if (!binary || settled) return
      out += m.toString()
      if (phase === 'waiting for the prompt' && /iex\([^)]*\)\d+> /.test(out)) {
        phase = 'waiting for 42'
        tPrompt = performance.now() - t0
        ws.send(Buffer.from('1+41\r'))
      } else if (phase === 'waiting for 42') {
        const after = (out.split('1+41')[1] ?? '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
        if (/\b42\b/.test(after)) finish({ outcome: 'ok', promptMs: tPrompt, to42Ms: performance.now() - t0 })
      }
    })
  })
}

async function runConsoles(WebSocket: typeof WebSocketClass, base: string, token: string, n: number) {
  const t0 = performance.now()
  const results = await Promise.all(Array.from({ length: n }, () => runConsole(WebSocket, base, token)))
  return { results, wallMs: performance.now() - t0, doneAt: NaN }
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseCli('bench/load', import.meta.url, OPTIONS, DEFAULTS)
  // Loaded here, not at the top: the GET-load worker runs this file too, and must not load berth into its heap
  // (its RSS is part of the figure).
  const { startDaemon } = await import('../test/helpers/daemon.js')
  const { call, upload } = await import('../test/helpers/http.js')
  const { fixture } = await import('../test/helpers/fixtures.js')
  const { METADATA_FILE } = await import('../src/intake/metadata.js')
  const { default: WebSocket } = await import('ws')

  const failures: string[] = []
  const fail = (msg: string) => failures.push(msg)
  const log = (msg: string) => console.log(msg)
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-load-'))
  let d: TestDaemon | null = null
  let stopping: Promise<void> | null = null
  const cleanup = async () => {
    stopping ??= (async () => {
      if (d) await d.stop().catch((err: Error) => console.error(`bench/load: stopping the daemon failed: ${err.message}`))
      fs.rmSync(scratch, { recursive: true, force: true })
    })()
    return stopping
  }
  onInterrupt('bench/load', cleanup)

  try {
    // ---- set-up (untimed)
    const fx = await fixture('v1')
    log(`bench/load: fixture ${path.relative(process.cwd(), fx.tarball)} (${mib(fx.size)}), ${os.cpus().length} CPUs, node ${process.version}`)
    const refDir = path.join(scratch, 'ref')
    fs.mkdirSync(refDir)
    execFileSync('tar', ['xzf', fx.tarball, '-C', refDir])
    const ref = tree(refDir)
    const refFiles = [...ref.values()].filter((v) => v.startsWith('file')).length
    const { variants, tarBytes, levelSizes } = makeVariants(fx.tarball, opts.uploads)
    if (new Set(variants.map((v) => v.sha256)).size !== variants.length) throw new Error('upload variants are not distinct')
    log(`  reference: ${refFiles} files, ${ref.size - refFiles} other entries; tar ${mib(tarBytes)}, re-gzipped ${levelSizes.map((s) => (s / MiB).toFixed(2)).join('/')} MiB (levels 1-${levelSizes.length})`)

    d = await startDaemon({ BERTH_MAX_SESSIONS_PER_APP: '25', BERTH_MAX_CONCURRENT_UPLOADS: '8', BERTH_AUTH_FAILURES_PER_MINUTE: '1000000' })
    const token = d.adminToken
    const json = { 'content-type': 'application/json' }
    const port = await freePort()
    const setup = [
      await call(`${d.url}/v1/apps/${APP}/env`, { method: 'PUT', token, headers: json, body: JSON.stringify({ PORT: String(port) }) }),
      await call(`${d.url}/v1/apps/${APP}/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) }),
    ]
    for (const r of setup) if (r.status >= 300) throw new Error(`set-up failed: ${r.status} ${r.text}`)
    const deployed = await upload(d.url, APP, fs.readFileSync(fx.tarball), { token, query: 'deploy=true' })
    if (deployed.body?.deployment?.state !== 'succeeded') throw new Error(`set-up deploy failed: ${deployed.status} ${deployed.text}`)
    log(`  daemon ${d.url}, data dir ${d.dataDir}; ${APP} ${deployed.body.id} deployed on port ${port}`)

    // ---- load
    global.gc?.()
    await sleep(500)
    const baselineRss = process.memoryUsage().rss
    const loopDelay = monitorEventLoopDelay({ resolution: 10 })
    const t0 = performance.now()
    const sampler = rssSampler(() => process.memoryUsage().rss, RSS_SAMPLE_MS)
    loopDelay.enable()
    // The main thread is the daemon's event loop: its time on a CPU and runnable but waiting for one tells a
    // busy loop from a starved one.
    const sched0 = schedstat('self', process.pid)
    const load0 = os.loadavg()
    log(`\nload: ${opts.uploads} uploads, ${opts.consoles} consoles, GET load ${opts.connections} connections for ${opts.duration} s, all at once`)

    let overallTimer: NodeJS.Timeout | undefined
    const overall = new Promise<never>((_, reject) => {
      overallTimer = setTimeout(() => reject(new Error(`the load did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`)), OVERALL_TIMEOUT_MS)
    })
    const phases = Promise.all([
      runGetLoad({ url: d.url, token, connections: opts.connections, durationMs: opts.duration * 1000 }).then((r) => ((r.doneAt = performance.now() - t0), r)),
      runUploads(d.url, token, variants).then((r) => ((r.doneAt = performance.now() - t0), r)),
      runConsoles(WebSocket, d.url, token, opts.consoles).then((r) => ((r.doneAt = performance.now() - t0), r)),
    ])
    const [gets, ups, cons] = await Promise.race([phases, overall])
    clearTimeout(overallTimer)
    const loadMs = performance.now() - t0
    const rss = sampler.stop()
    const peakRss = Math.max(baselineRss, rss.peak)
    const peakAt = rss.peak > baselineRss ? rss.peakAtMs : 0
    loopDelay.disable()
    const sched1 = schedstat('self', process.pid)
    const sched = sched0 && sched1 ? { runS: (sched1.runMs - sched0.runMs) / 1000, waitS: (sched1.waitMs - sched0.waitMs) / 1000 } : null
    const load1 = os.loadavg()

    // ---- checks
    const checks: { name: string; ok: boolean; detail: string }[] = []
    const check = (name: string, ok: boolean, detail = '') => {
      checks.push({ name, ok, detail })
      if (!ok) fail(`${name}${detail ? `: ${detail}` : ''}`)
    }

    // Sessions end asynchronously after the sockets close.
    let active = -1
    for (let i = 0; i < 100; i++) {
      const s = await call(`${d.url}/v1/apps/${APP}/sessions`, { token })
      active = s.body?.sessions?.filter((x: { active: boolean }) => x.active).length ?? -1
      if (active === 0) break
      await sleep(100)
    }
    check('no console session left active', active === 0, `${active} active`)

    const node = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), (e) => `error ${e.message}`)
    check('the deployed node still serves', node === 'hello 0.1.0\n', JSON.stringify(node))

    const list = await call(`${d.url}/v1/apps/${APP}/releases`, { token })
    const releases: { id: string; sha256: string; size: number }[] = list.body?.releases ?? []
    check('release list answers 200', list.status === 200, String(list.status))
    const sent = new Map<string, { size: number }>(variants.map((v) => [v.sha256, v]))
    sent.set(fx.sha256, { size: fx.size })
    const listed = new Set(releases.map((r) => r.id))
    const stored = ups.finals.filter((f) => f.status === 201 || f.status === 200)
    const unlisted = stored.filter((f) => !listed.has(f.release ?? ''))
    check('every accepted upload is listed', unlisted.length === 0, unlisted.map((f) => `#${f.i} ${f.release}`).join(', '))
    const foreign = releases.filter((r) => !sent.has(r.sha256) || sent.get(r.sha256)!.size !== r.size)
    check('every listed release has the sha256 and size of bytes we sent', foreign.length === 0, foreign.map((r) => r.id).join(', '))
    const expectedCount = new Set([fx.sha256, ...stored.map((f) => f.sha256)]).size
    check('one release per distinct accepted upload (+ the deployed one)', releases.length === expectedCount, `${releases.length} listed, ${expectedCount} expected`)

    const relDir = path.join(d.dataDir, 'apps', APP, 'releases')
    const onDisk = fs.readdirSync(relDir).sort()
    const debris = onDisk.filter((n) => !listed.has(n))
    const absent = [...listed].filter((n) => !onDisk.includes(n))
    check('releases/ holds exactly the listed releases', debris.length === 0 && absent.length === 0, `unlisted on disk: [${debris.join(', ')}], listed but absent: [${absent.join(', ')}]`)
    const tc = performance.now()
    let corrupt = 0
    for (const r of releases) {
      if (!onDisk.includes(r.id)) continue
      // berth adds its own record of the release at the top; everything else must be the fixture's.
      const got = tree(path.join(relDir, r.id))
      got.delete(METADATA_FILE)
      const diffs = compareTrees(ref, got)
      if (diffs.length) {
        corrupt++
        fail(`release ${r.id} differs from the fixture: ${diffs.slice(0, 5).join('; ')}${diffs.length > 5 ? ` (+${diffs.length - 5} more)` : ''}`)
      }
    }
    checks.push({ name: `every listed release (${releases.length}) is identical to tar xzf of the fixture (${ref.size} entries each)`, ok: corrupt === 0, detail: `${corrupt} corrupt` })
    const uploadsDir = path.join(d.dataDir, 'uploads')
    const leftovers = fs.existsSync(uploadsDir) ? fs.readdirSync(uploadsDir) : []
    check('uploads/ is empty', leftovers.length === 0, leftovers.join(', '))
    const checkMs = performance.now() - tc

    // ---- figures
    const getAll = summary([...gets.latencies[0]!, ...gets.latencies[1]!])
    const perPath = gets.paths.map((p, k) => ({ path: p, ...summary(gets.latencies[k]!), statuses: gets.statuses[k]! }))
    const getTotal = getAll.n
    const getRps = getTotal / (gets.elapsedMs / 1000)
    for (const u of gets.undefinedOutcomes) fail(`undefined outcome: ${u}`)
    const getUndefined = perPath.reduce((n, p) => n + Object.entries(p.statuses).filter(([s]) => !['200', '429', '503'].includes(s)).reduce((a, [, c]) => a + c, 0), 0)

    const finalsBy: Counts = {}
    for (const f of ups.finals) bump(finalsBy, f.outcome)
    for (const f of ups.finals.filter((x) => x.outcome === 'UNDEFINED')) fail(`upload #${f.i}: undefined outcome ${f.status} ${f.text ?? ''}`)
    const okUploads = ups.finals.filter((f) => f.status === 201 || f.status === 200)
    const upOk = summary(okUploads.map((f) => f.ms))
    const upBytes = okUploads.reduce((n, f) => n + f.size, 0)
    const lastOk = Math.max(0, ...okUploads.map((f) => f.doneAt))

    const conOk = cons.results.filter((r) => r.outcome === 'ok')
    const conBy: Counts = {}
    for (const r of cons.results) bump(conBy, r.outcome)
    for (const r of cons.results.filter((x) => x.outcome === 'FAILED')) fail(`console: ${r.detail}`)
    const to42 = summary(conOk.map((r) => r.to42Ms))
    const prompt = summary(conOk.map((r) => r.promptMs))

    const ld = { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }
    const fmtCounts = (c: Counts) => Object.entries(c).map(([k, v]) => `${k}: ${v}`).join(', ')

    log(`\nGET load (${opts.connections} keep-alive connections, ${gets.sockets} sockets opened, ${(gets.elapsedMs / 1000).toFixed(1)} s, client in a worker thread)`)
    log(`  ${getTotal} requests, ${getRps.toFixed(0)} req/s; latency p50 ${ms(getAll.p50)}, p90 ${ms(getAll.p90)}, p99 ${ms(getAll.p99)}, max ${ms(getAll.max)}`)
    for (const p of perPath) log(`  ${p.path.padEnd(26)} ${String(p.n).padStart(6)} req  p50 ${ms(p.p50)}  p99 ${ms(p.p99)}  max ${ms(p.max)}  [${fmtCounts(p.statuses)}]`)
    const worst = gets.timeline.reduce<GetLoadResult['timeline'][number] | null>((w, t) => (t.n && (!w || t.p99! > w.p99!) ? t : w), null)
    if (worst) log(`  worst second: ${worst.sec}-${worst.sec + 1} s, ${worst.n} req, p99 ${ms(worst.p99)} (per-second figures in --json)`)
    const sizes = variants.map((v) => v.size)
    if (opts.uploads > 0) {
      log(`\nuploads (${opts.uploads} concurrent, ${(Math.min(...sizes) / MiB).toFixed(2)}-${mib(Math.max(...sizes))} each, BERTH_MAX_CONCURRENT_UPLOADS=8, 503 retried after Retry-After + 0-1 s jitter, up to ${UPLOAD_RETRIES}x)`)
      log(`  final:    ${fmtCounts(finalsBy)}`)
      log(`  attempts: ${fmtCounts(ups.attempts)}`)
      log(`  total upload time ${(ups.wallMs / 1000).toFixed(1)} s (last success at ${(lastOk / 1000).toFixed(1)} s); accepted ${okUploads.length} = ${mib(upBytes)}, ${((upBytes / MiB) / (lastOk / 1000 || 1)).toFixed(1)} MiB/s`)
      log(`  accepted upload request time: p50 ${ms(upOk.p50)}, p99 ${ms(upOk.p99)}, max ${ms(upOk.max)}`)
    }
    if (opts.consoles > 0) {
      log(`\nconsoles (${opts.consoles} concurrent remote IEx sessions, 1+41 → 42)`)
      log(`  ${conOk.length}/${opts.consoles} ok [${fmtCounts(conBy)}]; time-to-42 p50 ${ms(to42.p50)}, p99 ${ms(to42.p99)}, max ${ms(to42.max)} (prompt p50 ${ms(prompt.p50)}, p99 ${ms(prompt.p99)})`)
    }
    log(`\nmemory (RSS of this process = daemon + load generator; BEAM processes not included), sampled every ${RSS_SAMPLE_MS} ms`)
    log(`  before load ${mib(baselineRss)}, peak ${mib(peakRss)} at ${(peakAt / 1000).toFixed(1)} s (+${mib(peakRss - baselineRss)}), after load ${mib(rss.last)}`)
    log(`  daemon event-loop delay: p50 ${ms(ld.p50)}, p99 ${ms(ld.p99)}, max ${ms(ld.max)}`)
    if (sched) log(`  daemon main thread over ${(loadMs / 1000).toFixed(1)} s: ${sched.runS.toFixed(1)} s on a CPU, ${sched.waitS.toFixed(1)} s runnable but waiting for a CPU (host load average ${load0[0].toFixed(1)} → ${load1[0].toFixed(1)} on ${os.cpus().length} CPUs)`)
    log(`\nchecks (${(checkMs / 1000).toFixed(1)} s)`)
    for (const c of checks) log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${!c.ok && c.detail ? ` — ${c.detail}` : ''}`)
    log(`\nload phase ${(loadMs / 1000).toFixed(1)} s (GET done ${(gets.doneAt! / 1000).toFixed(1)} s, uploads ${(ups.doneAt / 1000).toFixed(1)} s, consoles ${(cons.doneAt / 1000).toFixed(1)} s)`)
    log(`undefined statuses: GET ${getUndefined}, uploads ${finalsBy.UNDEFINED ?? 0}; console failures: ${conBy.FAILED ?? 0}`)

    if (opts.json) {
      const out = {
        options: opts,
        machine: { cpus: os.cpus().length, node: process.version, loadavgBefore: load0, loadavgAfter: load1 },
        mainThread: sched,
        get: { elapsedMs: gets.elapsedMs, requests: getTotal, rps: getRps, sockets: gets.sockets, latency: getAll, perPath, timeline: gets.timeline },
        uploads: { wallMs: ups.wallMs, attempts: ups.attempts, finals: finalsBy, accepted: okUploads.length, bytes: upBytes, latency: upOk, each: ups.finals },
        consoles: { byOutcome: conBy, to42, prompt, each: cons.results },
        memory: { baselineRss, peakRss, peakAtMs: peakAt, afterRss: rss.last, samples: rss.samples },
        eventLoopDelayMs: ld,
        checks,
        failures,
      }
      fs.writeFileSync(opts.json, JSON.stringify(out, null, 2))
      log(`wrote ${opts.json}`)
    }
  } catch (err) {
    fail(`bench/load: ${(err as Error | undefined)?.stack ?? err}`)
  } finally {
    await cleanup()
  }
  if (failures.length) {
    console.error(`\nFAILED (${failures.length}):`)
    for (const f of failures.slice(0, 50)) console.error(`  ${f}`)
    process.exit(1)
  }
  console.log('\nPASS')
  process.exit(0)
}

// Last, so that every declaration above is initialised before it runs.
if (isMainThread) await main()
else await getLoadWorker(workerData as GetLoadOptions)

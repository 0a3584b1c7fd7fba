#!/usr/bin/env node
// Intake benchmark: how long berth takes to accept a release upload (hash + unpack + fsync + move into place)
// compared with `sha256sum FILE && tar xzf FILE`, and how much memory the daemon uses while doing it.
//
//   npm run build && node dist/bench/intake.js [--size-mb N] [--runs N] [--cases fixture,synthetic] [--cpu-prof DIR]
//
//   --size-mb N     compressed size of the synthetic release in MiB (default 400); cached in bench/.work/
//   --runs N        timed runs per case (default 5 for the fixture, 3 for the synthetic release)
//   --cases LIST    which cases to run: fixture, realsize, synthetic (default all three)
//   --ratio R       target compression ratio of the synthetic release (default 3)
//   --cpu-prof DIR  run the daemon with `node --cpu-prof --cpu-prof-dir=DIR` (profiles are written when it stops)
//   --node-options S  NODE_OPTIONS for the daemon (e.g. "--require ./probe.cjs")
//   --berth-root D  run the berth found in D (D/bin/berth.js, D/dist) instead of this checkout, e.g. a copy
//                   with an experimental change, to compare builds (default: the repository)
//   --compare D     also run the berth in D (a second daemon), its uploads interleaved with the others', so
//                   that an older and a newer build meet the same machine; reported as "berth B"
//   --json FILE     also write the raw results as JSON
//
// Each case gets a fresh daemon (own data dir under bench/.work/, free loopback port, raised limits,
// BERTH_LOG_LEVEL=warn), so VmHWM at the end of a case is the peak of that case only. Every timed run uploads
// bytes the daemon does not have (the release is deleted between runs) and starts after a `sync`, so dirty pages
// from the previous run are not charged to the next one. Baselines and berth runs are interleaved.
// No npm dependencies: node, sh, sha256sum, tar, gzip, sync.

import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import {
  type Berth, FIXTURES, type OptionSpec, GiB, MiB, REPO, fmt, mdTable, median, onInterrupt, parseCli, procCpuSeconds, procMem, request, rmTreeSync,
  rssSampler, sleep, startBerth,
  prng,
} from './lib.js'

const WORK = path.join(REPO, 'bench', '.work')
const FIXTURE = path.join(FIXTURES, 'v1.tar.gz')
// Bump when the synthetic layout or content changes, so cached tarballs are rebuilt.
const GENERATOR = 'g2'

// ---------------------------------------------------------------------------------------------------------------
// Options

const OPTIONS: Record<string, OptionSpec> = {
  '--size-mb': { key: 'sizeMb', type: 'int', min: 1 },
  '--runs': { key: 'runs', type: 'int', min: 1 },
  '--cases': { key: 'cases', type: 'list', choices: ['fixture', 'realsize', 'synthetic'] },
  '--ratio': { key: 'ratio', type: 'number', min: 1.1 },
  '--cpu-prof': { key: 'cpuProf', type: 'path' },
  '--node-options': { key: 'nodeOptions', type: 'string' },
  '--berth-root': { key: 'berthRoot', type: 'path' },
  '--compare': { key: 'compare', type: 'path' },
  '--json': { key: 'json', type: 'path' },
}
const DEFAULTS = { sizeMb: 400, runs: null as number | null, cases: ['fixture', 'realsize', 'synthetic'], ratio: 3, cpuProf: null as string | null, nodeOptions: '', berthRoot: REPO, compare: null as string | null, json: null as string | null }
type Options = typeof DEFAULTS

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

const log = (...a: unknown[]) => process.stderr.write(a.join(' ') + '\n')
const mb = (bytes: number) => bytes / MiB

function seconds(startNs: bigint) {
  return Number(process.hrtime.bigint() - startNs) / 1e9
}

/** Cleanup must go on past a tree it cannot remove. */
function rmQuietly(p: string) {
  try {
    rmTreeSync(p)
  } catch {
    // left for the next run's cleanup
  }
}

function syncAll() {
  spawnSync('sync', { stdio: 'ignore' })
}

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { ...opts, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return r.stdout
}

// ---------------------------------------------------------------------------------------------------------------
// Synthetic release

/** Code-like text (Elixir-ish lines from templates, Zipf-distributed identifiers); gzip -6 makes it ~5x smaller. */
function textPool(bytes: number, rand: () => number) {
  const syll = ['de', 'fm', 'od', 'ul', 'en', 'ha', 'ndl', 'er', 'st', 'at', 'e', 'co', 'nn', 'ect', 'ion', 'rep', 'o', 'sch', 'ema',
    'pl', 'ug', 'rou', 'ter', 'li', 've', 'vi', 'ew', 'com', 'pon', 'ent', 'que', 'ry', 'ch', 'ange', 'set', 'val', 'id', 'ate']
  const vocab: string[] = []
  for (let i = 0; i < 800; i++) {
    let w = ''
    const n = 2 + Math.floor(rand() * 3)
    for (let j = 0; j < n; j++) w += syll[Math.floor(rand() * syll.length)]
    vocab.push(w)
  }
  // Zipf-ish choice: a few words are very common, most are rare.
  const w = () => vocab[Math.floor(vocab.length * rand() ** 5)]!
  const mod = () => `${w()[0]!.toUpperCase()}${w().slice(1)}.${w()[0]!.toUpperCase()}${w().slice(1)}`
  const num = () => String(Math.floor(rand() * 1000))
  const templates: ((indent: string) => string)[] = [
    (i) => `${i}def ${w()}(${w()}, ${w()}) do\n`,
    (i) => `${i}defp ${w()}_${w()}(%{${w()}: ${w()}} = ${w()}) do\n`,
    (i) => `${i}${w()} = ${mod()}.${w()}(${w()}, ${num()})\n`,
    (i) => `${i}{:ok, ${w()}} <- ${mod()}.${w()}(${w()}),\n`,
    (i) => `${i}|> ${mod()}.${w()}(${w()})\n`,
    (i) => `${i}case ${w()} do\n`,
    (i) => `${i}{:error, reason} -> {:error, reason}\n`,
    (i) => `${i}end\n`,
    (i) => `${i}end\n`,
    (i) => `${i}@doc "${w()} ${w()} ${w()} ${w()} ${w()}."\n`,
    (i) => `${i}Logger.debug("${w()} #{inspect(${w()})}")\n`,
    (i) => `${i}"${w()}" => ${num()},\n`,
  ]
  const parts: string[] = []
  let len = 0
  while (len < bytes) {
    const line = templates[Math.floor(rand() * templates.length)]!('  '.repeat(1 + Math.floor(rand() * 4)))
    parts.push(line)
    len += line.length
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, bytes)
}

/** Sizes drawn log-uniformly in [lo, hi] until `budget` is used up. */
function sizes(budget: number, lo: number, hi: number, rand: () => number) {
  const out: number[] = []
  let left = Math.floor(budget)
  while (left > lo) {
    const s = Math.min(left, Math.round(Math.exp(Math.log(lo) + rand() * (Math.log(hi) - Math.log(lo)))))
    out.push(s)
    left -= s
  }
  return out
}

interface ContentSource {
  rand: () => number
  /** Code-like text to copy slices from. */
  pool: Buffer
  /** Share of 64 KiB blocks filled with random (incompressible) bytes instead. */
  randomShare: number
  block: Buffer
}

function writeContent(file: string, size: number, mode: number, ctx: ContentSource) {
  const { rand, pool, randomShare, block } = ctx
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const fd = fs.openSync(file, 'w', mode)
  try {
    let left = size
    while (left > 0) {
      const n = Math.min(left, block.length)
      if (rand() < randomShare) {
        crypto.randomFillSync(block, 0, n)
        fs.writeSync(fd, block, 0, n)
      } else {
        const off = Math.floor(rand() * (pool.length - n))
        fs.writeSync(fd, pool, off, n)
      }
      left -= n
    }
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Builds (or reuses) a release tarball of about `sizeMb` MiB compressed: app "hello", version 9.9.9, ERTS 13.1.5,
 * a few thousand files from 1 KiB to tens of MiB, content a mix of random bytes and code-like text.
 */
interface SyntheticMeta {
  size: number
  files: number
  unpackedBytes: number
  ratio: number
  textRatio: number
  randomShare: number
  generatedIn: number
}

async function syntheticTarball(sizeMb: number, ratio: number): Promise<SyntheticMeta & { file: string }> {
  const key = `intake-synthetic-${GENERATOR}-${sizeMb}mb-r${ratio}`
  const out = path.join(WORK, `${key}.tar.gz`)
  const metaFile = path.join(WORK, `${key}.json`)
  if (fs.existsSync(out) && fs.existsSync(metaFile)) {
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as SyntheticMeta
    if (fs.statSync(out).size === meta.size) {
      log(`synthetic: reusing ${path.relative(REPO, out)} (${fmt(mb(meta.size), 0)} MiB, ${meta.files} files, ${fmt(mb(meta.unpackedBytes), 0)} MiB unpacked)`)
      return { file: out, ...meta }
    }
  }
  const started = process.hrtime.bigint()
  const rand = prng(0xbe47 ^ sizeMb)
  const pool = textPool(16 * MiB, rand)
  // Calibrate: gzip -6 ratio of the text, then the share of random (incompressible) blocks that gives `ratio` overall.
  const sample = pool.subarray(0, 4 * MiB)
  const textRatio = sample.length / zlib.gzipSync(sample, { level: 6 }).length
  const randomShare = textRatio <= ratio ? 0 : (1 / ratio - 1 / textRatio) / (1 - 1 / textRatio)
  const unpackedTarget = Math.round(sizeMb * MiB * ratio)
  log(`synthetic: generating ~${fmt(mb(unpackedTarget), 0)} MiB of files (text gzips ${fmt(textRatio, 1)}x, ${fmt(randomShare * 100, 0)}% random blocks) …`)

  const tree = path.join(WORK, `${key}.gen-${process.pid}`)
  rmTreeSync(tree)
  const ctx: ContentSource = { rand, pool, randomShare, block: Buffer.alloc(64 * 1024) }
  const files: string[] = []
  const add = (rel: string, size: number, mode = 0o644) => {
    writeContent(path.join(tree, rel), size, mode, ctx)
    files.push(rel)
  }
  const writeText = (rel: string, text: string, mode = 0o644) => {
    fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true })
    fs.writeFileSync(path.join(tree, rel), text, { mode })
    files.push(rel)
  }

  // The parts berth reads to identify the release.
  writeText('bin/hello', '#!/bin/sh\nset -e\n# synthetic release for bench/intake.mjs\nRELEASE_ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"\nexec "$RELEASE_ROOT/erts-13.1.5/bin/erl" "$@"\n', 0o755)
  writeText('releases/start_erl.data', '13.1.5 9.9.9\n')
  writeText('releases/COOKIE', 'BENCHCOOKIE\n', 0o400)
  writeText('releases/9.9.9/hello.rel', '{release,{"hello","9.9.9"},{erts,"13.1.5"},[{kernel,"8.5.3"},{stdlib,"4.3"},{hello,"9.9.9"}]}.\n')
  writeText('releases/9.9.9/sys.config', '[].\n')
  writeText('releases/9.9.9/vm.args', '-name hello@127.0.0.1\n')
  writeText('releases/9.9.9/env.sh', '#!/bin/sh\n', 0o755)
  add('releases/9.9.9/start.boot', 40 * 1024)
  add('releases/9.9.9/start.script', 60 * 1024)

  // Budget: half in big files (8–48 MiB), 15% in medium (1–8 MiB), the rest in small ones (1 KiB–1 MiB).
  const bigCap = Math.max(2 * MiB, Math.min(48 * MiB, Math.round(unpackedTarget / 8)))
  const big = sizes(unpackedTarget * 0.5, Math.min(8 * MiB, bigCap / 2), bigCap, rand)
  const medium = sizes(unpackedTarget * 0.15, 1 * MiB, 8 * MiB, rand)
  const small = sizes(unpackedTarget * 0.35, 1024, 1 * MiB, rand)

  const ertsBins = ['beam.smp', 'erlexec', 'epmd', 'erl_child_setup', 'inet_gethost', 'heart', 'escript', 'erlc', 'run_erl', 'to_erl', 'dyn_erl', 'ct_run', 'typer', 'dialyzer']
  const deps = Math.max(8, Math.round(small.length / 60))
  const depName = (i: number) => (i === 0 ? 'hello-9.9.9' : `dep${String(i).padStart(3, '0')}-${1 + (i % 5)}.${i % 11}.${i % 7}`)
  big.forEach((s, i) => {
    if (i === 0) add('erts-13.1.5/bin/beam.smp', s, 0o755)
    else add(`lib/${depName(1 + (i % deps))}/priv/data/blob${i}.bin`, s)
  })
  medium.forEach((s, i) => {
    if (i < ertsBins.length - 1) add(`erts-13.1.5/bin/${ertsBins[i + 1]}`, s, 0o755)
    else add(`lib/${depName(i % deps)}/priv/static/assets/app-${i}.js`, s)
  })
  small.forEach((s, i) => {
    const dep = depName(Math.floor(rand() * deps))
    if (i % 10 === 9) add(`lib/${dep}/priv/static/f${i}.css`, s)
    else add(`lib/${dep}/ebin/Elixir.Mod${i}.beam`, s)
  })
  // bin/erl for the start script, and every dep an .app file.
  writeText('erts-13.1.5/bin/erl', '#!/bin/sh\nexec "$(dirname "$0")/erlexec" "$@"\n', 0o755)
  for (let i = 0; i < deps; i++) writeText(`lib/${depName(i)}/ebin/${depName(i).split('-')[0]}.app`, `{application,${depName(i).split('-')[0]},[]}.\n`)

  let unpackedBytes = 0
  for (const f of files) unpackedBytes += fs.statSync(path.join(tree, f)).size
  log(`synthetic: ${files.length} files, ${fmt(mb(unpackedBytes), 0)} MiB; running tar czf …`)
  const tmp = `${out}.tmp-${process.pid}`
  run('tar', ['czf', tmp, '-C', tree, 'bin', 'erts-13.1.5', 'lib', 'releases'])
  const size = fs.statSync(tmp).size
  fs.renameSync(tmp, out)
  rmTreeSync(tree)
  const meta = { size, files: files.length, unpackedBytes, ratio: unpackedBytes / size, textRatio, randomShare, generatedIn: seconds(started) }
  fs.writeFileSync(metaFile, JSON.stringify(meta, null, 2))
  log(`synthetic: ${path.relative(REPO, out)} is ${fmt(mb(size), 0)} MiB (${fmt(meta.ratio, 2)}x), built in ${fmt(meta.generatedIn, 0)} s`)
  return { file: out, ...meta }
}

// ---------------------------------------------------------------------------------------------------------------
// Real-size release

/**
 * The fixture release plus every OTP and Elixir library on this machine that it lacks (their ebin/ and
 * priv/ directories as installed), tarred with `tar czf` like the synthetic one: what a Phoenix app with its
 * dependencies looks like, in size and in number of files, from real .beam files. Cached in bench/.work/.
 */
function realSizeTarball() {
  const otp = run('erl', ['-noshell', '-eval', 'io:format("~s", [code:lib_dir()]), halt().']).trim()
  const elixir = path.dirname(run('elixir', ['-e', 'IO.write(:code.lib_dir(:elixir))']).trim())
  const libs: string[] = []
  for (const root of [otp, elixir]) {
    for (const n of fs.readdirSync(root).sort()) {
      if (fs.existsSync(path.join(root, n, 'ebin'))) libs.push(path.join(root, n))
    }
  }
  const key = crypto.createHash('sha256').update(fs.readFileSync(FIXTURE)).update(libs.join('\n')).digest('hex').slice(0, 12)
  const out = path.join(WORK, `intake-realsize-${key}.tar.gz`)
  if (fs.existsSync(out)) {
    log(`real-size: reusing ${path.relative(REPO, out)}`)
    return { file: out }
  }
  const tree = path.join(WORK, `intake-realsize-${key}.gen-${process.pid}`)
  rmTreeSync(tree)
  fs.mkdirSync(tree, { recursive: true })
  run('tar', ['xzf', FIXTURE, '-C', tree])
  const have = new Set(fs.readdirSync(path.join(tree, 'lib')).map((n) => n.replace(/-[^-]*$/, '')))
  let added = 0
  for (const lib of libs) {
    const base = path.basename(lib)
    const name = base.replace(/-[^-]*$/, '')
    if (have.has(name)) continue
    // Elixir's own libraries are installed without a version in their directory name; a release has one.
    const dir = path.join(tree, 'lib', base.includes('-') ? base : `${base}-0.0.0`)
    for (const sub of ['ebin', 'priv']) {
      if (fs.existsSync(path.join(lib, sub))) fs.cpSync(path.join(lib, sub), path.join(dir, sub), { recursive: true, dereference: true })
    }
    added++
  }
  const tmp = `${out}.tmp-${process.pid}`
  run('tar', ['czf', tmp, '-C', tree, ...fs.readdirSync(tree).sort()])
  fs.renameSync(tmp, out)
  rmTreeSync(tree)
  log(`real-size: ${path.relative(REPO, out)}: the fixture plus ${added} libraries, ${fmt(mb(fs.statSync(out).size), 1)} MiB`)
  return { file: out }
}

// ---------------------------------------------------------------------------------------------------------------
// Baselines

/** withSync: false, true (add `sync -f`), or 'floor' (gzip -dc alone). */
async function baseline(file: string, withSync: boolean | 'floor') {
  const dir = await fsp.mkdtemp(path.join(WORK, 'intake-baseline-'))
  try {
    syncAll()
    // `times` (a shell builtin) prints the CPU time of the shell and of its children: user and system.
    const script = withSync === 'floor'
      ? 'gzip -dc "$1" >/dev/null && times'
      : withSync
        ? 'sha256sum "$1" >/dev/null && tar xzf "$1" -C "$2" && sync -f "$2" && times'
        : 'sha256sum "$1" >/dev/null && tar xzf "$1" -C "$2" && times'
    const started = process.hrtime.bigint()
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('sh', ['-c', script, 'sh', file, dir], { stdio: ['ignore', 'pipe', 'pipe'] })
      current.children.add(child)
      let err = ''
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d))
      child.stderr.on('data', (d: Buffer) => (err += d))
      child.on('error', reject)
      child.on('exit', (code, signal) => {
        current.children.delete(child)
        code === 0 ? resolve(out) : reject(new Error(`baseline failed (${code ?? signal}): ${err}`))
      })
    })
    const wall = seconds(started)
    const t = (out.trim().split('\n').pop() ?? '').match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/)
    const cpu = t ? Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4]) : NaN
    return { wall, cpu }
  } finally {
    rmTreeSync(dir)
  }
}

/**
 * What the pieces cost alone, once each, for the interpretation: the system tools the baseline uses, and the
 * same Node primitives berth uses (zlib gunzip with 64 KiB chunks, crypto sha256), run in this process.
 */
async function measureComponents(file: string) {
  const timeSh = (script: string) => {
    const t = process.hrtime.bigint()
    run('sh', ['-c', script, 'sh', file])
    return seconds(t)
  }
  const timeStream = async (through: (src: fs.ReadStream, resolve: (v?: unknown) => void, reject: (err: Error) => void) => void) => {
    const t = process.hrtime.bigint()
    await new Promise((resolve, reject) => {
      const src = fs.createReadStream(file, { highWaterMark: 64 * 1024 })
      src.on('error', reject)
      through(src, resolve, reject)
    })
    return seconds(t)
  }
  return {
    'sha256sum': timeSh('sha256sum "$1" >/dev/null'),
    'gzip -dc': timeSh('gzip -dc "$1" >/dev/null'),
    'node sha256': await timeStream((src, resolve) => {
      const h = crypto.createHash('sha256')
      src.on('data', (d) => h.update(d as Buffer))
      src.on('end', () => resolve(h.digest('hex')))
    }),
    'node gunzip': await timeStream((src, resolve, reject) => {
      const gz = zlib.createGunzip({ chunkSize: 64 * 1024 })
      gz.on('error', reject)
      gz.on('data', () => {})
      gz.on('end', () => resolve())
      src.pipe(gz)
    }),
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The daemon

const current: { daemon: Berth | null; dataDirs: Set<string>; children: Set<ChildProcess> } = { daemon: null, dataDirs: new Set(), children: new Set() }

interface Limits {
  upload: number
  unpacked: number
  files: number
}

async function startDaemon(name: string, limits: Limits, opts: Options) {
  const tag = name.replace(/\W+/g, '_')
  const dataDir = await fsp.mkdtemp(path.join(WORK, `intake-data-${tag}-`))
  current.dataDirs.add(dataDir)
  const daemon = await startBerth({
    berthRoot: opts.berthRoot,
    dataDir,
    env: {
      BERTH_MAX_UPLOAD_BYTES: String(limits.upload),
      BERTH_MAX_UNPACKED_BYTES: String(limits.unpacked),
      BERTH_MAX_FILES: String(limits.files),
      BERTH_UPLOAD_IDLE_MS: '300000',
    },
    nodeOptions: opts.nodeOptions,
    cpuProf: opts.cpuProf ? { dir: opts.cpuProf, name: `berth-${tag}-${Date.now()}.cpuprofile` } : null,
  })
  current.daemon = daemon
  return daemon
}

async function stopDaemon(daemon: Berth | null) {
  if (!daemon) return
  await daemon.stop()
  if (current.daemon === daemon) current.daemon = null
  rmTreeSync(daemon.dataDir)
  current.dataDirs.delete(daemon.dataDir)
}

/**
 * User+system seconds of the daemon's main thread alone (its JavaScript, and the synchronous syscalls it makes);
 * the rest of procCpuSeconds is the thread pool (zlib, asynchronous fs) and V8's helpers.
 */
function mainThreadCpu(pid: number) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return NaN
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

/** One timed upload: streams the file, waits for the 201; returns wall seconds, peak RSS and the release. */
async function berthUpload(daemon: Berth, file: string) {
  syncAll()
  const sampler = rssSampler(() => procMem(daemon.pid)?.rss, 20)
  const cpu0 = procCpuSeconds(daemon.pid)
  const main0 = mainThreadCpu(daemon.pid)
  const client0 = process.cpuUsage()
  const started = process.hrtime.bigint()
  let res
  try {
    res = await request(daemon, 'POST', '/v1/apps/hello/releases', { file })
  } catch (err) {
    sampler.stop() // its interval would keep this process alive
    throw err
  }
  const wall = seconds(started)
  const cpu = procCpuSeconds(daemon.pid) - cpu0
  const mainCpu = mainThreadCpu(daemon.pid) - main0
  const c = process.cpuUsage(client0)
  const clientCpu = (c.user + c.system) / 1e6
  const { peak, samples } = sampler.stop()
  if (res.status !== 201) throw new Error(`upload answered ${res.status} (expected 201): ${res.text.slice(0, 500)}\n${daemon.output()}`)
  // Not timed: remove the release so the next run uploads bytes berth does not have.
  const del = await request(daemon, 'DELETE', `/v1/apps/hello/releases/${encodeURIComponent(res.json.id)}`)
  if (del.status !== 200) throw new Error(`delete answered ${del.status}: ${del.text.slice(0, 500)}`)
  return { wall, cpu, mainCpu, clientCpu, peakRss: peak, samples, release: res.json }
}

// ---------------------------------------------------------------------------------------------------------------
// One case: warm-ups, then N interleaved runs of each side

interface CaseResult {
  name: string
  file: string
  size: number
  runs: number
  build: string
  load: number
  idleRss: number
  components: Record<string, number>
  baseline: number[]
  baselineCpu: number[]
  baselineSync: number[]
  floor: number[]
  berthB: number[]
  berthBCpu: number[]
  berthBMainCpu: number[]
  berthMainCpu: number[]
  buildB: string | null
  berth: number[]
  berthCpu: number[]
  clientCpu: number[]
  berthPeakRss: number[]
  warmup: { baseline: number; baselineSync: number; berth: number; peakRss: number }
  /** The release as berth answered the upload (unpackedBytes, files, ...). */
  release: { unpackedBytes: number; files: number }
  afterRss?: number
  hwm?: number
}

async function runCase(name: string, file: string, runs: number, opts: Options): Promise<CaseResult> {
  const size = fs.statSync(file).size
  log(`\n== ${name}: ${path.relative(REPO, file)} (${fmt(mb(size), 1)} MiB), ${runs} runs`)
  const limits = { upload: size + GiB, unpacked: Math.max(4 * GiB, size * 20), files: 1_000_000 }
  const build = buildId(opts.berthRoot)
  const daemon = await startDaemon(name, limits, opts)
  const daemonB = opts.compare ? await startDaemon(`${name} B`, limits, { ...opts, berthRoot: opts.compare, cpuProf: null }) : null
  try {
    await sleep(500)
    const idle = procMem(daemon.pid)
    log(`   berth ${path.relative(REPO, opts.berthRoot) || '.'} build ${build}, pid ${daemon.pid} on port ${daemon.port}, idle RSS ${fmt(mb(idle?.rss ?? NaN), 1)} MiB, load average ${fmt(os.loadavg()[0], 2)}`)

    log('   warm-up …')
    const b0 = await baseline(file, false)
    const s0 = await baseline(file, true)
    const w0 = await berthUpload(daemon, file)
    if (daemonB) await berthUpload(daemonB, file)
    log(`   warm-up: baseline ${fmt(b0.wall, 3)} s, baseline+sync ${fmt(s0.wall, 3)} s, berth ${fmt(w0.wall, 3)} s (peak RSS ${fmt(mb(w0.peakRss), 1)} MiB)`)

    const components = await measureComponents(file)
    log(`   components (one run each): ${Object.entries(components).map(([k, v]) => `${k} ${fmt(v, 2)} s`).join(', ')}`)

    const result: CaseResult = {
      name, file, size, runs, build, load: os.loadavg()[0]!, idleRss: idle?.rss ?? NaN, components,
      baseline: [], baselineCpu: [], baselineSync: [], floor: [], berthB: [], berthBCpu: [], berthBMainCpu: [], berthMainCpu: [], buildB: opts.compare ? buildId(opts.compare) : null, berth: [], berthCpu: [], clientCpu: [], berthPeakRss: [],
      warmup: { baseline: b0.wall, baselineSync: s0.wall, berth: w0.wall, peakRss: w0.peakRss },
      release: w0.release,
    }
    for (let i = 0; i < runs; i++) {
      const b = await baseline(file, false)
      const s = await baseline(file, true)
      const f = await baseline(file, 'floor')
      // Alternate which build goes first.
      const uB = daemonB && i % 2 === 0 ? await berthUpload(daemonB, file) : null
      const u = await berthUpload(daemon, file)
      const uB2 = daemonB && i % 2 === 1 ? await berthUpload(daemonB, file) : uB
      if (uB2) {
        result.berthB.push(uB2.wall)
        result.berthBCpu.push(uB2.cpu)
        result.berthBMainCpu.push(uB2.mainCpu)
        log(`   run ${i + 1}/${runs}: berth B ${fmt(uB2.wall, 3)} s (cpu ${fmt(uB2.cpu, 2)} s, main thread ${fmt(uB2.mainCpu, 2)} s)`)
      }
      result.floor.push(f.wall)
      result.baseline.push(b.wall)
      result.baselineCpu.push(b.cpu)
      result.baselineSync.push(s.wall)
      result.berth.push(u.wall)
      result.berthCpu.push(u.cpu)
      result.berthMainCpu.push(u.mainCpu)
      result.clientCpu.push(u.clientCpu)
      result.berthPeakRss.push(u.peakRss)
      log(`   run ${i + 1}/${runs}: baseline ${fmt(b.wall, 3)} s (cpu ${fmt(b.cpu, 2)} s), baseline+sync ${fmt(s.wall, 3)} s, gzip -dc ${fmt(f.wall, 3)} s, berth ${fmt(u.wall, 3)} s (cpu ${fmt(u.cpu, 2)} s, main thread ${fmt(u.mainCpu, 2)} s, ${fmt(mb(size) / u.wall, 0)} MiB/s, peak RSS ${fmt(mb(u.peakRss), 1)} MiB, ${u.samples} samples)`)
    }
    await sleep(500)
    const after = procMem(daemon.pid)
    result.afterRss = after?.rss ?? NaN
    result.hwm = after?.hwm ?? NaN
    log(`   after: RSS ${fmt(mb(result.afterRss), 1)} MiB, VmHWM ${fmt(mb(result.hwm), 1)} MiB`)
    return result
  } catch (err) {
    if (!signals.interrupted) {
      const c = daemon.child
      const state = c.exitCode !== null || c.signalCode !== null ? `exited (code ${c.exitCode}, signal ${c.signalCode})` : 'still running'
      log(`   daemon ${daemon.pid} ${state}; output (tail):\n${daemon.output()}`)
    }
    throw err
  } finally {
    await stopDaemon(daemon)
    if (daemonB) await stopDaemon(daemonB)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

/** Which build of the intake code ran: others edit src/ and rebuild dist/ while benchmarks run. */
function buildId(root: string) {
  const h = crypto.createHash('sha256')
  for (const f of ['intake.js', 'unpack.js']) h.update(fs.readFileSync(path.join(root, 'dist', 'src', 'intake', f)))
  const mtime = fs.statSync(path.join(root, 'dist', 'src', 'intake', 'unpack.js')).mtime.toISOString()
  return `${h.digest('hex').slice(0, 12)} (dist/src/intake/unpack.js ${mtime})`
}

function machine() {
  const df = spawnSync('df', ['-h', WORK], { encoding: 'utf8' }).stdout.trim().split('\n')
  const fsType = spawnSync('df', ['-T', WORK], { encoding: 'utf8' }).stdout.trim().split('\n').pop()?.split(/\s+/)[1]
  return {
    cpus: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    memGiB: os.totalmem() / GiB,
    kernel: os.release(),
    node: process.version,
    disk: df.pop(),
    fsType,
  }
}

function tables(results: CaseResult[]) {
  const time = mdTable(
    ['case', 'tarball MiB', 'unpacked MiB / files', 'baseline s', 'baseline+sync s', 'gzip -dc s', 'berth s', 'berth / baseline', 'berth / (baseline+sync)', 'berth / gzip -dc', 'per-run berth / (baseline+sync)', 'peak RSS MiB'],
    results.map((r) => {
      const b = median(r.baseline)
      const s = median(r.baselineSync)
      const f = median(r.floor)
      const u = median(r.berth)
      const perRun = r.berth.map((x, i) => x / r.baselineSync[i]!)
      return [
        `${r.name} (n=${r.runs})`,
        fmt(mb(r.size), 1),
        `${fmt(mb(r.release.unpackedBytes), 0)} / ${r.release.files}`,
        fmt(b, 3),
        fmt(s, 3),
        fmt(f, 3),
        fmt(u, 3),
        fmt(u / b, 2),
        fmt(u / s, 2),
        fmt(u / f, 2),
        `${fmt(Math.min(...perRun), 2)}–${fmt(Math.max(...perRun), 2)}`,
        fmt(mb(Math.max(r.warmup.peakRss, ...r.berthPeakRss)), 1),
      ]
    }),
  )
  const detail = mdTable(
    ['case', 'baseline CPU s', 'berth CPU s', 'of which main thread s', 'client CPU s', 'berth MiB/s', 'idle RSS MiB', 'peak RSS MiB (sampled, per run)', 'VmHWM MiB', 'RSS after MiB'],
    results.map((r) => [
      r.name,
      fmt(median(r.baselineCpu), 2),
      fmt(median(r.berthCpu), 2),
      fmt(median(r.berthMainCpu), 2),
      fmt(median(r.clientCpu), 2),
      fmt(mb(r.size) / median(r.berth), 0),
      fmt(mb(r.idleRss), 1),
      [r.warmup.peakRss, ...r.berthPeakRss].map((x) => fmt(mb(x), 0)).join(', '),
      fmt(mb(r.hwm ?? NaN), 1),
      fmt(mb(r.afterRss ?? NaN), 1),
    ]),
  )
  const compared = results.filter((r) => r.berthB.length > 0)
  const ab = compared.length === 0 ? '' : '\n\n' + mdTable(
    ['case', 'berth s', 'berth B s', 'berth / (baseline+sync), per run', 'berth B / (baseline+sync), per run', 'berth / baseline, median per run (B)', 'berth / gzip -dc, median per run (B)', 'berth CPU s', 'berth B CPU s', 'berth / B main-thread CPU s'],
    compared.map((r) => {
      const per = (xs: number[]) => {
        const q = xs.map((x, i) => x / r.baselineSync[i]!)
        return `${fmt(Math.min(...q), 2)}–${fmt(Math.max(...q), 2)} (median ${fmt(median(q), 2)})`
      }
      const vs = (xs: number[], base: number[]) => fmt(median(xs.map((x, i) => x / base[i]!)), 2)
      return [r.name, fmt(median(r.berth), 3), fmt(median(r.berthB), 3), per(r.berth), per(r.berthB),
        `${vs(r.berth, r.baseline)} (${vs(r.berthB, r.baseline)})`, `${vs(r.berth, r.floor)} (${vs(r.berthB, r.floor)})`, fmt(median(r.berthCpu), 2), fmt(median(r.berthBCpu), 2), `${fmt(median(r.berthMainCpu), 2)} / ${fmt(median(r.berthBMainCpu), 2)}`]
    }),
  ) + `\n\nberth B: ${compared[0]!.buildB}`
  const names = Object.keys(results[0]!.components)
  const parts = mdTable(['case', ...names.map((n) => `${n} s`)], results.map((r) => [r.name, ...names.map((n) => fmt(r.components[n], 2))]))
  return `${time}${ab}\n\n${detail}\n\nEach piece alone (one run, warm file):\n\n${parts}`
}

// ---------------------------------------------------------------------------------------------------------------

async function cleanup() {
  for (const c of current.children) c.kill('SIGKILL')
  if (current.daemon) await stopDaemon(current.daemon).catch(() => {})
  for (const d of current.dataDirs) rmQuietly(d)
  for (const n of fs.existsSync(WORK) ? fs.readdirSync(WORK) : []) {
    // Only our own debris (other benchmarks share bench/.work): intake-* scratch, never the cached tarballs.
    if (/^intake-(baseline-|data-)|^intake-(synthetic|realsize)-.*\.(gen|tar\.gz\.tmp)-\d+$/.test(n)) rmQuietly(path.join(WORK, n))
  }
}

const signals = onInterrupt('bench/intake', cleanup)

async function main() {
  const opts = parseCli('bench/intake', import.meta.url, OPTIONS, DEFAULTS)
  if (!fs.existsSync(path.join(opts.berthRoot, 'dist', 'src', 'cli', 'main.js'))) throw new Error(`${opts.berthRoot}/dist is missing: run \`npm run build\` first`)
  await fsp.mkdir(WORK, { recursive: true })
  await cleanup() // debris of an interrupted earlier run
  const m = machine()
  log(`machine: ${m.cpus} CPUs (${m.cpuModel}), ${fmt(m.memGiB, 1)} GiB RAM, kernel ${m.kernel}, node ${m.node}`)
  log(`disk:    ${m.disk} (${m.fsType})`)
  log(`load:    ${os.loadavg().map((x) => fmt(x, 2)).join(' ')}${os.loadavg()[0] > 0.5 ? '  (something else is running: figures will be noisy)' : ''}`)

  const cases: { name: string; file: string; runs: number }[] = []
  if (opts.cases.includes('fixture')) {
    if (!fs.existsSync(FIXTURE)) throw new Error(`${FIXTURE} is missing: run \`node scripts/build-fixtures.mjs\``)
    cases.push({ name: 'fixture v1', file: FIXTURE, runs: opts.runs ?? 5 })
  }
  if (opts.cases.includes('realsize')) {
    const real = realSizeTarball()
    cases.push({ name: 'real-size', file: real.file, runs: opts.runs ?? 5 })
  }
  if (opts.cases.includes('synthetic')) {
    const syn = await syntheticTarball(opts.sizeMb, opts.ratio)
    cases.push({ name: `synthetic ${opts.sizeMb} MiB`, file: syn.file, runs: opts.runs ?? 3 })
  }

  const results: CaseResult[] = []
  for (const c of cases) results.push(await runCase(c.name, c.file, c.runs, opts))

  process.stdout.write(`\n${tables(results)}\n\n`)
  process.stdout.write([
    'Times are medians of the timed runs (warm-up excluded); ratios use the medians.',
    'baseline = `sha256sum F && tar xzf F -C D` (no fsync); baseline+sync adds `sync -f D`. CPU = user+system seconds',
    '(baseline: sh\'s children, via `times`; berth: all daemon threads, from /proc/PID/stat; client: this process,',
    'which reads the file and sends it over loopback while berth works, on the same CPUs).',
    'peak RSS = highest daemon VmRSS sampled every 20 ms during the uploads (warm-up included; per run: warm-up first);',
    'VmHWM = the daemon\'s peak since it started (one fresh daemon per case); idle = before the first upload.',
    ...results.map((r) => `${r.name}: berth build ${r.build}, load average at the end ${fmt(r.load, 2)}`),
  ].join('\n') + '\n')
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ machine: m, opts, results }, null, 2))
}

main()
  .catch((err) => {
    log(`\nbench/intake: ${err.stack ?? err}`)
    process.exitCode = 1
  })
  .finally(async () => {
    if (signals.interrupted) return
    await cleanup()
    process.exit() // nothing left to wait for (a stray timer must not keep the benchmark alive)
  })

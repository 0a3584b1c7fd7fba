// What the bench scripts share: option parsing, statistics, tables, loopback ports and HTTP, /proc readings
// (CPU, RSS, scheduler waits), a berth daemon as a child process, and the cleanup of every process they start.
// No npm dependencies; Linux only where /proc is read.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ROOT } from '../src/root.js'
import { freePort, freePorts } from '../test/helpers/ports.js'

// The one port allocator of the tests and the benches (claimed blocks below the ephemeral range, never 4369).
export { freePort, freePorts }

/** The checkout: this file runs compiled, from dist/bench/, at the depth of dist/src/ that src/root.ts knows. */
export const REPO = path.resolve(ROOT)
/** Where scripts/build-fixtures.mjs puts the fixture releases (the same rule as that script and test/helpers). */
export const FIXTURES = path.resolve(process.env.BERTH_FIXTURES_OUT || path.join(REPO, 'test', '.fixtures'))
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------------
// Options

/**
 * One command-line option. `value` makes it a flag that takes no argument and sets `key` to that value; otherwise
 * the argument comes as `--flag V` or `--flag=V` and is read by `type`: int (a whole number, `_` allowed as in
 * 50_000_000), number, string, path (made absolute) or list (comma-separated, each one of `choices`).
 */
export interface OptionSpec {
  readonly key: string
  readonly type?: 'int' | 'number' | 'string' | 'path' | 'list'
  readonly min?: number
  readonly choices?: readonly string[]
  readonly value?: unknown
}

/** A failure of the bench machinery itself, with a stable code to match on (the scripts' own checks say more). */
export class BenchError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'BenchError'
    this.code = code
  }
}

/** A wrong command line (or `help` for -h/--help); parseCli turns it into the usage text and exit code 2 (0 for help). */
export class UsageError extends Error {
  readonly help: boolean
  constructor(message: string, help = false) {
    super(message)
    this.name = 'UsageError'
    this.help = help
  }
}

/** Reads argv against spec (flag → OptionSpec), starting from a copy of defaults. Throws UsageError. */
export function parseArgs<T extends object>(argv: readonly string[], spec: Readonly<Record<string, OptionSpec>>, defaults: T): T {
  const opts = { ...defaults } as Record<string, unknown>
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? ''
    if (a === '-h' || a === '--help') throw new UsageError('', true)
    const eq = a.startsWith('--') ? a.indexOf('=') : -1
    const flag = eq > 0 ? a.slice(0, eq) : a
    const o = Object.hasOwn(spec, flag) ? spec[flag] : undefined
    if (!o) throw new UsageError(`unknown option ${a}`)
    if (o.type === undefined) {
      if (eq > 0) throw new UsageError(`${flag} takes no value`)
      opts[o.key] = o.value ?? true
      continue
    }
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i]
    if (v === undefined) throw new UsageError(`${flag} needs a value`)
    opts[o.key] = optionValue(flag, o, v)
  }
  return opts as T
}

function optionValue(flag: string, o: OptionSpec, v: string): unknown {
  const min = o.min ?? -Infinity
  switch (o.type) {
    case 'int': {
      const n = v.trim() === '' ? NaN : Number(v.replaceAll('_', ''))
      if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} needs a whole number >= ${min}, got ${v}`)
      return n
    }
    case 'number': {
      const n = v.trim() === '' ? NaN : Number(v)
      if (!Number.isFinite(n) || n < min) throw new UsageError(`${flag} needs a number >= ${min}, got ${v}`)
      return n
    }
    case 'path':
      return path.resolve(v)
    case 'list': {
      const items = v.split(',').map((s) => s.trim()).filter(Boolean)
      for (const x of items) if (o.choices && !o.choices.includes(x)) throw new UsageError(`${flag}: unknown value "${x}" (one of ${o.choices.join(', ')})`)
      return items
    }
    default:
      return v
  }
}

/**
 * The usage text of a bench script: its header comment from the second line down to the blank comment line
 * that ends the option list, so that the text a reader sees at the top of the file is the help. scriptUrl is
 * the script's import.meta.url (tsc keeps the header in dist/bench/, so the compiled script reads its own).
 */
export function usageText(scriptUrl: string): string {
  const out: string[] = []
  let sawOption = false
  for (const line of fs.readFileSync(fileURLToPath(scriptUrl), 'utf8').split('\n').slice(1)) {
    if (!line.startsWith('//')) break
    const text = line.replace(/^\/\/ ?/, '')
    if (/^\s+-/.test(text)) sawOption = true
    else if (sawOption && text.trim() === '') break
    out.push(text)
  }
  return out.join('\n')
}

/**
 * parseArgs for a script's own command line: on a wrong one prints `prog: why` (prog: e.g. `bench/load`) and the
 * usage text and exits 2; on -h/--help prints the usage text and exits 0.
 */
export function parseCli<T extends object>(prog: string, scriptUrl: string, spec: Readonly<Record<string, OptionSpec>>, defaults: T, argv = process.argv.slice(2)): T {
  try {
    return parseArgs(argv, spec, defaults)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    if (!err.help) process.stderr.write(`${prog}: ${err.message}\n\n`)
    process.stderr.write(usageText(scriptUrl) + '\n')
    process.exit(err.help ? 0 : 2)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics
//
// Every function ignores what is not a finite number (null, undefined, NaN, ±Infinity: a run that measured
// nothing) and answers NaN when nothing is left.

/** The finite values, ascending. */
export function sortedFinite(xs: Iterable<unknown>): Float64Array {
  const v: number[] = []
  for (const x of xs) if (typeof x === 'number' && Number.isFinite(x)) v.push(x)
  return Float64Array.from(v).sort()
}

/**
 * mulberry32: a small seeded PRNG, so that the same seed gives the same synthetic layout (intake) or the same
 * work and kill moments (chaos). Returns numbers in [0, 1).
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The middle value; with an even count, the mean of the two middle values. */
export function median(xs: Iterable<unknown>): number {
  const s = sortedFinite(xs)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** s ascending. */
function rank(s: Float64Array, p: number): number {
  if (s.length === 0) return NaN
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is not between 0 and 100`)
  // p * n first: for whole p and n it is exact, so the rank never lands one too high on a rounding error.
  const k = Math.ceil((p * s.length) / 100)
  return s[Math.min(s.length, Math.max(1, k)) - 1]!
}

/**
 * Nearest-rank percentile, p from 0 to 100: the smallest value that at least p % of the values are less than or
 * equal to, i.e. the ceil(p/100 · n)-th smallest (p 0 gives the smallest). Always one of the measured values,
 * never interpolated: with 5 runs p90 is the slowest run, with 200 samples p99 is the third largest. The p50 is
 * the lower of the two middle values when n is even; `median` averages them.
 */
export function percentile(xs: Iterable<unknown>, p: number): number {
  return rank(sortedFinite(xs), p)
}

/** Several percentiles of the same values, sorted once. */
export function percentiles(xs: Iterable<unknown>, ps: number[]): number[] {
  const s = sortedFinite(xs)
  return ps.map((p) => rank(s, p))
}

export function mean(xs: Iterable<unknown>): number {
  const s = sortedFinite(xs)
  if (s.length === 0) return NaN
  let sum = 0
  for (const x of s) sum += x
  return sum / s.length
}

/** Sample standard deviation (divides by n − 1); NaN for fewer than two values. */
export function stddev(xs: Iterable<unknown>): number {
  const s = sortedFinite(xs)
  if (s.length < 2) return NaN
  const m = mean(s)
  let sq = 0
  for (const x of s) sq += (x - m) ** 2
  return Math.sqrt(sq / (s.length - 1))
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers and tables

/** A number with `digits` decimals, or `–` when there is none. */
export function fmt(n: unknown, digits = 0): string {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : '–'
}

/** Like fmt with an explicit sign: `+12`, `−3` (a real minus sign, as wide as the plus). */
export function signed(n: unknown, digits = 0): string {
  return typeof n === 'number' && Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(digits)}` : '–'
}

/** A Markdown table. */
export function mdTable(head: readonly unknown[], rows: readonly (readonly unknown[])[]): string {
  return [head, head.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
}

/**
 * A plain-text table for a terminal: the first column left-aligned, the others right-aligned, two spaces apart,
 * a rule of dashes under the head; a null row is an empty line.
 */
export function textTable(head: readonly unknown[], rows: readonly (readonly unknown[] | null)[]): string {
  const full = rows.filter((r): r is readonly unknown[] => Boolean(r))
  const widths = head.map((h, i) => Math.max(String(h).length, ...full.map((r) => String(r[i] ?? '').length)))
  const line = (cells: readonly unknown[]) => widths.map((w, i) => (i === 0 ? String(cells[i] ?? '').padEnd(w) : String(cells[i] ?? '').padStart(w))).join('  ').trimEnd()
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => (r ? line(r) : ''))].join('\n')
}

// ---------------------------------------------------------------------------------------------------------------
// Loopback

/** Where a request goes: a berth (startBerth's answer is one) or any port, with or without a token. */
export interface Endpoint {
  port: number
  token?: string | null
}

export interface RequestOptions {
  json?: unknown
  file?: string
  body?: NodeJS.ReadableStream
  headers?: Record<string, string>
  timeoutMs?: number
}

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  text: string
  /**
   * The body parsed, null when it is not JSON. Typed loosely on purpose: the benches read a few fields of
   * answers whose shapes openapi.yaml describes, and check what they use.
   */
  json: any
}

/**
 * One HTTP request to 127.0.0.1 on its own connection. The body is `json` (sent as JSON), `file` (streamed raw,
 * with its size as content-length) or `body` (a readable stream; give content-length in headers). With a token
 * it sends `authorization: Bearer`. timeoutMs is the socket's idle time before giving up (0: wait for ever,
 * which a large upload needs while berth fsyncs). Resolves { status, headers, text, json } (json null when the
 * answer is not JSON); rejects on a connection error.
 */
export function request(to: Endpoint, method: string, urlPath: string, { json, file, body, headers = {}, timeoutMs = 0 }: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string> = to.token ? { authorization: `Bearer ${to.token}` } : {}
    let payload: Buffer | null = null
    if (file !== undefined) {
      h['content-type'] = 'application/octet-stream'
      h['content-length'] = String(fs.statSync(file).size)
    } else if (json !== undefined) {
      payload = Buffer.from(JSON.stringify(json))
      h['content-type'] = 'application/json'
      h['content-length'] = String(payload.length)
    }
    const req = http.request({ host: '127.0.0.1', port: to.port, method, path: urlPath, agent: false, headers: { ...h, ...headers }, timeout: timeoutMs })
    req.on('timeout', () => req.destroy(new BenchError('ETIMEDOUT', `${method} ${urlPath}: no answer in ${timeoutMs} ms`)))
    req.on('error', reject)
    req.on('response', (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = null
        try {
          parsed = JSON.parse(text)
        } catch {
          // not JSON: text is the answer
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parsed })
      })
    })
    const stream: NodeJS.ReadableStream | undefined = file !== undefined ? fs.createReadStream(file) : body
    if (stream) {
      stream.on('error', (err) => req.destroy(err))
      stream.pipe(req)
    } else req.end(payload)
  })
}

// ---------------------------------------------------------------------------------------------------------------
// /proc readings (Linux)

let clkTck: number | undefined
/** Clock ticks per second of /proc/PID/stat times; asked on first use, so that importing this forks nothing. */
function clockTicks() {
  clkTck ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100
  return clkTck
}

/** The fields of /proc/PID/stat after the command name (state is [0], ppid [1], utime [11], stime [12]). */
function statFields(pid: number | 'self'): string[] {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** User + system CPU seconds a process (all its threads) has used so far; NaN when it is gone. */
export function procCpuSeconds(pid: number | 'self'): number {
  try {
    const f = statFields(pid)
    return (Number(f[11]) + Number(f[12])) / clockTicks()
  } catch {
    return NaN
  }
}

/** VmRSS and VmHWM (peak RSS since start) of a process in bytes; null when it is gone. */
export function procMem(pid: number | 'self'): { rss: number | null; hwm: number | null } | null {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  const get = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)
    return m ? Number(m[1]) * 1024 : null
  }
  return { rss: get('VmRSS'), hwm: get('VmHWM') }
}

/**
 * How long one thread has run on a CPU and how long it was runnable but waiting for one, in ms, from
 * /proc/PID/schedstat (the thread whose id is PID: a process's main thread) or /proc/PID/task/TID/schedstat.
 * Tells a busy thread from a starved one. null when it is gone or the kernel has no schedstat.
 */
export function schedstat(pid: number | 'self', tid?: number): { runMs: number; waitMs: number } | null {
  try {
    const file = tid === undefined ? `/proc/${pid}/schedstat` : `/proc/${pid}/task/${tid}/schedstat`
    const [run, wait] = fs.readFileSync(file, 'utf8').trim().split(' ').map(Number)
    return { runMs: run! / 1e6, waitMs: wait! / 1e6 }
  } catch {
    return null
  }
}

/**
 * Samples RSS (what `read` answers, in bytes) at start, every everyMs, and at stop; stop() gives the peak, when
 * it was seen (ms after start), how many samples and the last one. The timer is cleared by stop(). read: e.g.
 * () => procMem(pid)?.rss or () => process.memoryUsage().rss.
 */
export interface RssSamples {
  peak: number
  peakAtMs: number
  samples: number
  last: number
}

export function rssSampler(read: () => number | null | undefined, everyMs: number): { stop(): RssSamples } {
  const t0 = performance.now()
  const s = { peak: 0, peakAtMs: 0, samples: 0, last: NaN }
  const take = () => {
    const rss = read()
    if (rss == null) return
    s.samples++
    s.last = rss
    if (rss > s.peak) {
      s.peak = rss
      s.peakAtMs = performance.now() - t0
    }
  }
  take()
  const timer = setInterval(take, everyMs)
  return {
    stop() {
      clearInterval(timer)
      take()
      return { ...s }
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/** Sends sig to pid (a negative pid: its process group; sig 0 only asks whether it exists); false when there is no such process. */
export function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig)
    return true
  } catch {
    return false
  }
}

/** Signals the whole process group led by pid (a child spawned with `detached: true` or under setsid). */
export function killGroup(pid: number, sig: NodeJS.Signals = 'SIGKILL'): boolean {
  return signal(-pid, sig)
}

/** Every process below pid, from /proc: helpers such as erl_child_setup may leave the process group. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const ppid = Number(statFields(Number(name))[1])
      const list = children.get(ppid) ?? []
      list.push(Number(name))
      children.set(ppid, list)
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = []
  const todo = [root]
  while (todo.length) {
    for (const c of children.get(todo.pop()!) ?? []) {
      out.push(c)
      todo.push(c)
    }
  }
  return out
}

/**
 * Live (not zombie) processes other than this one whose command line contains `marker` (a temp dir: every BEAM,
 * run_erl and epmd a bench starts runs from one), or whose environment holds the entry `env` exactly.
 */
export function processesNaming(marker: string, { env }: { env?: string } = {}): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (statFields(Number(name))[0] === 'Z') continue
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8')
      let hit = cmd.includes(marker)
      if (!hit && env) {
        try {
          hit = fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(env)
        } catch {
          // not ours to read
        }
      }
      if (hit) out.push({ pid: Number(name), cmd: cmd.replaceAll('\0', ' ').trim() })
    } catch {
      // gone meanwhile
    }
  }
  return out
}

/**
 * SIGKILLs processesNaming(marker) until none is left (at most 5 rounds, 100 ms apart, so that forks in flight
 * are caught too); synchronous, so it also works in process.on('exit'). Returns how many it killed.
 */
export function killProcessesNaming(marker: string, opts: { env?: string } = {}): number {
  let n = 0
  for (let round = 0; round < 5; round++) {
    const procs = processesNaming(marker, opts)
    if (procs.length === 0) break
    for (const p of procs) if (signal(p.pid, 'SIGKILL')) n++
    spawnSync('sleep', ['0.1'])
  }
  return n
}

/** Removes a tree, also one made read-only (berth's releases are 0555). */
export function rmTreeSync(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true })
  } catch {
    const chmodDirs = (d: string) => {
      let st: fs.Stats
      try {
        st = fs.lstatSync(d)
      } catch {
        return
      }
      if (!st.isDirectory()) return
      fs.chmodSync(d, 0o700)
      for (const n of fs.readdirSync(d)) chmodDirs(path.join(d, n))
    }
    chmodDirs(p)
    fs.rmSync(p, { recursive: true, force: true })
  }
}

/**
 * Ctrl+C (SIGINT), SIGTERM and SIGHUP: the first runs cleanup and exits 130, a second exits at once. The
 * returned object's `interrupted` says whether it happened, so that main() does not report a failure it caused.
 */
export function onInterrupt(prog: string, cleanup: () => unknown): { interrupted: boolean } {
  const state = { interrupted: false }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (state.interrupted) process.exit(130)
      state.interrupted = true
      process.stderr.write(`\n${prog}: ${sig}, cleaning up …\n`)
      Promise.resolve()
        .then(cleanup)
        .catch((err: Error) => process.stderr.write(`${prog}: cleanup failed: ${err?.stack ?? err}\n`))
        .finally(() => process.exit(130))
    })
  }
  return state
}

// ---------------------------------------------------------------------------------------------------------------
// A berth daemon as a child process

export interface Berth {
  child: ChildProcess
  pid: number
  port: number
  url: string
  dataDir: string
  /** The initial admin token. */
  token: string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** The last 16 KiB of its stdout and stderr. */
  output(): string
  running(): boolean
  /** SIGTERM, then SIGKILL after 10 s; removes the data dir if startBerth made it. */
  stop(): Promise<void>
  /** SIGKILL now (synchronous, for process.on('exit'); a daemon still running when this process exits gets it anyway). */
  kill(): void
}

/** Every daemon started here and not yet stopped: an exit in the middle of a start (Ctrl+C) must not leave one running. */
const daemons = new Set<Berth>()
let exitHook = false

/**
 * The node flags berth runs with: those of BERTHROOT/bin/berth.js's first line (`#!/usr/bin/env -S node FLAGS`),
 * which `npx berth`, `npm start` and the systemd unit use; a build without them answers [].
 */
export function berthNodeFlags(berthRoot = REPO): string[] {
  const first = fs.readFileSync(path.join(berthRoot, 'bin', 'berth.js'), 'utf8').split('\n')[0] ?? ''
  const m = /^#!\/usr\/bin\/env(?: -S)? node(?: (.*))?$/.exec(first)
  return m?.[1] ? m[1].trim().split(/\s+/) : []
}

/**
 * Runs `node FLAGS BERTHROOT/bin/berth.js serve` (FLAGS: berthNodeFlags) on 127.0.0.1:port with BERTH_LOG_LEVEL=warn and waits (up to 30 s)
 * until it has written its initial admin token and GET /healthz answers 200. Without dataDir it makes a temp
 * dir, which stop() removes. nodeOptions replaces NODE_OPTIONS (an empty one removes it, so that this process's
 * own options do not leak into the figures); cpuProf writes a CPU profile there when the daemon exits (--cpu-prof
 * is refused in NODE_OPTIONS, so it goes on the command line).
 */
export interface StartOptions {
  berthRoot?: string
  dataDir?: string
  port?: number
  env?: Record<string, string>
  nodeOptions?: string
  cpuProf?: { dir: string; name: string } | null
}

export async function startBerth({ berthRoot = REPO, dataDir, port, env = {}, nodeOptions = '', cpuProf = null }: StartOptions = {}): Promise<Berth> {
  if (!exitHook) process.on('exit', () => daemons.forEach((d) => d.kill()))
  exitHook = true
  const ownsDir = !dataDir
  const dir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'))
  fs.mkdirSync(dir, { recursive: true })
  const listen = port ?? (await freePort())
  const childEnv: NodeJS.ProcessEnv = { ...process.env, BERTH_DATA_DIR: dir, BERTH_LISTEN: `127.0.0.1:${listen}`, BERTH_LOG_LEVEL: 'warn', ...env }
  if (nodeOptions.trim()) childEnv.NODE_OPTIONS = nodeOptions.trim()
  else delete childEnv.NODE_OPTIONS
  // Started the way production starts it: with the node flags of its entry point.
  const execArgs = berthNodeFlags(berthRoot)
  if (cpuProf) {
    fs.mkdirSync(cpuProf.dir, { recursive: true })
    execArgs.push('--cpu-prof', `--cpu-prof-dir=${cpuProf.dir}`, `--cpu-prof-name=${cpuProf.name}`)
  }
  const child = spawn(process.execPath, [...execArgs, path.join(berthRoot, 'bin', 'berth.js'), 'serve'], { cwd: berthRoot, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const keep = (d: Buffer) => {
    output = (output + d).slice(-16384)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const exited: Berth['exited'] = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })))
  const running = () => child.exitCode === null && child.signalCode === null
  const b: Berth = {
    child,
    pid: child.pid!,
    port: listen,
    url: `http://127.0.0.1:${listen}`,
    dataDir: dir,
    token: '',
    exited,
    output: () => output,
    running,
    kill: () => {
      if (running()) signal(child.pid!, 'SIGKILL')
    },
    stop: async () => {
      if (running()) {
        child.kill('SIGTERM')
        let timer: NodeJS.Timeout | undefined
        const late = new Promise((resolve) => (timer = setTimeout(resolve, 10_000, null)))
        const done = await Promise.race([exited, late])
        clearTimeout(timer)
        if (!done) {
          process.stderr.write(`berth (pid ${child.pid}) did not exit within 10 s of SIGTERM: SIGKILL${cpuProf ? ' (no CPU profile is written)' : ''}\n`)
          child.kill('SIGKILL')
          await exited
        }
      }
      daemons.delete(b)
      if (ownsDir) rmTreeSync(dir)
    },
  }
  daemons.add(b)
  const tokenFile = path.join(dir, 'initial-admin-token')
  const deadline = Date.now() + 30_000
  try {
    for (;;) {
      if (!running()) throw new BenchError('BERTH_EXITED', `berth exited at start:\n${output}`)
      if (Date.now() > deadline) throw new BenchError('BERTH_NOT_READY', `berth did not become ready in 30 s:\n${output}`)
      const token = fs.existsSync(tokenFile) ? fs.readFileSync(tokenFile, 'utf8').trim() : ''
      if (token && (await request(b, 'GET', '/healthz', { timeoutMs: 2000 }).catch(() => null))?.status === 200) {
        b.token = token
        return b
      }
      await sleep(50)
    }
  } catch (err) {
    await b.stop()
    throw err
  }
}

// @ts-check
// What the bench scripts share: option parsing, statistics, tables, loopback ports and HTTP, /proc readings
// (CPU, RSS, scheduler waits), a berth daemon as a child process, and the cleanup of every process they start.
// No npm dependencies; Linux only where /proc is read.

import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** Where scripts/build-fixtures.mjs puts the fixture releases (the same rule as that script and test/helpers). */
export const FIXTURES = path.resolve(process.env.BERTH_FIXTURES_OUT || path.join(REPO, 'test', '.fixtures'))
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------------
// Options

/**
 * One command-line option. `value` makes it a flag that takes no argument and sets `key` to that value; otherwise
 * the argument comes as `--flag V` or `--flag=V` and is read by `type`: int (a whole number, `_` allowed as in
 * 50_000_000), number, string, path (made absolute) or list (comma-separated, each one of `choices`).
 * @typedef {{ key: string, type?: 'int' | 'number' | 'string' | 'path' | 'list', min?: number, choices?: readonly string[], value?: unknown }} OptionSpec
 */

/** A failure of the bench machinery itself, with a stable code to match on (the scripts' own checks say more). */
export class BenchError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message)
    this.name = 'BenchError'
    this.code = code
  }
}

/** A wrong command line (or `help` for -h/--help); parseCli turns it into the usage text and exit code 2 (0 for help). */
export class UsageError extends Error {
  /** @param {string} message @param {boolean} [help] */
  constructor(message, help = false) {
    super(message)
    this.name = 'UsageError'
    this.help = help
  }
}

/**
 * Reads argv against spec (flag → OptionSpec), starting from a copy of defaults. Throws UsageError.
 * @template {Record<string, unknown>} T
 * @param {string[]} argv
 * @param {Record<string, OptionSpec>} spec
 * @param {T} defaults
 * @returns {T}
 */
export function parseArgs(argv, spec, defaults) {
  /** @type {Record<string, unknown>} */
  const opts = { ...defaults }
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
  return /** @type {T} */ (opts)
}

/** @param {string} flag @param {OptionSpec} o @param {string} v */
function optionValue(flag, o, v) {
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
 * that ends the option list, so that the text a reader sees at the top of the file is the help.
 * @param {string} scriptUrl import.meta.url of the script
 */
export function usageText(scriptUrl) {
  const out = []
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
 * parseArgs for a script's own command line: on a wrong one prints `prog: why` and the usage text and exits 2;
 * on -h/--help prints the usage text and exits 0.
 * @template {Record<string, unknown>} T
 * @param {string} prog name in messages, e.g. `bench/load`
 * @param {string} scriptUrl import.meta.url of the script
 * @param {Record<string, OptionSpec>} spec
 * @param {T} defaults
 * @param {string[]} [argv]
 * @returns {T}
 */
export function parseCli(prog, scriptUrl, spec, defaults, argv = process.argv.slice(2)) {
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

/** @param {Iterable<unknown>} xs @returns {Float64Array} the finite values, ascending */
export function sortedFinite(xs) {
  /** @type {number[]} */
  const v = []
  for (const x of xs) if (typeof x === 'number' && Number.isFinite(x)) v.push(x)
  return Float64Array.from(v).sort()
}

/**
 * mulberry32: a small seeded PRNG, so that the same seed gives the same synthetic layout (intake) or the same
 * work and kill moments (chaos). Returns numbers in [0, 1).
 * @param {number} seed
 * @returns {() => number}
 */
export function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The middle value; with an even count, the mean of the two middle values. @param {Iterable<unknown>} xs */
export function median(xs) {
  const s = sortedFinite(xs)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? /** @type {number} */ (s[m]) : (/** @type {number} */ (s[m - 1]) + /** @type {number} */ (s[m])) / 2
}

/** @param {Float64Array} s ascending @param {number} p */
function rank(s, p) {
  if (s.length === 0) return NaN
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is not between 0 and 100`)
  // p * n first: for whole p and n it is exact, so the rank never lands one too high on a rounding error.
  const k = Math.ceil((p * s.length) / 100)
  return /** @type {number} */ (s[Math.min(s.length, Math.max(1, k)) - 1])
}

/**
 * Nearest-rank percentile, p from 0 to 100: the smallest value that at least p % of the values are less than or
 * equal to, i.e. the ceil(p/100 · n)-th smallest (p 0 gives the smallest). Always one of the measured values,
 * never interpolated: with 5 runs p90 is the slowest run, with 200 samples p99 is the third largest. The p50 is
 * the lower of the two middle values when n is even; `median` averages them.
 * @param {Iterable<unknown>} xs @param {number} p
 */
export function percentile(xs, p) {
  return rank(sortedFinite(xs), p)
}

/** Several percentiles of the same values, sorted once. @param {Iterable<unknown>} xs @param {number[]} ps */
export function percentiles(xs, ps) {
  const s = sortedFinite(xs)
  return ps.map((p) => rank(s, p))
}

/** @param {Iterable<unknown>} xs */
export function mean(xs) {
  const s = sortedFinite(xs)
  if (s.length === 0) return NaN
  let sum = 0
  for (const x of s) sum += x
  return sum / s.length
}

/** Sample standard deviation (divides by n − 1); NaN for fewer than two values. @param {Iterable<unknown>} xs */
export function stddev(xs) {
  const s = sortedFinite(xs)
  if (s.length < 2) return NaN
  const m = mean(s)
  let sq = 0
  for (const x of s) sq += (x - m) ** 2
  return Math.sqrt(sq / (s.length - 1))
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers and tables

/** A number with `digits` decimals, or `–` when there is none. @param {unknown} n @param {number} [digits] */
export function fmt(n, digits = 0) {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : '–'
}

/** Like fmt with an explicit sign: `+12`, `−3` (a real minus sign, as wide as the plus). @param {unknown} n @param {number} [digits] */
export function signed(n, digits = 0) {
  return typeof n === 'number' && Number.isFinite(n) ? `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(digits)}` : '–'
}

/** A Markdown table. @param {unknown[]} head @param {unknown[][]} rows */
export function mdTable(head, rows) {
  return [head, head.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
}

/**
 * A plain-text table for a terminal: the first column left-aligned, the others right-aligned, two spaces apart,
 * a rule of dashes under the head; a null row is an empty line.
 * @param {unknown[]} head @param {(unknown[] | null)[]} rows
 */
export function textTable(head, rows) {
  const full = /** @type {unknown[][]} */ (rows.filter(Boolean))
  const widths = head.map((h, i) => Math.max(String(h).length, ...full.map((r) => String(r[i] ?? '').length)))
  /** @param {unknown[]} cells */
  const line = (cells) => widths.map((w, i) => (i === 0 ? String(cells[i] ?? '').padEnd(w) : String(cells[i] ?? '').padStart(w))).join('  ').trimEnd()
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => (r ? line(r) : ''))].join('\n')
}

// ---------------------------------------------------------------------------------------------------------------
// Loopback

/**
 * A free TCP port on 127.0.0.1, never one in `avoid` nor 4369 (epmd's default: a stray system epmd may take it).
 * @param {Set<number>} [avoid]
 * @returns {Promise<number>}
 */
export function freePort(avoid = new Set()) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address())
      srv.close(() => (avoid.has(port) || port === 4369 ? freePort(avoid).then(resolve, reject) : resolve(port)))
    })
  })
}

/** n distinct free ports. @param {number} n */
export async function freePorts(n) {
  /** @type {Set<number>} */
  const got = new Set()
  while (got.size < n) got.add(await freePort(got))
  return [...got]
}

/**
 * One HTTP request to 127.0.0.1 on its own connection. The body is `json` (sent as JSON), `file` (streamed raw,
 * with its size as content-length) or `body` (a readable stream; give content-length in headers). With a token
 * it sends `authorization: Bearer`. timeoutMs is the socket's idle time before giving up (0: wait for ever,
 * which a large upload needs while berth fsyncs). Resolves { status, headers, text, json } (json null when the
 * answer is not JSON); rejects on a connection error.
 * @param {{ port: number, token?: string | null }} to
 * @param {string} method
 * @param {string} urlPath
 * @param {{ json?: unknown, file?: string, body?: NodeJS.ReadableStream, headers?: Record<string, string>, timeoutMs?: number }} [opts]
 * @returns {Promise<{ status: number, headers: http.IncomingHttpHeaders, text: string, json: any }>}
 */
export function request(to, method, urlPath, { json, file, body, headers = {}, timeoutMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    /** @type {Record<string, string>} */
    const h = to.token ? { authorization: `Bearer ${to.token}` } : {}
    let payload = null
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
      /** @type {Buffer[]} */
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed = null
        try {
          parsed = JSON.parse(text)
        } catch {
          // not JSON: text is the answer
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parsed })
      })
    })
    const stream = /** @type {NodeJS.ReadableStream | undefined} */ (file !== undefined ? fs.createReadStream(file) : body)
    if (stream) {
      stream.on('error', (err) => req.destroy(err))
      stream.pipe(req)
    } else req.end(payload)
  })
}

// ---------------------------------------------------------------------------------------------------------------
// /proc readings (Linux)

/** @type {number | undefined} */
let clkTck
/** Clock ticks per second of /proc/PID/stat times; asked on first use, so that importing this forks nothing. */
function clockTicks() {
  clkTck ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100
  return clkTck
}

/** The fields of /proc/PID/stat after the command name (state is [0], ppid [1], utime [11], stime [12]). @param {number | 'self'} pid */
function statFields(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** User + system CPU seconds a process (all its threads) has used so far; NaN when it is gone. @param {number | 'self'} pid */
export function procCpuSeconds(pid) {
  try {
    const f = statFields(pid)
    return (Number(f[11]) + Number(f[12])) / clockTicks()
  } catch {
    return NaN
  }
}

/** VmRSS and VmHWM (peak RSS since start) of a process in bytes; null when it is gone. @param {number | 'self'} pid */
export function procMem(pid) {
  let text
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  /** @param {string} k */
  const get = (k) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)
    return m ? Number(m[1]) * 1024 : null
  }
  return { rss: get('VmRSS'), hwm: get('VmHWM') }
}

/**
 * How long one thread has run on a CPU and how long it was runnable but waiting for one, in ms, from
 * /proc/PID/schedstat (the thread whose id is PID: a process's main thread) or /proc/PID/task/TID/schedstat.
 * Tells a busy thread from a starved one. null when it is gone or the kernel has no schedstat.
 * @param {number | 'self'} pid @param {number} [tid]
 */
export function schedstat(pid, tid) {
  try {
    const file = tid === undefined ? `/proc/${pid}/schedstat` : `/proc/${pid}/task/${tid}/schedstat`
    const [run, wait] = fs.readFileSync(file, 'utf8').trim().split(' ').map(Number)
    return { runMs: /** @type {number} */ (run) / 1e6, waitMs: /** @type {number} */ (wait) / 1e6 }
  } catch {
    return null
  }
}

/**
 * Samples RSS (what `read` answers, in bytes) at start, every everyMs, and at stop; stop() gives the peak, when
 * it was seen (ms after start), how many samples and the last one. The timer is cleared by stop().
 * @param {() => number | null | undefined} read e.g. () => procMem(pid)?.rss or () => process.memoryUsage().rss
 * @param {number} everyMs
 */
export function rssSampler(read, everyMs) {
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

/** Sends sig to pid (a negative pid: its process group; sig 0 only asks whether it exists); false when there is no such process. @param {number} pid @param {NodeJS.Signals | 0} sig */
export function signal(pid, sig) {
  try {
    process.kill(pid, sig)
    return true
  } catch {
    return false
  }
}

/** Signals the whole process group led by pid (a child spawned with `detached: true` or under setsid). @param {number} pid @param {NodeJS.Signals} [sig] */
export function killGroup(pid, sig = 'SIGKILL') {
  return signal(-pid, sig)
}

/** Every process below pid, from /proc: helpers such as erl_child_setup may leave the process group. @param {number} root */
export function descendants(root) {
  /** @type {Map<number, number[]>} */
  const children = new Map()
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
  const out = []
  const todo = [root]
  while (todo.length) {
    for (const c of children.get(/** @type {number} */ (todo.pop())) ?? []) {
      out.push(c)
      todo.push(c)
    }
  }
  return out
}

/**
 * Live (not zombie) processes other than this one whose command line contains `marker` (a temp dir: every BEAM,
 * run_erl and epmd a bench starts runs from one), or whose environment holds the entry `env` exactly.
 * @param {string} marker @param {{ env?: string }} [opts]
 */
export function processesNaming(marker, { env } = {}) {
  const out = []
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
 * @param {string} marker @param {{ env?: string }} [opts]
 */
export function killProcessesNaming(marker, opts = {}) {
  let n = 0
  for (let round = 0; round < 5; round++) {
    const procs = processesNaming(marker, opts)
    if (procs.length === 0) break
    for (const p of procs) if (signal(p.pid, 'SIGKILL')) n++
    spawnSync('sleep', ['0.1'])
  }
  return n
}

/** Removes a tree, also one made read-only (berth's releases are 0555). @param {string} p */
export function rmTreeSync(p) {
  try {
    fs.rmSync(p, { recursive: true, force: true })
  } catch {
    /** @param {string} d */
    const chmodDirs = (d) => {
      let st
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
 * @param {string} prog @param {() => unknown} cleanup
 */
export function onInterrupt(prog, cleanup) {
  const state = { interrupted: false }
  for (const sig of /** @type {NodeJS.Signals[]} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.on(sig, () => {
      if (state.interrupted) process.exit(130)
      state.interrupted = true
      process.stderr.write(`\n${prog}: ${sig}, cleaning up …\n`)
      Promise.resolve()
        .then(cleanup)
        .catch((err) => process.stderr.write(`${prog}: cleanup failed: ${err?.stack ?? err}\n`))
        .finally(() => process.exit(130))
    })
  }
  return state
}

// ---------------------------------------------------------------------------------------------------------------
// A berth daemon as a child process

/**
 * @typedef {object} Berth
 * @property {import('node:child_process').ChildProcess} child
 * @property {number} pid
 * @property {number} port
 * @property {string} url
 * @property {string} dataDir
 * @property {string} token the initial admin token
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 * @property {() => string} output the last 16 KiB of its stdout and stderr
 * @property {() => boolean} running
 * @property {() => Promise<void>} stop SIGTERM, then SIGKILL after 10 s; removes the data dir if startBerth made it
 * @property {() => void} kill SIGKILL now (synchronous, for process.on('exit'); a daemon still running when this
 *   process exits gets it anyway)
 */

/**
 * Every daemon started here and not yet stopped: an exit in the middle of a start (Ctrl+C) must not leave one running.
 * @type {Set<Berth>}
 */
const daemons = new Set()
let exitHook = false

/**
 * The node flags berth runs with: those of BERTHROOT/bin/berth.js's first line (`#!/usr/bin/env -S node FLAGS`),
 * which `npx berth`, `npm start` and the systemd unit use; a build without them answers [].
 * @param {string} berthRoot
 * @returns {string[]}
 */
export function berthNodeFlags(berthRoot = REPO) {
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
 * @param {{ berthRoot?: string, dataDir?: string, port?: number, env?: Record<string, string>, nodeOptions?: string, cpuProf?: { dir: string, name: string } | null }} [opts]
 * @returns {Promise<Berth>}
 */
export async function startBerth({ berthRoot = REPO, dataDir, port, env = {}, nodeOptions = '', cpuProf = null } = {}) {
  if (!exitHook) process.on('exit', () => daemons.forEach((d) => d.kill()))
  exitHook = true
  const ownsDir = !dataDir
  const dir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'))
  fs.mkdirSync(dir, { recursive: true })
  const listen = port ?? (await freePort())
  /** @type {NodeJS.ProcessEnv} */
  const childEnv = { ...process.env, BERTH_DATA_DIR: dir, BERTH_LISTEN: `127.0.0.1:${listen}`, BERTH_LOG_LEVEL: 'warn', ...env }
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
  /** @param {Buffer} d */
  const keep = (d) => {
    output = (output + d).slice(-16384)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  /** @type {Berth['exited']} */
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })))
  const running = () => child.exitCode === null && child.signalCode === null
  /** @type {Berth} */
  const b = {
    child,
    pid: /** @type {number} */ (child.pid),
    port: listen,
    url: `http://127.0.0.1:${listen}`,
    dataDir: dir,
    token: '',
    exited,
    output: () => output,
    running,
    kill: () => {
      if (running()) signal(/** @type {number} */ (child.pid), 'SIGKILL')
    },
    stop: async () => {
      if (running()) {
        child.kill('SIGTERM')
        /** @type {NodeJS.Timeout | undefined} */
        let timer
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

// bench/lib.ts, the helpers the bench scripts share: statistics and option parsing on known inputs, and the
// /proc, port, process-group and daemon helpers on real processes.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

// The compiled harness the benches run (dist/bench/lib.js beside this dist/test/), as they import it.
import * as lib from '../bench/lib.js'

const { median, percentile, percentiles, mean, stddev, fmt, signed, mdTable, textTable, parseArgs, usageText, UsageError } = lib
// The compiled bench scripts: their help is the header comment tsc kept.
const BENCH = fileURLToPath(new URL('../bench/', import.meta.url))

const approx = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} ≉ ${b}`)

test('median: the middle value, the mean of the two middle ones for an even count, nothing measured ignored', () => {
  assert.equal(median([3, 1, 2]), 2)
  assert.equal(median([4, 1, 3, 2]), 2.5)
  assert.equal(median([7]), 7)
  assert.equal(median([5, null, NaN, undefined, Infinity, -Infinity, 1]), 3)
  assert.ok(Number.isNaN(median([])))
  assert.ok(Number.isNaN(median([null, NaN])))
  assert.equal(median(new Float64Array([10, 30, 20])), 20)
})

test('percentile is nearest-rank: always a measured value, the ceil(p/100 · n)-th smallest', () => {
  const ten = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
  assert.equal(percentile(ten, 0), 1)
  assert.equal(percentile(ten, 10), 1)
  assert.equal(percentile(ten, 11), 2)
  assert.equal(percentile(ten, 50), 5, 'p50 is the lower middle value, where the median would be 5.5')
  assert.equal(percentile(ten, 90), 9)
  assert.equal(percentile(ten, 91), 10)
  assert.equal(percentile(ten, 100), 10)
  // What the bench reports promise: with 5 runs p90 is the slowest, with 200 samples p99 the third largest.
  assert.equal(percentile([300, 100, 500, 200, 400], 90), 500)
  const two00 = Array.from({ length: 200 }, (_, i) => i + 1)
  assert.equal(percentile(two00, 99), 198)
  assert.equal(percentile(two00, 50), 100)
  assert.equal(percentile([42], 99), 42)
  assert.equal(percentile([1, 2, NaN, null, 3], 100), 3)
  assert.ok(Number.isNaN(percentile([], 50)))
  assert.throws(() => percentile([1], 101), RangeError)
  assert.throws(() => percentile([1], -1), RangeError)
  assert.deepEqual(percentiles(two00, [50, 90, 99, 100]), [100, 180, 198, 200])
})

test('percentile lands on the exact rank for every count (no rounding error pushes it one up)', () => {
  for (let n = 1; n <= 2000; n++) {
    const xs = Array.from({ length: n }, (_, i) => i + 1)
    for (const p of [50, 90, 99]) {
      // the rank by integer arithmetic: ceil(p·n / 100)
      const k = Math.max(1, Math.floor((p * n + 99) / 100))
      assert.equal(percentile(xs, p), k, `p${p} of ${n}`)
    }
  }
})

test('mean and sample standard deviation', () => {
  const xs = [2, 4, 4, 4, 5, 5, 7, 9]
  assert.equal(mean(xs), 5)
  approx(stddev(xs), Math.sqrt(32 / 7))
  assert.equal(stddev([3, 3, 3]), 0)
  assert.ok(Number.isNaN(stddev([1])))
  assert.ok(Number.isNaN(mean([])))
  assert.equal(mean([1, null, 3, NaN]), 2)
})

test('fmt and signed: fixed decimals, a dash for nothing, a real minus sign', () => {
  assert.equal(fmt(1.005, 1), '1.0')
  assert.equal(fmt(12.345, 2), '12.35')
  assert.equal(fmt(7), '7')
  for (const x of [null, undefined, NaN, Infinity]) assert.equal(fmt(x, 2), '–')
  assert.equal(signed(3.2), '+3')
  assert.equal(signed(-291), '−291')
  assert.equal(signed(0), '+0')
  assert.equal(signed(NaN), '–')
})

test('tables: Markdown, and plain text aligned for a terminal', () => {
  assert.equal(mdTable(['a', 'b'], [['1', '2'], ['3', '4']]), '| a | b |\n| --- | --- |\n| 1 | 2 |\n| 3 | 4 |')
  const t = textTable(['metric', 'x', ''], [['long name', '1.5', 'ok'], null, ['b', '22', '']])
  assert.equal(t, ['metric       x', '---------  ---  --', 'long name  1.5  ok', '', 'b           22'].join('\n'))
})

const SPEC = {
  '--runs': { key: 'runs', type: 'int', min: 1 },
  '--bytes': { key: 'bytes', type: 'int', min: 1 },
  '--ratio': { key: 'ratio', type: 'number', min: 1.1 },
  '--json': { key: 'json', type: 'path' },
  '--name': { key: 'name', type: 'string' },
  '--cases': { key: 'cases', type: 'list', choices: ['fixture', 'synthetic'] },
  '--keep': { key: 'keep' },
  '--no-bulk': { key: 'bulk', value: false },
} as const
const DEFAULTS = { runs: 5, bytes: 100, ratio: 3, json: null as string | null, name: '', cases: ['fixture', 'synthetic'], keep: false, bulk: true }

function usageError(argv: string[], message: RegExp) {
  assert.throws(() => parseArgs(argv, SPEC, DEFAULTS), (err: unknown) => err instanceof UsageError && !err.help && message.test(err.message))
}

test('parseArgs: values as "--flag V" or "--flag=V", typed and checked; defaults left alone', () => {
  assert.deepEqual(parseArgs([], SPEC, DEFAULTS), DEFAULTS)
  const o = parseArgs(['--runs', '3', '--bytes=50_000_000', '--ratio', '2.5', '--json', 'out.json', '--name=a=b', '--cases', 'synthetic, fixture', '--keep', '--no-bulk'], SPEC, DEFAULTS)
  assert.deepEqual(o, { runs: 3, bytes: 50_000_000, ratio: 2.5, json: path.resolve('out.json'), name: 'a=b', cases: ['synthetic', 'fixture'], keep: true, bulk: false })
  assert.equal(DEFAULTS.runs, 5)
  assert.equal(parseArgs(['--runs', '1', '--runs', '2'], SPEC, DEFAULTS).runs, 2, 'the last one counts')
})

test('parseArgs refuses what it cannot read, saying which option and why', () => {
  usageError(['--runs', '0'], /^--runs needs a whole number >= 1, got 0$/)
  usageError(['--runs', '2.5'], /^--runs needs a whole number >= 1, got 2.5$/)
  usageError(['--runs', 'x'], /^--runs needs a whole number/)
  usageError(['--runs='], /^--runs needs a whole number/)
  usageError(['--runs'], /^--runs needs a value$/)
  usageError(['--ratio', '1'], /^--ratio needs a number >= 1.1, got 1$/)
  usageError(['--cases', 'fixture,other'], /^--cases: unknown value "other" \(one of fixture, synthetic\)$/)
  usageError(['--keep=yes'], /^--keep takes no value$/)
  usageError(['--nope'], /^unknown option --nope$/)
  usageError(['runs'], /^unknown option runs$/)
  for (const h of ['-h', '--help']) assert.throws(() => parseArgs(['--runs', '2', h], SPEC, DEFAULTS), (err: unknown) => err instanceof UsageError && err.help)
})

test("usageText is a script's header from its second line to the end of the option list", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-lib-'))
  const file = path.join(dir, 'x.mjs')
  fs.writeFileSync(file, ['#!/usr/bin/env node', '// X benchmark: what it measures.', '//', '//   node x.mjs [--runs N]', '//', '//   --runs N   runs', '//              (default 3)', '//', '// How it works.', 'import fs from "node:fs"'].join('\n'))
  assert.equal(usageText(new URL(`file://${file}`).href), ['X benchmark: what it measures.', '', '  node x.mjs [--runs N]', '', '  --runs N   runs', '             (default 3)'].join('\n'))
  fs.rmSync(dir, { recursive: true })
  // Each bench's help ends with its last option, and names every option the script reads.
  for (const name of ['deploy', 'edge', 'intake', 'load', 'terminal']) {
    const url = new URL(`file://${path.join(BENCH, `${name}.js`)}`).href
    const help = usageText(url)
    assert.match(help.split('\n').at(-1) ?? '', /^\s+--[a-z-]+/, `${name}.js help ends in its option list`)
    const source = fs.readFileSync(fileURLToPath(url), 'utf8')
    for (const flag of source.matchAll(/^\s+'(--[a-z-]+)': \{ key:/gm)) assert.ok(help.includes(flag[1]!), `${name}.js help mentions ${flag[1]}`)
  }
})

test('freePort and freePorts: distinct ports nothing listens on, never 4369', async () => {
  const ports = await lib.freePorts(5)
  assert.equal(new Set(ports).size, 5)
  for (const p of ports) {
    assert.notEqual(p, 4369)
    await new Promise<void>((resolve, reject) => {
      const srv = net.createServer().once('error', reject)
      srv.listen(p, '127.0.0.1', () => srv.close(() => resolve()))
    })
  }
  const avoid = new Set(ports)
  assert.ok(!avoid.has(await lib.freePort(avoid)))
})

test('/proc readings of this process: CPU seconds, RSS and peak, scheduler times', () => {
  const cpu = lib.procCpuSeconds(process.pid)
  assert.ok(cpu > 0 && cpu < 3600, String(cpu))
  const mem = lib.procMem(process.pid)
  assert.ok(mem && mem.rss! > 10 * lib.MiB && mem.hwm! >= mem.rss!, JSON.stringify(mem))
  const s = lib.schedstat('self')
  assert.ok(s && s.runMs > 0 && s.waitMs >= 0, JSON.stringify(s))
  assert.deepEqual(Object.keys(lib.schedstat(process.pid, process.pid) ?? {}), ['runMs', 'waitMs'])
  assert.ok(Number.isNaN(lib.procCpuSeconds(2 ** 22 + 1)))
  assert.equal(lib.procMem(2 ** 22 + 1), null)
})

test('rssSampler: samples at start, on its timer and at stop; keeps the peak and when it was seen', async () => {
  const values = [100, 300, 200]
  let i = 0
  const t0 = performance.now()
  const sampler = lib.rssSampler(() => values[Math.min(i++, values.length - 1)], 5)
  assert.equal(i, 1, 'the first sample is taken at once')
  for (let k = 0; k < 400 && i < 2; k++) await lib.sleep(5)
  const r = sampler.stop()
  const elapsed = performance.now() - t0
  assert.ok(r.samples >= 3, String(r.samples))
  assert.equal(r.peak, 300)
  assert.equal(r.last, 200)
  assert.ok(r.peakAtMs > 0 && r.peakAtMs <= elapsed, `${r.peakAtMs} of ${elapsed}`)
  const gone = lib.rssSampler(() => null, 5).stop()
  assert.equal(gone.samples, 0)
})

test('descendants, killGroup and processesNaming find and end a detached process tree', async () => {
  const marker = `bench-lib-test-${process.pid}-${Date.now()}`
  const sh = spawn('sh', ['-c', 'sleep 300 & sleep 300; wait', marker], { detached: true, stdio: 'ignore' })
  const exited = new Promise((resolve) => sh.on('exit', resolve))
  try {
    let kids: number[] = []
    // A forked child names the marker too until it has exec'd sleep (seen under load): wait for both execs.
    const execd = (pid: number) => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep') } catch { return false } }
    for (let i = 0; i < 250 && !(kids.length === 2 && kids.every(execd)); i++) {
      await lib.sleep(20)
      kids = lib.descendants(sh.pid!)
    }
    assert.equal(kids.length, 2, 'both sleeps are below the shell')
    assert.deepEqual(lib.processesNaming(marker).map((p) => p.pid), [sh.pid], 'only the shell names the marker')
    assert.ok(lib.killGroup(sh.pid!, 'SIGKILL'))
    await exited
    for (let i = 0; i < 100 && kids.some((k) => lib.signal(k, 0)); i++) await lib.sleep(20)
    assert.ok(!kids.some((k) => lib.signal(k, 0)), 'the whole group is gone')
    assert.equal(lib.killGroup(sh.pid!), false, 'nothing left to signal')
  } finally {
    lib.killGroup(sh.pid!)
  }
})

test('killProcessesNaming ends what names a marker in its command line or environment', async () => {
  const marker = `bench-lib-env-${process.pid}-${Date.now()}`
  const a = spawn('sleep', ['300'], { env: { ...process.env, BENCH_LIB_TEST: marker }, stdio: 'ignore' })
  const b = spawn('sh', ['-c', 'sleep 300', marker], { stdio: 'ignore' })
  const gone = Promise.all([a, b].map((c) => new Promise((resolve) => c.on('exit', resolve))))
  try {
    await lib.sleep(100)
    assert.equal(lib.killProcessesNaming(marker, { env: `BENCH_LIB_TEST=${marker}` }), 2)
    await gone
    assert.deepEqual(lib.processesNaming(marker, { env: `BENCH_LIB_TEST=${marker}` }), [])
  } finally {
    a.kill('SIGKILL')
    b.kill('SIGKILL')
  }
})

test('rmTreeSync removes a tree made read-only', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-lib-'))
  fs.mkdirSync(path.join(dir, 'rel', 'bin'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'rel', 'bin', 'x'), 'x')
  fs.chmodSync(path.join(dir, 'rel', 'bin'), 0o555)
  fs.chmodSync(path.join(dir, 'rel'), 0o555)
  lib.rmTreeSync(dir)
  assert.equal(fs.existsSync(dir), false)
})

test('startBerth runs the daemon on a temp data dir with its admin token; stop ends it and removes the dir', async () => {
  const b = await lib.startBerth({ env: { BERTH_EPMD_PORT: String(await lib.freePort()) } })
  try {
    assert.match(b.token, /\S{20,}/)
    assert.ok(fs.existsSync(path.join(b.dataDir, 'initial-admin-token')))
    const apps = await lib.request(b, 'GET', '/v1/apps')
    assert.equal(apps.status, 200, apps.text)
    const anon = await lib.request({ port: b.port }, 'GET', '/v1/apps')
    assert.equal(anon.status, 401)
    assert.equal(anon.headers['content-type']?.split(';')[0], 'application/problem+json')
  } finally {
    await b.stop()
  }
  assert.equal(b.running(), false)
  assert.deepEqual(await b.exited, { code: 0, signal: null })
  assert.equal(fs.existsSync(b.dataDir), false)
})

#!/usr/bin/env node
// Edge access-log benchmark: what one JSON access line per request costs haproxy and berth.
//
//   npm run build && node dist/bench/edge-log.js [--duration S] [--rounds N] [--connections C] [--json FILE]
//
//   --duration S     seconds of each run (default 10)
//   --rounds N       rounds of off, udp, ring runs, in that order (default 3)
//   --connections C  keep-alive connections of the load generator (default 10)
//   --batch-ms MS    the receiver's write batching (AccessLog batchMs; default 100, 0: a write per line)
//   --json FILE      also write the raw results as JSON
//
// Three haproxy 2.6 processes in front of the same keep-alive Node backend (a child process), configured alike
// (test/helpers/edge-haproxy.ts, the edge's txn.host/txn.app rules) except for the access log: none (off),
// a datagram per line (udp), or haproxy's ring forwarded over TCP (ring). Both send to one receiver: berth's
// AccessLog in a child process of its own, filing the lines under apps/hello/log/access.log as berth does. autocannon drives GET / with Host hello.example.com
// in this process, so the load generator's CPU is on the same two cores: every run reports the CPU seconds
// of haproxy, the receiver, the backend and the generator, per request. Then, in this process, the
// receiver's parsing alone (AccessLog.receive on one line, files off) against JSON.parse of the same line.
// On exit or Ctrl+C every process naming the temp dir is killed.

import autocannon, { type Result } from 'autocannon'
import { fork, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { AccessLog, type AccessLogConfig } from '../src/edge/access-log.js'
import { Paths } from '../src/paths.js'
import { startEdgeStandIn, type EdgeStandIn } from '../test/helpers/edge-haproxy.js'
import { type OptionSpec, fmt, freePort, killProcessesNaming, mdTable, median, onInterrupt, parseCli, procCpuSeconds, rmTreeSync, sleep } from './lib.js'

const OPTIONS: Record<string, OptionSpec> = {
  '--duration': { key: 'duration', type: 'int', min: 1 },
  '--rounds': { key: 'rounds', type: 'int', min: 1 },
  '--connections': { key: 'connections', type: 'int', min: 1 },
  '--json': { key: 'json', type: 'path' },
  '--batch-ms': { key: 'batchMs', type: 'int', min: 0 },
  // Internal: this script, forked as the receiver.
  '--receiver': { key: 'receiver', type: 'path' },
}
const DEFAULTS = { duration: 10, rounds: 3, connections: 10, batchMs: 100, json: '', receiver: '' }

const BACKEND = `const http = require('node:http')
const s = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }); res.end('ok') })
s.keepAliveTimeout = 60000
s.listen(Number(process.argv[1]), '127.0.0.1')`

interface ReceiverStats {
  count: number
  drops: ReturnType<AccessLog['droppedLines']>
}

/** The receiver child: an AccessLog on `dir`; says its config lines, then answers "stats" over IPC. */
async function receiver(dir: string, batchMs: number): Promise<void> {
  const paths = new Paths(dir)
  fs.mkdirSync(paths.app('hello'), { recursive: true })
  const access = new AccessLog({ paths, log: pino({ level: 'warn' }), batchMs })
  await access.start()
  process.send!({ ring: access.config('ring'), udp: access.config('udp') })
  process.on('message', (m) => {
    if (m !== 'stats') return
    const stats: ReceiverStats = { count: access.requestStats().get('hello')?.count ?? 0, drops: access.droppedLines() }
    process.send!(stats)
  })
  process.on('disconnect', () => void access.close().then(() => process.exit(0)))
}

const lostLines = (s: ReceiverStats) => s.drops.queueFull + s.drops.kernel + s.drops.unparseable + s.drops.foreign + s.drops.writeFailed

function ask<T>(child: ChildProcess, message: string | null): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T))
    if (message) child.send(message)
  })
}

function cannon(url: string, connections: number, duration: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration, pipelining: 1, headers: { host: 'hello.example.com' } }, (err, res) => (err ? reject(err) : resolve(res)))
  })
}

const MODES = ['off', 'udp', 'ring'] as const
type Mode = (typeof MODES)[number]

interface Run {
  mode: Mode
  rps: number
  p99: number
  requests: number
  failed: number
  /** CPU µs per request of each process. */
  cpu: { haproxy: number; receiver: number; backend: number; generator: number }
  /** Lines the receiver counted in this run (udp and ring), and of those or others, lines not filed. */
  lines: number
  dropped: number
}

/**
 * Receiver parsing alone: AccessLog.receive on one real line with a write queue that takes nothing (so no file
 * is written: the line is parsed, counted for its app and refused by the queue) vs JSON.parse of the same line.
 */
async function parseCost(sample: Buffer, key: string): Promise<{ receiveNs: number; jsonParseNs: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-edgelog-parse-'))
  const paths = new Paths(dir)
  fs.mkdirSync(paths.app('hello'), { recursive: true })
  fs.mkdirSync(paths.edge, { recursive: true })
  // The sample's key, so that the receiver accepts it.
  fs.writeFileSync(path.join(paths.edge, 'log-key'), `${key}\n`, { mode: 0o600 })
  const access = new AccessLog({ paths, log: pino({ level: 'silent' }), highWaterBytes: 0 })
  await access.start()
  try {
    const n = 1_000_000
    const time = (fn: () => void) => {
      for (let i = 0; i < n / 10; i++) fn()
      const t = process.hrtime.bigint()
      for (let i = 0; i < n; i++) fn()
      return Number(process.hrtime.bigint() - t) / n
    }
    const text = sample.toString()
    const json = text.slice(text.indexOf('{'))
    return { receiveNs: time(() => access.receive(sample)), jsonParseNs: time(() => JSON.parse(json)) }
  } finally {
    await access.close()
    rmTreeSync(dir)
  }
}

async function main() {
  const opts = parseCli('bench/edge-log', import.meta.url, OPTIONS, DEFAULTS)
  if (opts.receiver) return receiver(opts.receiver, opts.batchMs)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-edgelog-'))
  const children: ChildProcess[] = []
  const edges: EdgeStandIn[] = []
  const cleanup = async () => {
    for (const e of edges) await e.stop()
    for (const c of children) c.kill('SIGKILL')
    killProcessesNaming(dir)
    rmTreeSync(dir)
  }
  onInterrupt('bench/edge-log', cleanup)
  try {
    const backendPort = await freePort()
    const backend = spawn(process.execPath, ['-e', BACKEND, String(backendPort), dir], { stdio: 'ignore' })
    children.push(backend)
    const recv = fork(fileURLToPath(import.meta.url), ['--receiver', path.join(dir, 'data'), '--batch-ms', String(opts.batchMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(recv)
    const configs = await ask<Record<'ring' | 'udp', AccessLogConfig>>(recv, null)
    const stand: Record<Mode, EdgeStandIn> = {} as Record<Mode, EdgeStandIn>
    for (const mode of MODES) {
      stand[mode] = await startEdgeStandIn({ dir: path.join(dir, mode), port: await freePort(), backendPort, apps: ['hello'], log: mode === 'off' ? null : configs[mode] })
      edges.push(stand[mode])
    }
    await sleep(500)
    // Warm-up of every path (and the JIT of the generator).
    for (const mode of MODES) await cannon(`http://127.0.0.1:${stand[mode].port}/`, opts.connections, 2)

    const runs: Run[] = []
    for (let round = 0; round < opts.rounds; round++) {
      for (const mode of MODES) {
        const edge = stand[mode]
        const pids = { haproxy: edge.child.pid!, receiver: recv.pid!, backend: backend.pid! }
        const before = { haproxy: procCpuSeconds(pids.haproxy), receiver: procCpuSeconds(pids.receiver), backend: procCpuSeconds(pids.backend), generator: procCpuSeconds('self') }
        const start = await ask<ReceiverStats>(recv, 'stats')
        const r = await cannon(`http://127.0.0.1:${edge.port}/`, opts.connections, opts.duration)
        await sleep(300)
        const stats = await ask<ReceiverStats>(recv, 'stats')
        const us = (now: number, then: number) => ((now - then) * 1e6) / r.requests.total
        runs.push({
          mode,
          rps: r.requests.average,
          p99: r.latency.p99,
          requests: r.requests.total,
          failed: r.errors + r.timeouts + r.non2xx,
          cpu: {
            haproxy: us(procCpuSeconds(pids.haproxy), before.haproxy),
            receiver: us(procCpuSeconds(pids.receiver), before.receiver),
            backend: us(procCpuSeconds(pids.backend), before.backend),
            generator: us(procCpuSeconds('self'), before.generator),
          },
          lines: stats.count - start.count,
          dropped: lostLines(stats) - lostLines(start),
        })
      }
    }
    const finalStats = await ask<ReceiverStats>(recv, 'stats')
    const sample = fs.readFileSync(path.join(dir, 'data', 'apps', 'hello', 'log', 'access.log'), 'utf8').split('\n')[0]!
    const key = fs.readFileSync(path.join(dir, 'data', 'edge', 'log-key'), 'utf8').trim()
    const parse = await parseCost(Buffer.from(`${key} ${sample}\n`), key)

    const med = (mode: Mode, f: (r: Run) => number) => median(runs.filter((r) => r.mode === mode).map(f))
    console.log(mdTable(
      ['round', 'log', 'req/s', 'p99 ms', 'failed', 'lines filed', 'haproxy µs/req', 'receiver µs/req', 'backend µs/req', 'generator µs/req'],
      runs.map((r, i) => [String(Math.floor(i / MODES.length) + 1), r.mode, fmt(r.rps), fmt(r.p99, 1), String(r.failed), r.mode === 'off' ? '-' : `${r.lines - r.dropped} of ${r.requests}`, fmt(r.cpu.haproxy, 1), fmt(r.cpu.receiver, 1), fmt(r.cpu.backend, 1), fmt(r.cpu.generator, 1)]),
    ))
    console.log()
    const offs = runs.filter((r) => r.mode === 'off')
    const ratios: Record<string, number[]> = {}
    for (const mode of ['udp', 'ring'] as const) {
      ratios[mode] = runs.filter((r) => r.mode === mode).map((r, i) => r.rps / offs[i]!.rps)
      console.log(`${mode}: median ${fmt(med(mode, (r) => r.rps))} req/s vs off ${fmt(med('off', (r) => r.rps))}: **${fmt(median(ratios[mode]!), 3)}×** (per round ${ratios[mode]!.map((p) => fmt(p, 3)).join(', ')}); haproxy ${fmt(med(mode, (r) => r.cpu.haproxy), 1)} µs/req (off ${fmt(med('off', (r) => r.cpu.haproxy), 1)}), receiver ${fmt(med(mode, (r) => r.cpu.receiver), 1)} µs/line`)
    }
    console.log(`receiver parsing alone: receive() ${fmt(parse.receiveNs)} ns per line (file queue off), JSON.parse of the same line ${fmt(parse.jsonParseNs)} ns`)
    console.log(`drops at the end: ${JSON.stringify(finalStats.drops)}`)
    if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ runs, ratios, parse, drops: finalStats.drops }, null, 2))
  } finally {
    await cleanup()
  }
}

main().catch((err) => {
  console.error(err.stack ?? err)
  process.exit(1)
})

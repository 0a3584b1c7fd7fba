#!/usr/bin/env node
// Terminal benchmark: what berth's websocket hop costs a console, compared with the same program in a pty
// driven directly from Node.
//
//   npm run build && node dist/bench/terminal.js [--runs N] [--keys N] [--bytes N] [--no-bulk] [--echo-only] [--no-recording]
//                                            [--berth-root D] [--json FILE]
//
//   --runs N        runs (default 3); the table shows the median over runs of every figure, ratios are taken
//                   per run (both sides measured side by side) and then the median over runs
//   --keys N        timed keystrokes per run and side (default 200, after 20 untimed warm-up keystrokes)
//   --bytes N       output of the throughput tests, Hello.big_output(N) (default 50_000_000)
//   --no-bulk       skip the second throughput test (the same bytes in one IO.binwrite)
//   --echo-only     skip both throughput tests
//   --berth-root D  measure the berth built in D (D/dist) instead of this checkout; interleave invocations with
//                   and without it to compare two builds (each run has its own direct and floor baselines)
//   --no-recording  DIAGNOSTIC: turn berth's session recorder into a no-op, to see what it costs (changes berth)
//   --json FILE     also write every run's raw figures (including every keystroke's round trip) as JSON
//
// Both sides run the same program: the fixture release's `bin/hello remote` (IEx connected to the running node
// by distribution), in the same environment (supervisor.commandEnv), working directory (paths.shared) and size
// (80x24). berth: a websocket client on GET /v1/apps/hello/remote (same options as `berth console`), berth
// running in this process (startDaemon from dist/test/helpers). direct: node-pty.spawn in this process. So the
// only difference is berth: the websocket hop both ways, the TerminalSession (flow control), the recorder tee.
// floor (echo only): the same direct pty behind the smallest websocket relay Node can have, a bare `ws` server
// in this process (its defaults: no permessage-deflate, TCP_NODELAY) whose connection handler spawns the pty and
// pipes it both ways (ws.send of each pty chunk, pty.write of each binary frame), no auth, session, recorder or
// backpressure. Its client is opened and read exactly like berth's. berth / floor is berth's own share of the gap;
// floor / direct is what any websocket terminal pays (a loopback TCP round trip and two frames through ws).
//
// 1. Echo: one 'a' at a time; the round trip is from the write (ws.send / pty.write) to the arrival of the
//    chunk holding the echo. After each timed 'a' an untimed DEL (echo "\b \b") empties the line again, so every
//    keystroke sees the same state (no line wrap). The two sides are interleaved key by key (who goes first
//    alternates), so both see the same machine. For berth the time is also split, from timestamps taken by
//    wrapping TerminalSession#input/#output: client → pty.write, pty.write → first output (the program), first
//    output → client; for the floor the same three from its message and onData handlers. A websocket
//    ping/pong on the same connection gives the cost of the hop alone. Event-loop delay and the time the main
//    thread waited for a CPU (/proc/self/schedstat) show how busy the machine was.
// 2. Throughput: `Hello.big_output(N); String.upcase("zzdonezz")` and the time until "ZZDONEZZ" arrives (the
//    echoed command holds it only in lower case); MB = 10^6 bytes received, which is N plus the CRs the tty adds.
//    big_output prints 1 KiB lines, one IO.puts (a round trip to the shell's group leader) each, so the BEAM sets
//    the pace; the "bulk" variant sends the same bytes in one IO.binwrite, which puts more pressure on the pty
//    path. The client only counts bytes. RSS of this process is sampled every 20 ms: berth runs in-process, so
//    berth's figure includes the daemon, its websocket server AND the client; the direct side runs in the same
//    process (the idle daemon is resident too). RSS rarely shrinks after a peak, so the delta from the phase's
//    start is shown as well. CPU: this process (process.cpuUsage), the remote shell's process tree and the app
//    node's BEAM (/proc). For berth, main-thread time in TerminalSession#output is measured, and of it in
//    Recorder#output and the server's WebSocket#send; flow control is watched by wrapping TerminalSession#output/
//    #drained: pauses, what filled the sink (socket or recording), and whether each resume came from the
//    socket's 'drain' event or from the 20 ms poll (terminal.ts DRAIN_POLL_MS). The wrappers only take times.
//
// Sides alternate which goes first in each run. Cleanup: each direct pty gets SIGHUP then SIGKILL to its process
// group and descendants; berth sessions close with their socket; d.stop() stops the node and epmd and removes
// the data dir; leftovers (processes naming the data dir) are reported and killed. Ctrl+C cleans up as well.
// No npm dependencies beyond berth's own (ws, node-pty).

import { subscribe } from 'node:diagnostics_channel'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import pty from 'node-pty'
import WebSocket, { WebSocketServer } from 'ws'
import type { Services } from '../src/services.js'
import type { Recorder as RecorderClass } from '../src/sessions/recorder.js'
import type { TerminalSession as TerminalSessionClass } from '../src/sessions/terminal.js'
import type { TestDaemon } from '../test/helpers/daemon.js'
import {
  descendants, fmt as fmtDigits, freePort, killGroup, killProcessesNaming, median, onInterrupt, type OptionSpec, parseCli, percentile,
  procCpuSeconds, processesNaming, REPO, rssSampler, schedstat, signal, sleep, textTable,
} from './lib.js'

const APP = 'hello'
const WARMUP_KEYS = 20
const KEY_TIMEOUT_MS = 5000
const MARKER = 'ZZDONEZZ'
const RSS_SAMPLE_MS = 20
/** A throughput test fails (with a dump of berth's state) after this long without a byte of output. */
const STALL_MS = 60_000

// ---------------------------------------------------------------------------------------------------------------
// Options

const OPTIONS: Record<string, OptionSpec> = {
  '--runs': { key: 'runs', type: 'int', min: 1 },
  '--keys': { key: 'keys', type: 'int', min: 1 },
  '--bytes': { key: 'bytes', type: 'int', min: 1 },
  '--no-bulk': { key: 'bulk', value: false },
  '--echo-only': { key: 'output', value: false },
  '--no-recording': { key: 'recording', value: false },
  '--berth-root': { key: 'berthRoot', type: 'path' },
  '--json': { key: 'json', type: 'string' },
}
const DEFAULTS = { runs: 3, keys: 200, bytes: 50_000_000, bulk: true, output: true, recording: true, berthRoot: REPO, json: null as string | null }

const opts = parseCli('bench/terminal', import.meta.url, OPTIONS, DEFAULTS)
const DIST = path.join(opts.berthRoot, 'dist')
if (!fs.existsSync(path.join(DIST, 'test', 'helpers', 'daemon.js'))) {
  console.error(`bench/terminal: ${DIST} is missing; run \`npm run build\` first.`)
  process.exit(2)
}
// From the build under test (--berth-root), typed as this checkout's: the daemon runs in this process, so the
// classes instrumented below must be the very ones it uses.
const imp = (rel: string): Promise<unknown> => import(pathToFileURL(path.join(DIST, rel)).href)
const { startDaemon } = (await imp('test/helpers/daemon.js')) as typeof import('../test/helpers/daemon.js')
const { fixture } = (await imp('test/helpers/fixtures.js')) as typeof import('../test/helpers/fixtures.js')
const { call, upload } = (await imp('test/helpers/http.js')) as typeof import('../test/helpers/http.js')
const { TerminalSession, outputTrace } = (await imp('src/sessions/terminal.js')) as typeof import('../src/sessions/terminal.js')
const { Recorder } = (await imp('src/sessions/recorder.js')) as typeof import('../src/sessions/recorder.js')

const MiB = 1024 * 1024

// ---------------------------------------------------------------------------------------------------------------
// Instrumentation of berth's terminal sessions (the daemon runs in this process), through public seams only:
// the `berth:terminal:output` tracing channel around each output chunk, the public input()/drained() methods and
// `paused` getter of TerminalSession, Recorder#output, and WebSocket#send of the server's sockets (every socket
// this bench did not open itself). Wrappers only read timestamps and flags; behaviour is unchanged.

type Side = 'berth' | 'direct' | 'floor'
const probe: { armed: Side | null; inAt: number; outAt: number } = { armed: null, inAt: 0, outAt: 0 }
/** Main-thread time (ms) spent synchronously in berth's output path: each output chunk in all, of it the recorder and ws send. */
const cost = { output: 0, recorder: 0, send: 0, chunks: 0 }
const flow: { pauses: number; pollResumes: number; drainResumes: number; pausedMs: number; pausedAt: number; atPause: { socket: number; recorder: number }[] } = { pauses: 0, pollResumes: 0, drainResumes: 0, pausedMs: 0, pausedAt: 0, atPause: [] }
let services: Services | null = null
let wss: WebSocketServer | null = null
/** TerminalSession and Recorder instances seen (for the stall dump, the recorder's figures). */
const sessionsSeen = new Set<TerminalSessionClass>()
const recordersSeen = new Set<RecorderClass>()
/** The recorders written to during the current throughput test: the live session's. */
const recordersNow = new Set<RecorderClass>()
/** The websockets this bench opened (berth's client side and the floor's both ends): not berth's server side. */
const ownSockets = new WeakSet<WebSocket>()
/** The TCP sockets under websockets, from ws's public 'upgrade' (client) and 'connection' (server) events. */
const clientSockets = new WeakMap<WebSocket, net.Socket>()
const serverSockets = new WeakMap<WebSocket, net.Socket>()
/** What setNoDelay() (public) was last called with on a socket: Node keeps no public getter for it. */
const noDelaySet = new WeakMap<net.Socket, boolean>()
{
  const { setNoDelay } = net.Socket.prototype
  net.Socket.prototype.setNoDelay = function (this: net.Socket, noDelay = true) {
    noDelaySet.set(this, noDelay)
    return setNoDelay.call(this, noDelay)
  }
}
{
  const P = TerminalSession.prototype
  const { input, drained } = P
  P.input = function (this: TerminalSessionClass, data: Buffer | string) {
    if (probe.armed === 'berth' && !probe.inAt) probe.inAt = performance.now()
    return input.call(this, data)
  }
  // Around each output chunk: its time, and whether it paused the session (what filled the sink then).
  const started = new WeakMap<object, { t: number; was: boolean }>()
  subscribe('tracing:berth:terminal:output:start', (m) => {
    const { session } = m as { session: TerminalSessionClass }
    sessionsSeen.add(session)
    const t = performance.now()
    if (probe.armed === 'berth' && probe.inAt && !probe.outAt) probe.outAt = t
    started.set(m as object, { t, was: session.paused })
  })
  subscribe('tracing:berth:terminal:output:end', (m) => {
    const { session } = m as { session: TerminalSessionClass }
    const s = started.get(m as object)
    if (!s) return
    cost.output += performance.now() - s.t
    cost.chunks++
    if (!s.was && session.paused) {
      flow.pauses++
      flow.pausedAt = performance.now()
      // What filled the sink: the websocket's buffer or the recording's write buffer (tee adds both).
      flow.atPause.push({ socket: socketBuffered(), recorder: recorderPending() })
    }
  })
  if (!outputTrace) throw new Error(`${DIST} has no berth:terminal:output channel: build a berth that publishes it`)
  P.drained = function (this: TerminalSessionClass) {
    const was = this.paused
    let stack = ''
    if (was) {
      const limit = Error.stackTraceLimit
      Error.stackTraceLimit = 30
      stack = new Error().stack ?? ''
      Error.stackTraceLimit = limit
    }
    const r = drained.call(this)
    if (was && !this.paused) {
      flow.pausedMs += performance.now() - flow.pausedAt
      if (/listOnTimeout|processTimers/.test(stack)) flow.pollResumes++
      else flow.drainResumes++
    }
    return r
  }
}
{
  const R = Recorder.prototype
  const { output } = R
  R.output = opts.recording
    ? function (this: RecorderClass, data: Buffer) {
        recordersSeen.add(this)
        recordersNow.add(this)
        const t = performance.now()
        const r = output.call(this, data)
        cost.recorder += performance.now() - t
        return r
      }
    : function (this: RecorderClass) {
        recordersSeen.add(this)
        recordersNow.add(this)
      } // --no-recording: a diagnostic that changes berth (the header and resizes are still written)
  const { send } = WebSocket.prototype
  WebSocket.prototype.send = function (this: WebSocket, ...args: unknown[]) {
    if (ownSockets.has(this)) return (send as (...a: unknown[]) => void).apply(this, args)
    const t = performance.now()
    const r = (send as (...a: unknown[]) => void).apply(this, args)
    cost.send += performance.now() - t
    return r
  }
}
/** What a stalled or ended terminal looked like: berth's flow-control state, the sockets, the session rows. */
function stateOf(term: Term) {
  const st: Record<string, unknown> = { side: term.side, lastControl: term.control?.slice(-3) }
  try {
    st.node = services!.supervisor.status(APP)
    if (term.side === 'berth') {
      st.sessions = [...sessionsSeen].filter((x) => !x.endedAt).map((x) => ({ pid: x.pid, paused: x.paused, pauses: x.pauses, bytesOut: x.bytesOut }))
      st.serverSockets = [...(wss?.clients ?? [])].map((c) => ({ bufferedAmount: c.bufferedAmount }))
      st.clientSocket = { readyState: term.ws?.readyState, bufferedAmount: term.ws?.bufferedAmount }
      st.recorderPending = recorderPending()
      st.rows = services!.sessions.list(APP, 3).map((r) => ({ id: r.id, active: r.active, endReason: r.endReason, bytesOut: r.bytesOut }))
    }
  } catch (err) {
    st.error = String(err)
  }
  return st
}
function socketBuffered() {
  let n = 0
  for (const c of wss?.clients ?? []) n += c.bufferedAmount
  return n
}
function recorderPending() {
  let n = 0
  for (const r of recordersSeen) n += r.pending
  return n
}

// ---------------------------------------------------------------------------------------------------------------
// Terminals: a byte stream in, one listener at a time out.

class Term {
  readonly side: Side
  listener: ((buf: Buffer, t: number) => void) | null = null
  chunks = 0
  bytes = 0
  /** The session's process (the pty's leader), for CPU accounting; null when unknown. */
  pid: number | null = null
  /** Resolves with why the terminal ended, if it does. */
  gone: Promise<string> = new Promise(() => {})
  ws: WebSocket | null = null
  control: unknown[] = []
  write: (s: string) => void = () => {}
  close: () => Promise<void> = async () => {}

  constructor(side: Side) {
    this.side = side
  }

  feed(buf: Buffer) {
    const t = performance.now()
    this.chunks++
    this.bytes += buf.length
    this.listener?.(buf, t)
  }

  /** Resolves with the arrival time of the chunk that makes the output since now satisfy pred. Call before writing. */
  expect(pred: (s: string) => boolean, what: string, ms = KEY_TIMEOUT_MS): Promise<number> {
    let acc = ''
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listener = null
        reject(new Error(`${this.side}: timed out after ${ms} ms waiting for ${what}; got ${JSON.stringify(acc.slice(-300))}`))
      }, ms)
      this.listener = (buf, t) => {
        acc += buf.toString('latin1')
        if (pred(acc)) {
          clearTimeout(timer)
          this.listener = null
          resolve(t)
        }
      }
    })
  }
}

/** Children of this process (the daemon runs here, so a session's pty leader is one of them). */
function ownChildren(): Set<number> {
  const kids = new Set<number>()
  for (const pid of descendants(process.pid)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) kids.add(pid)
    } catch {
      // gone meanwhile
    }
  }
  return kids
}

async function openBerth(d: TestDaemon) {
  const term = new Term('berth')
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/apps/${APP}/remote`, { headers: { authorization: `Bearer ${d.adminToken}` } })
  ownSockets.add(ws)
  ws.on('upgrade', (res) => clientSockets.set(ws, res.socket as net.Socket))
  term.ws = ws
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  term.gone = closed.then((code) => `websocket closed with ${code}`)
  const before = ownChildren()
  ws.on('message', (m: Buffer, binary) => (binary ? term.feed(m) : term.control.push(JSON.parse(m.toString()))))
  term.write = (s) => ws.send(Buffer.from(s))
  const prompt = term.expect((s) => /iex\([^)]*\)\d+> $/.test(s), 'the IEx prompt', 30_000)
  await new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_q, res) => reject(new Error(`berth refused the websocket: HTTP ${res.statusCode}`)))
    ws.on('error', reject)
    ws.on('open', resolve)
  })
  await prompt
  // The session's pty process (`bin/hello remote`), for CPU accounting: the child of this process (where the
  // daemon runs) that appeared with the session.
  term.pid = [...ownChildren()].find((pid) => !before.has(pid)) ?? null
  term.close = async () => {
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close()
    await closed
    // The session ends after the socket: SIGHUP, grace, reap, row and recording completed.
    const end = Date.now() + 10_000
    while (services!.sessions.active(APP) > 0 && Date.now() < end) await sleep(20)
  }
  return term
}

/**
 * The program both direct and floor run, as berth runs it for a remote session (SessionManager: the command
 * commandFor picks, in the environment commandEnv gives a command, disposed when it ends); returns the pty and
 * a close that reaps its tree.
 */
function spawnPty(d: TestDaemon) {
  const { supervisor, paths, apps } = d.server.services
  const release = supervisor.status(APP).release!
  const file = path.join(supervisor.releaseDir(APP, release), 'bin', supervisor.binName(APP, release))
  const run = supervisor.commandEnv(APP, release)
  const p = pty.spawn(file, [supervisor.commandFor(APP, release, apps.settings(APP), 'remote')], { name: 'xterm-256color', cols: 80, rows: 24, cwd: paths.shared(APP), env: run.env, encoding: null } as unknown as pty.IPtyForkOptions)
  p.onExit(() => run.dispose())
  const exited = new Promise<void>((resolve) => p.onExit(() => resolve()))
  const gone = new Promise<string>((resolve) => p.onExit(({ exitCode, signal }) => resolve(`pty exited: code ${exitCode}, signal ${signal}`)))
  const close = async () => {
    const tree = [p.pid, ...descendants(p.pid)]
    killGroup(p.pid, 'SIGHUP')
    await Promise.race([exited, sleep(2000)])
    killGroup(p.pid, 'SIGKILL')
    for (const pid of tree) signal(pid, 'SIGKILL')
    await Promise.race([exited, sleep(2000)])
    try {
      // Not in node-pty's typings, but there at run time: releases the pty's file descriptor at once.
      ;(p as unknown as { destroy?: () => void }).destroy?.()
    } catch {
      // closed already
    }
  }
  return { p, gone, close }
}

async function openDirect(d: TestDaemon) {
  const term = new Term('direct')
  const { p, gone, close } = spawnPty(d)
  term.pid = p.pid
  term.gone = gone
  // With encoding: null node-pty hands over Buffers (its typings say string).
  p.onData((b) => term.feed(b as unknown as Buffer))
  term.write = (s) => p.write(s)
  await term.expect((s) => /iex\([^)]*\)\d+> $/.test(s), 'the IEx prompt', 30_000)
  term.close = close
  return term
}

/**
 * The floor: the smallest websocket relay in front of the same pty. One server for the whole bench; each
 * connection gets its own pty. The probe takes the same three timestamps as berth's wrappers.
 */
let floorServer: WebSocketServer | null = null
/** The floor server's side of each connection: its pty's pid, and when that pty has exited. */
const floorConnections = new Map<WebSocket, { ptyPid: number; closed: Promise<void> }>()
async function startFloor(d: TestDaemon) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve, reject) => server.once('listening', resolve).once('error', reject))
  server.on('connection', (ws) => {
    ownSockets.add(ws) // not berth's: kept out of berth's ws send cost
    const { p, close } = spawnPty(d)
    p.onData((b) => {
      if (probe.armed === 'floor' && probe.inAt && !probe.outAt) probe.outAt = performance.now()
      ws.send(b as unknown as Buffer, { binary: true })
    })
    ws.on('message', (m: Buffer, binary) => {
      if (!binary) return
      if (probe.armed === 'floor' && !probe.inAt) probe.inAt = performance.now()
      p.write(m as unknown as string)
    })
    ws.on('close', () => void close())
    floorConnections.set(ws, { ptyPid: p.pid, closed: new Promise((resolve) => p.onExit(() => resolve())) })
  })
  floorServer = server
  return `ws://127.0.0.1:${(server.address() as { port: number }).port}/`
}

async function openFloor(url: string) {
  const term = new Term('floor')
  // Opened and read exactly like berth's client (berth's only adds the Authorization header).
  const ws = new WebSocket(url)
  ownSockets.add(ws)
  term.ws = ws
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  term.gone = closed.then((code) => `websocket closed with ${code}`)
  ws.on('message', (m: Buffer, binary) => (binary ? term.feed(m) : null))
  term.write = (s) => ws.send(Buffer.from(s))
  const prompt = term.expect((s) => /iex\([^)]*\)\d+> $/.test(s), 'the IEx prompt', 30_000)
  await new Promise((resolve, reject) => {
    ws.on('error', reject)
    ws.on('open', resolve)
  })
  await prompt
  const server = [...floorServer!.clients].at(-1)
  const conn = server ? floorConnections.get(server) : undefined
  term.pid = conn?.ptyPid ?? null
  term.close = async () => {
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close()
    await closed
    await Promise.race([conn?.closed, sleep(10_000)])
  }
  return term
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

/** CPU seconds (user + system) used so far by these processes and their descendants, from /proc. */
function treeCpu(roots: (number | null)[]) {
  let secs = 0
  for (const pid of roots.filter((p): p is number => Boolean(p)).flatMap((p) => [p, ...descendants(p)])) secs += procCpuSeconds(pid) || 0
  return secs
}

/** Time (ms) the threads of these processes and their descendants spent runnable but waiting for a CPU. */
function treeRunQueueMs(roots: (number | null)[]) {
  let ms = 0
  for (const pid of roots.filter((p): p is number => Boolean(p)).flatMap((p) => [p, ...descendants(p)])) {
    let tids: string[] = []
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`)
    } catch {
      // gone meanwhile
    }
    for (const tid of tids) ms += schedstat(pid, Number(tid))?.waitMs ?? 0
  }
  return ms
}

/** Time this process's main thread (the event loop) spent runnable but waiting for a CPU, in ms. */
function runQueueMs() {
  return schedstat('self')?.waitMs ?? NaN
}

/**
 * Keystroke round trips, both sides interleaved key by key (who goes first alternates), so that both see the
 * same machine: on 2 cores the BEAMs' busy-waiting schedulers and the daemon make conditions drift over seconds.
 */
type Terms = Partial<Record<Side, Term>>
interface Split {
  toPty: number
  program: number
  toClient: number
}
interface EchoSide {
  median: number
  p99: number
  over2ms: number
  rtts: number[]
  split?: Split
  ping?: { median: number; p99: number }
}
type Echo = {
  phaseMs: number
  runQueueMs: number
  loopDelayP99Ms: number
  loopDelayMaxMs: number
  outputUs: number
  recorderUs: number
  sendUs: number
} & Partial<Record<Side, EchoSide>>

async function echo(terms: Terms, order: Side[], keys: number): Promise<Echo> {
  const res: Partial<Record<Side, { rtts: number[]; split: { toPty: number[]; program: number[]; toClient: number[] } }>> = {}
  for (const side of order) res[side] = { rtts: [], split: { toPty: [], program: [], toClient: [] } }
  const split = (side: Side) => side === 'berth' || side === 'floor'
  const loop = monitorEventLoopDelay({ resolution: 1 })
  loop.enable()
  Object.assign(cost, { output: 0, recorder: 0, send: 0, chunks: 0 })
  const rq0 = runQueueMs()
  const t0phase = performance.now()
  for (let i = -WARMUP_KEYS; i < keys; i++) {
    // Who goes first rotates key by key, so each side is first, middle and last equally often.
    const rot = ((i % order.length) + order.length) % order.length
    for (const side of [...order.slice(rot), ...order.slice(0, rot)]) {
      const term = terms[side]!
      const r = res[side]!
      Object.assign(probe, { armed: split(side) ? side : null, inAt: 0, outAt: 0 })
      const got = term.expect((s) => s.includes('a'), "the echo of 'a'")
      const t0 = performance.now()
      term.write('a')
      const t1 = await got
      probe.armed = null
      if (i >= 0) {
        r.rtts.push(t1 - t0)
        if (split(side) && probe.inAt && probe.outAt) {
          r.split.toPty.push(probe.inAt - t0)
          r.split.program.push(probe.outAt - probe.inAt)
          r.split.toClient.push(t1 - probe.outAt)
        }
      }
      const erased = term.expect((s) => s.includes('\b'), 'the echo of DEL')
      term.write('\x7f')
      await erased
    }
  }
  loop.disable()
  const out: Echo = {
    phaseMs: performance.now() - t0phase,
    runQueueMs: runQueueMs() - rq0,
    loopDelayP99Ms: loop.percentile(99) / 1e6,
    loopDelayMaxMs: loop.max / 1e6,
    // berth's synchronous output path per output chunk (echo, DEL echo), in µs
    outputUs: (cost.output * 1000) / cost.chunks,
    recorderUs: (cost.recorder * 1000) / cost.chunks,
    sendUs: (cost.send * 1000) / cost.chunks,
  }
  for (const side of order) {
    const { rtts, split: sp } = res[side]!
    // "median" here is the nearest-rank p50, a measured round trip (the lower middle one for an even count)
    const e: EchoSide = (out[side] = { median: percentile(rtts, 50), p99: percentile(rtts, 99), over2ms: rtts.filter((x) => x > 2).length, rtts })
    if (split(side)) e.split = { toPty: percentile(sp.toPty, 50), program: percentile(sp.program, 50), toClient: percentile(sp.toClient, 50) }
  }
  out.berth!.ping = await pings(terms.berth!.ws!, keys)
  if (terms.floor) out.floor!.ping = await pings(terms.floor.ws!, keys)
  return out
}

/** The websocket hop alone: ping → pong on the same connection (ws answers pings itself, in berth's event loop). */
async function pings(ws: WebSocket, n: number) {
  const rtts: number[] = []
  for (let i = -WARMUP_KEYS; i < n; i++) {
    const t0 = performance.now()
    const pong = new Promise<number>((resolve) => ws.once('pong', () => resolve(performance.now())))
    ws.ping()
    const t1 = await pong
    if (i >= 0) rtts.push(t1 - t0)
  }
  return { median: percentile(rtts, 50), p99: percentile(rtts, 99) }
}

/** Runs expr (which prints a lot) and times it until the marker printed after it arrives. */
interface Throughput {
  bytes: number
  secs: number
  mbps: number
  chunks: number
  avgChunk: number
  nodeCpuPct: number
  shellCpuPct: number
  appCpuPct: number
  nodeWaitPct: number
  beamWaitPct: number
  rssPeakMiB: number
  rssDeltaMiB: number
  cost?: typeof cost & { outputPct: number; usPerChunk: number; recorderUsPerChunk: number; sendUsPerChunk: number }
  flow?: Omit<typeof flow, 'pausedAt'>
  recorderSkipped?: number
  recorderTruncated?: boolean
}

async function throughput(term: Term, expr: string, appBeam: number | null): Promise<Throughput> {
  Object.assign(flow, { pauses: 0, pollResumes: 0, drainResumes: 0, pausedMs: 0, pausedAt: 0, atPause: [] })
  Object.assign(cost, { output: 0, recorder: 0, send: 0, chunks: 0 })
  recordersNow.clear()
  const rss0 = process.memoryUsage().rss
  const sampler = rssSampler(() => process.memoryUsage().rss, RSS_SAMPLE_MS)
  let peak = rss0
  let received = 0
  let chunks = 0
  let tail = ''
  let after: string | null = null // output after the marker, until the prompt is back
  let promptBack = () => {}
  const prompt = new Promise<void>((resolve) => (promptBack = resolve))
  let lastByteAt = performance.now()
  let watchdog: NodeJS.Timeout | undefined
  const done = new Promise<number>((resolve, reject) => {
    // No byte for STALL_MS, or the terminal ended: fail with what berth's side looked like at that moment.
    const fail = (why: string) => reject(new Error(`${term.side}: ${why} after ${received} bytes; state: ${JSON.stringify(stateOf(term))}`))
    watchdog = setInterval(() => {
      if (after === null && performance.now() - lastByteAt > STALL_MS) fail(`no output for ${STALL_MS / 1000} s`)
    }, 1000)
    void term.gone.then((how) => after === null && fail(`the terminal ended (${how})`))
    term.listener = (buf, t) => {
      lastByteAt = t
      if (after !== null) {
        after += buf.toString('latin1')
      } else {
        received += buf.length
        chunks++
        // The marker may straddle two chunks: look at the end of the last one and the start of this one.
        const s = tail + buf.toString('latin1', 0, Math.min(buf.length, MARKER.length - 1))
        const i = s.indexOf(MARKER)
        const at = i >= 0 ? i - tail.length : buf.indexOf(MARKER)
        if (at !== -1) {
          after = buf.toString('latin1', Math.max(0, at + MARKER.length))
          resolve(t)
        }
        tail = buf.toString('latin1', Math.max(0, buf.length - MARKER.length + 1))
      }
      if (after !== null && /iex\([^)]*\)\d+> $/.test(after)) {
        term.listener = null
        promptBack()
      }
    }
  })
  const cpu0 = process.cpuUsage()
  const shell0 = treeCpu([term.pid])
  const app0 = treeCpu([appBeam])
  const wait0 = { node: runQueueMs(), beams: treeRunQueueMs([term.pid, appBeam]) }
  const t0 = performance.now()
  term.write(`${expr}; String.upcase("zzdonezz")\r`)
  let t1: number
  try {
    t1 = await done
  } finally {
    clearInterval(watchdog)
    peak = Math.max(peak, sampler.stop().peak)
  }
  const cpu = process.cpuUsage(cpu0)
  const ms = t1 - t0
  const shellCpu = treeCpu([term.pid]) - shell0
  const appCpu = treeCpu([appBeam]) - app0
  const wait = { node: runQueueMs() - wait0.node, beams: treeRunQueueMs([term.pid, appBeam]) - wait0.beams }
  const r: Throughput = {
    bytes: received,
    secs: ms / 1000,
    mbps: received / 1e6 / (ms / 1000),
    chunks,
    avgChunk: received / chunks,
    nodeCpuPct: ((cpu.user + cpu.system) / 1000 / ms) * 100,
    shellCpuPct: (shellCpu * 1000 / ms) * 100,
    appCpuPct: (appCpu * 1000 / ms) * 100,
    // CPU wait as a share of the phase: node's main thread, and all threads of both BEAMs summed
    nodeWaitPct: (wait.node / ms) * 100,
    beamWaitPct: (wait.beams / ms) * 100,
    rssPeakMiB: peak / MiB,
    rssDeltaMiB: (peak - rss0) / MiB,
  }
  if (term.side === 'berth') {
    r.cost = { ...cost, outputPct: (cost.output / ms) * 100, usPerChunk: (cost.output * 1000) / cost.chunks, recorderUsPerChunk: (cost.recorder * 1000) / cost.chunks, sendUsPerChunk: (cost.send * 1000) / cost.chunks }
    r.flow = { pauses: flow.pauses, pollResumes: flow.pollResumes, drainResumes: flow.drainResumes, pausedMs: flow.pausedMs, atPause: flow.atPause.slice(0, 50) }
    // The live session's recorder: the one written to during this test (its counts run since the session began).
    const recorders = [...recordersNow]
    r.recorderSkipped = recorders.reduce((n, x) => n + x.skippedBytes, 0)
    r.recorderTruncated = recorders.some((x) => x.truncated)
  }
  // Let the prompt come back before anything else is typed.
  await Promise.race([prompt, sleep(30_000)])
  term.listener = null
  return r
}

// ---------------------------------------------------------------------------------------------------------------
// Main

let d: TestDaemon | null = null
const opened = new Set<Term>()
let cleaning: Promise<void> | null = null
async function cleanup() {
  if (cleaning) return cleaning
  cleaning = (async () => {
    for (const t of opened) await t.close().catch(() => {})
    opened.clear()
    if (floorServer) {
      // ws's close() waits for every connection to end: one a failed open left behind would hold it for ever.
      for (const c of floorServer.clients) c.terminate()
      await new Promise((resolve) => floorServer!.close(resolve))
    }
    floorServer = null
    if (d) {
      const dir = d.dataDir
      await d.stop().catch((err: Error) => console.error('bench/terminal: stopping berth failed:', err))
      const left = processesNaming(dir)
      if (left.length) {
        console.error(`bench/terminal: ${left.length} process(es) left under ${dir}; killing them:\n${left.map((p) => `  ${p.pid} ${p.cmd.slice(0, 120)}`).join('\n')}`)
        killProcessesNaming(dir)
      }
      results.leftovers = left.length
      d = null
    }
  })()
  return cleaning
}
onInterrupt('bench/terminal', cleanup)

let floorUrl: string | null = null
async function open(side: Side) {
  const t = side === 'berth' ? await openBerth(d!) : side === 'floor' ? await openFloor(floorUrl!) : await openDirect(d!)
  opened.add(t)
  return t
}
async function close(t: Term) {
  opened.delete(t)
  await t.close()
}

const OUTPUTS: { key: string; label: string; expr: string }[] = [
  // what the brief asks for: 1 KiB lines, one IO.puts (a distribution round trip to the shell's group leader) each
  ...(opts.output ? [{ key: 'lines', label: `Hello.big_output(${opts.bytes})`, expr: `Hello.big_output(${opts.bytes})` }] : []),
  // the same bytes in one io request: the shell's tty writer, not per-line round trips, sets the pace
  ...(opts.bulk && opts.output ? [{ key: 'bulk', label: 'one IO.binwrite, same bytes', expr: `IO.binwrite(:binary.copy(String.duplicate("x", 1023) <> "\\n", ${Math.max(1, Math.round(opts.bytes / 1024))}))` }] : []),
]

interface Run {
  run: number
  order: Side[]
  echoOrder: Side[]
  echo?: Echo
  out: Record<string, Partial<Record<Side, Throughput>>>
  load1?: number
}
const results: {
  machine: { nproc: number; memGiB: number; cpu: string | undefined; node: string; loadBefore: number[] }
  opts: typeof opts
  runs: Run[]
  noDelay?: { client: boolean | null; server: boolean | null }
  leftovers?: number
} = { machine: { nproc: os.availableParallelism?.() ?? os.cpus().length, memGiB: os.totalmem() / 2 ** 30, cpu: os.cpus()[0]?.model, node: process.version, loadBefore: os.loadavg() }, opts, runs: [] }
try {
  const tarball = fs.readFileSync((await fixture('v1')).tarball)
  d = await startDaemon({ BERTH_MAX_SESSIONS_PER_APP: '20' })
  services = d.server.services
  wss = d.server.app.websocketServer
  // The server's end of each of berth's websockets, from its public 'connection' event (for TCP_NODELAY).
  wss.on('connection', (ws, req) => serverSockets.set(ws, req.socket))
  const json = { 'content-type': 'application/json' }
  const port = await freePort()
  await call(`${d.url}/v1/apps/${APP}/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port) }) })
  await call(`${d.url}/v1/apps/${APP}/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })
  const res = await upload(d.url, APP, tarball, { token: d.adminToken, query: 'deploy=true' })
  if (res.body?.deployment?.state !== 'succeeded') throw new Error(`deploying the fixture failed: ${res.text.slice(0, 500)}`)
  const appBeam = services.supervisor.status(APP).beamPid ?? services.supervisor.status(APP).pid ?? null
  floorUrl = await startFloor(d)

  for (let run = 1; run <= opts.runs; run++) {
    const order: Side[] = run % 2 ? ['berth', 'direct'] : ['direct', 'berth']
    // The floor takes part in the echo test only, its place in the order rotating with the runs.
    const echoOrder = [...order]
    echoOrder.splice((run - 1) % 3, 0, 'floor')
    const r: Run = { run, order, echoOrder, out: {} }
    let terms: Terms = {}
    for (const side of echoOrder) terms[side] = await open(side)
    if (run === 1) {
      // Nagle: is TCP_NODELAY set on both ends of berth's websocket? (ws calls setNoDelay() in setSocket.)
      const noDelay = (s: net.Socket | undefined) => (s ? noDelaySet.get(s) ?? null : null)
      const server = [...wss.clients][0]
      results.noDelay = { client: noDelay(clientSockets.get(terms.berth!.ws!)), server: noDelay(server && serverSockets.get(server)) }
    }
    r.echo = await echo(terms, echoOrder, opts.keys)
    await close(terms.floor!)
    delete terms.floor
    const e = r.echo as Required<Echo> & Record<Side, Required<EchoSide>>
    log(`run ${run} echo   berth median ${e.berth.median.toFixed(3)} ms p99 ${e.berth.p99.toFixed(2)} ms | floor median ${e.floor.median.toFixed(3)} ms p99 ${e.floor.p99.toFixed(2)} ms | direct median ${e.direct.median.toFixed(3)} ms p99 ${e.direct.p99.toFixed(2)} ms | berth/direct ${(e.berth.median / e.direct.median).toFixed(2)} berth/floor ${(e.berth.median / e.floor.median).toFixed(2)} floor/direct ${(e.floor.median / e.direct.median).toFixed(2)} | ping berth ${e.berth.ping.median.toFixed(3)} floor ${e.floor.ping.median.toFixed(3)} ms | split berth ${fmtSplit(e.berth.split)} floor ${fmtSplit(e.floor.split)} | loop delay p99 ${e.loopDelayP99Ms.toFixed(1)} ms, run-queue wait ${e.runQueueMs.toFixed(0)} ms of ${e.phaseMs.toFixed(0)} ms, load ${os.loadavg()[0].toFixed(1)}`)
    for (const [k, o] of OUTPUTS.entries()) {
      if (k > 0) {
        // Fresh sessions for each output test: the recording of a session stops at its 50 MiB cap, so a second
        // big output in the same session would run without the recorder.
        for (const side of order) await close(terms[side]!)
        terms = {}
        for (const side of order) terms[side] = await open(side)
      }
      const out: Partial<Record<Side, Throughput>> = (r.out[o.key] = {})
      for (const side of order) {
        const x = (out[side] = await throughput(terms[side]!, o.expr, appBeam))
        log(`run ${run} ${o.key.padEnd(5)}  ${side.padEnd(6)} ${x.mbps.toFixed(1)} MB/s ${x.secs.toFixed(2)} s, CPU % of a core: node ${x.nodeCpuPct.toFixed(0)}, shell BEAM ${x.shellCpuPct.toFixed(0)}, app BEAM ${x.appCpuPct.toFixed(0)}; CPU wait % node ${x.nodeWaitPct.toFixed(0)}, BEAMs ${x.beamWaitPct.toFixed(0)}; RSS peak ${x.rssPeakMiB.toFixed(0)} MiB (+${x.rssDeltaMiB.toFixed(0)})${x.flow ? `; pauses ${x.flow.pauses} (resumed by poll ${x.flow.pollResumes}, by drain ${x.flow.drainResumes}; ${x.flow.pausedMs.toFixed(0)} ms paused)` : ''}`)
      }
    }
    for (const side of order) await close(terms[side]!)
    r.load1 = os.loadavg()[0]
    results.runs.push(r)
  }
} catch (err) {
  console.error('bench/terminal: failed:', err)
  process.exitCode = 1
} finally {
  await cleanup()
}

function fmtSplit(x: Split) {
  return `${(x.toPty * 1000).toFixed(0)}/${(x.program * 1000).toFixed(0)}/${(x.toClient * 1000).toFixed(0)} µs`
}

function log(line: string) {
  process.stderr.write(`${line}\n`)
}

// ---------------------------------------------------------------------------------------------------------------
// Report

if (results.runs.length > 0) {
  // Every run that got here measured every side it reports.
  type FullRun = Run & { echo: Required<Echo> & Record<Side, Required<EchoSide>>; out: Record<string, Record<Side, Required<Throughput>>>; load1: number }
  const runs = results.runs as FullRun[]
  const m = (f: (r: FullRun) => number) => median(runs.map(f))
  const fmt = (x: number, dp = 2) => fmtDigits(x, dp)
  const rows: (string[] | null)[] = []
  const row = (metric: string, berth = '', direct = '', ratio = '', target = '', ok?: boolean) => rows.push([metric, berth, direct, ratio, target, ok === undefined ? '' : ok ? 'ok' : 'MISSED'])
  const sep = () => rows.push(null)

  // Ratios are per run (the two sides measured side by side), then the median over runs.
  const eb = m((r) => r.echo.berth.median)
  const eRatio = m((r) => r.echo.berth.median / r.echo.direct.median)
  row('echo median (ms)', fmt(eb, 3), fmt(m((r) => r.echo.direct.median), 3), `${fmt(eRatio)}×`, '≤ 1.3× and ≤ 5 ms', eRatio <= 1.3 && eb <= 5)
  row('  floor (bare ws relay) echo median (ms)', fmt(m((r) => r.echo.floor.median), 3), '', `${fmt(m((r) => r.echo.floor.median / r.echo.direct.median))}× floor/direct`)
  row('  berth / floor', '', '', `${fmt(m((r) => r.echo.berth.median / r.echo.floor.median))}×`)
  row('echo p99 (ms)', fmt(m((r) => r.echo.berth.p99)), fmt(m((r) => r.echo.direct.p99)), `${fmt(m((r) => r.echo.berth.p99 / r.echo.direct.p99))}×`)
  row(`keystrokes > 2 ms (of ${opts.keys})`, fmt(m((r) => r.echo.berth.over2ms), 0), fmt(m((r) => r.echo.direct.over2ms), 0))
  row('  berth: client → pty.write (ms)', fmt(m((r) => r.echo.berth.split.toPty), 3))
  row('  berth: pty.write → 1st output (ms)', fmt(m((r) => r.echo.berth.split.program), 3))
  row('  berth: 1st output → client (ms)', fmt(m((r) => r.echo.berth.split.toClient), 3))
  row('  berth output path per chunk (µs): all / recorder / ws send', `${fmt(m((r) => r.echo.outputUs), 0)} / ${fmt(m((r) => r.echo.recorderUs), 0)} / ${fmt(m((r) => r.echo.sendUs), 0)}`)
  row('  floor: client → pty.write / program / → client (ms)', `${fmt(m((r) => r.echo.floor.split.toPty), 3)} / ${fmt(m((r) => r.echo.floor.split.program), 3)} / ${fmt(m((r) => r.echo.floor.split.toClient), 3)}`)
  row('  ws ping→pong median / p99 (ms)', `${fmt(m((r) => r.echo.berth.ping.median), 3)} / ${fmt(m((r) => r.echo.berth.ping.p99))}`)
  row('  floor ws ping→pong median / p99 (ms)', `${fmt(m((r) => r.echo.floor.ping.median), 3)} / ${fmt(m((r) => r.echo.floor.ping.p99))}`)
  row('  event loop delay p99 / max (ms)', `${fmt(m((r) => r.echo.loopDelayP99Ms), 1)} / ${fmt(m((r) => r.echo.loopDelayMaxMs), 1)}`)
  row('  node main thread CPU wait (ms/phase)', `${fmt(m((r) => r.echo.runQueueMs), 0)} / ${fmt(m((r) => r.echo.phaseMs), 0)}`)
  for (const o of OUTPUTS) {
    const get = (side: Side, k: Exclude<keyof Throughput, 'cost' | 'flow' | 'recorderSkipped' | 'recorderTruncated'>) => m((r) => r.out[o.key]![side][k])
    const ratio = m((r) => r.out[o.key].berth.mbps / r.out[o.key].direct.mbps)
    sep()
    row(`output: ${o.label}`)
    row('  MB/s', fmt(get('berth', 'mbps'), 1), fmt(get('direct', 'mbps'), 1), `${fmt(ratio)}×`, '≥ 0.8×', ratio >= 0.8)
    row('  time (s)', fmt(get('berth', 'secs')), fmt(get('direct', 'secs')))
    row('  CPU, % of a core: node process', fmt(get('berth', 'nodeCpuPct'), 0), fmt(get('direct', 'nodeCpuPct'), 0))
    row('  CPU: remote shell BEAM', fmt(get('berth', 'shellCpuPct'), 0), fmt(get('direct', 'shellCpuPct'), 0))
    row('  CPU: app node BEAM', fmt(get('berth', 'appCpuPct'), 0), fmt(get('direct', 'appCpuPct'), 0))
    row('  waiting for a CPU, % of time: node main thread', fmt(get('berth', 'nodeWaitPct'), 0), fmt(get('direct', 'nodeWaitPct'), 0))
    row('  waiting for a CPU: BEAM threads (sum)', fmt(get('berth', 'beamWaitPct'), 0), fmt(get('direct', 'beamWaitPct'), 0))
    row('  berth output path, % of wall time', fmt(m((r) => r.out[o.key].berth.cost.outputPct), 1))
    row('  berth output path per chunk (µs): all / recorder / ws send', `${fmt(m((r) => r.out[o.key].berth.cost.usPerChunk), 0)} / ${fmt(m((r) => r.out[o.key].berth.cost.recorderUsPerChunk), 0)} / ${fmt(m((r) => r.out[o.key].berth.cost.sendUsPerChunk), 0)}`)
    row('  chunks (ws messages / pty reads)', fmt(get('berth', 'chunks'), 0), fmt(get('direct', 'chunks'), 0))
    row('  average chunk (bytes)', fmt(get('berth', 'avgChunk'), 0), fmt(get('direct', 'avgChunk'), 0))
    row('  peak RSS of this process (MiB) *', fmt(get('berth', 'rssPeakMiB'), 0), fmt(get('direct', 'rssPeakMiB'), 0))
    row('  peak RSS − RSS at start (MiB) *', fmt(get('berth', 'rssDeltaMiB'), 0), fmt(get('direct', 'rssDeltaMiB'), 0))
    row('  berth pauses (resumed by poll / drain)', `${fmt(m((r) => r.out[o.key].berth.flow.pauses), 0)} (${fmt(m((r) => r.out[o.key].berth.flow.pollResumes), 0)} / ${fmt(m((r) => r.out[o.key].berth.flow.drainResumes), 0)})`)
    row('  berth time paused (ms)', fmt(m((r) => r.out[o.key].berth.flow.pausedMs), 0))
  }

  const { machine } = results
  console.log(`\nberth terminal benchmark (berth from ${DIST}) — ${machine.nproc} CPUs (${machine.cpu}), ${machine.memGiB.toFixed(0)} GiB, Node ${machine.node}`)
  if (!opts.recording) console.log('DIAGNOSTIC RUN: --no-recording, berth\'s recorder was disabled (not what berth does)')
  console.log(`load average (1 min) before: ${machine.loadBefore[0].toFixed(1)}${machine.loadBefore[0] > machine.nproc * 0.75 ? ' — the machine was busy before the benchmark started; figures are noisy' : ''}; after each run (includes this benchmark's own BEAMs): ${runs.map((r) => r.load1.toFixed(1)).join(', ')}`)
  console.log(`median of ${runs.length} run(s); per run and side ${opts.keys} keystrokes (interleaved) and ${opts.bytes} bytes of output; ratio = berth/direct per run, median over runs`)
  console.log(textTable(['metric', 'berth', 'direct', 'ratio', 'target', ''], rows))
  console.log(`\n* RSS of this one process: berth runs in-process, so the berth figure includes the daemon, its websocket`)
  console.log(`  server and the client; the direct side runs in the same process with the idle daemon resident.`)
  console.log(`TCP_NODELAY on berth's websocket: client ${results.noDelay?.client}, server ${results.noDelay?.server}`)
  const pauses = runs.flatMap((r) => Object.values(r.out).flatMap((o) => o.berth.flow.atPause))
  if (pauses.length) {
    const bySocket = pauses.filter((p) => p.socket >= p.recorder).length
    console.log(`at pause: ${bySocket} of ${pauses.length} with the websocket buffer as the larger part, ${pauses.length - bySocket} with the recording's write buffer`)
  }
  const rec = runs.flatMap((r) => Object.values(r.out).map((o) => o.berth))
  console.log(`recording: ${rec.reduce((n, x) => n + x.recorderSkipped, 0)} bytes skipped in all; its 50 MiB size cap was reached in ${rec.filter((x) => x.recorderTruncated).length} of ${rec.length} output tests (from then on the recorder writes nothing)`)
  if (results.leftovers !== undefined) console.log(`processes left after stop: ${results.leftovers}`)
  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify(results, null, 2))
    console.log(`raw results: ${opts.json}`)
  }
}

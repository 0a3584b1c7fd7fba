// Console sessions with real processes: a remote IEx that evaluates and is hung up without leftovers, a
// user-quit shell, the shared console attach (Ctrl+C blocked, Ctrl+D detaches one viewer), flow control
// against a slow client, asciicast recordings, caps, idle timeout, retention and shutdown.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { after, before, describe, test } from 'node:test'
import pty from 'node-pty'
import { isBerthError, type BerthError } from '../src/errors.js'
import { TokenWatch } from '../src/auth/watch.js'
import { SessionManager, type Session, type SessionManagerDeps } from '../src/sessions/manager.js'
import { Recorder } from '../src/sessions/recorder.js'
import { HIGH_WATER_MARK, type TerminalSink } from '../src/sessions/terminal.js'
import { descendants, isSameProcess, procInfo, sleep, type ProcInfo } from '../src/supervision/proc.js'
import { freePort, processesUnder, startDaemon, tempDir, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'

const APP = 'hello'
const PROMPT = /iex\([^)]*\)\d+> $/

let d: TestDaemon
let port: number
let m: SessionManager
let ptmxBefore: number

/** A sink that keeps what it got (or only counts it) and whose bufferedAmount the test controls. */
class Sink implements TerminalSink {
  buffered = 0
  bytes = 0
  exits: { code: number | null; reason: string; ended?: string }[] = []
  private readonly chunks: Buffer[] = []
  private readonly hash = crypto.createHash('sha256')
  tail = ''

  constructor(private readonly keep = true) {}

  write(data: Buffer): void {
    this.bytes += data.length
    this.hash.update(data)
    if (this.keep) this.chunks.push(Buffer.from(data))
    this.tail = (this.tail + data.toString('latin1')).slice(-512)
  }

  bufferedAmount(): number {
    return this.buffered
  }

  exit(code: number | null, reason: string, ended?: BerthError): void {
    this.exits.push(ended ? { code, reason, ended: ended.code } : { code, reason })
  }

  text(from = 0): string {
    return Buffer.concat(this.chunks).subarray(from).toString('utf8')
  }

  digest(): string {
    return this.hash.copy().digest('hex')
  }

  async until(what: RegExp, opts: { from?: number; timeoutMs?: number } = {}): Promise<void> {
    const end = Date.now() + (opts.timeoutMs ?? 15_000)
    while (!(this.keep ? what.test(this.text(opts.from)) : what.test(this.tail))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got: ${JSON.stringify(this.keep ? this.text(opts.from).slice(-600) : this.tail)}`)
      await sleep(20)
    }
  }
}

function manager(over: Partial<SessionManagerDeps> = {}): SessionManager {
  const { db, paths, supervisor, apps, log, events } = d.server.services
  return new SessionManager({ db, paths, supervisor, apps, log, events, maxPerApp: 8, idleMs: 0, retention: { maxRecordings: 50 }, hangupGraceMs: 1000, ...over })
}

async function served(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) })
  return res.text()
}

function ptmxCount(): number {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === '/dev/ptmx'
    } catch {
      return false
    }
  }).length
}

function tree(pid: number): ProcInfo[] {
  const self = procInfo(pid)
  return [...(self ? [self] : []), ...descendants(pid)]
}

function groupMembers(pgid: number): number[] {
  return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => {
    const info = procInfo(p)
    return info !== null && info.pgid === pgid && info.state !== 'Z'
  })
}

async function assertGone(procs: ProcInfo[], pgid: number): Promise<void> {
  // Signals are delivered at once, but the kernel takes a moment to tear a process down.
  for (let i = 0; i < 50 && (procs.some((p) => isSameProcess(p.pid, p.startTicks)) || groupMembers(pgid).length > 0); i++) await sleep(20)
  assert.deepEqual(procs.filter((p) => isSameProcess(p.pid, p.startTicks)).map((p) => p.pid), [], 'no process of the session is left')
  assert.deepEqual(groupMembers(pgid), [], 'the process group of the session is empty')
}

/** Reads an asciicast v2 file: its header and the concatenated output events (never loading it whole). */
async function readCast(file: string): Promise<{ header: Record<string, unknown>; outputHash: string; output: string; kinds: Set<string>; resizes: string[]; monotonic: boolean }> {
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity })
  let header: Record<string, unknown> | null = null
  const hash = crypto.createHash('sha256')
  let output = ''
  const kinds = new Set<string>()
  const resizes: string[] = []
  let last = 0
  let monotonic = true
  for await (const line of rl) {
    if (!header) {
      header = JSON.parse(line) as Record<string, unknown>
      continue
    }
    const [t, kind, data] = JSON.parse(line) as [number, string, string]
    if (t < last) monotonic = false
    last = t
    kinds.add(kind)
    if (kind === 'o') {
      hash.update(data, 'utf8')
      if (output.length < 1_000_000) output += data
    }
    if (kind === 'r') resizes.push(data)
  }
  assert.ok(header, 'the recording has a header')
  return { header, outputHash: hash.digest('hex'), output, kinds, resizes, monotonic }
}

before(async () => {
  d = await startDaemon()
  port = await freePort()
  const put = (p: string, body: unknown) => call(`${d.url}${p}`, { method: 'PUT', token: d.adminToken, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  assert.equal((await put(`/v1/apps/${APP}/env`, { PORT: String(port), HELLO_DATA_DIR: appDataDir(path.join(d.dataDir, 'hello-data')) })).status, 200)
  assert.equal((await put(`/v1/apps/${APP}/settings`, { stableWindowMs: 500 })).status, 200)
  const res = await upload(d.url, APP, fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken, query: 'deploy=true' })
  assert.equal(res.status, 201, res.text)
  assert.equal(await served(), 'hello 0.1.0\n')
  ptmxBefore = ptmxCount()
  m = manager()
})

after(async () => {
  await m?.closeAll()
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [], 'no BEAM, epmd, run_erl, remote shell or to_erl is left behind')
})

describe('remote shell', () => {
  test('evaluates 1+41; closing it hangs up every process of the session and the node keeps serving', async () => {
    const sink = new Sink()
    const s = await m.openRemote(APP, 'alice', { cols: 120, rows: 40 }, sink)
    assert.match(s.id, /^\d{14}-[0-9a-f]{6}$/)
    await sink.until(PROMPT)
    const mark = sink.bytes
    s.input('1+41\r')
    await sink.until(/(?<!\d)42(?!\d)[\s\S]*iex\([^)]*\)2> $/, { from: mark })
    assert.throws(() => s.resize(0, 40), (err: unknown) => isBerthError(err) && err.code === 'VALIDATION_FAILED')
    assert.throws(() => s.resize(120, 1001), (err: unknown) => isBerthError(err) && err.code === 'VALIDATION_FAILED')
    s.resize(100, 30)
    assert.equal(m.active(APP), 1)
    assert.equal(m.get(APP, s.id)?.active, true)

    const procs = tree(s.pid)
    assert.ok(procs.some((p) => fs.readFileSync(`/proc/${p.pid}/comm`, 'utf8').startsWith('beam')), 'the remote shell is a BEAM of its own')
    const started = Date.now()
    await s.close()
    await assertGone(procs, s.pid)
    assert.ok(Date.now() - started < 1000, 'the hangup ends the remote shell without waiting for the SIGKILL grace')
    assert.deepEqual(sink.exits, [{ code: null, reason: 'closed' }])
    assert.equal(await served(), 'hello 0.1.0\n')
    assert.ok(d.server.services.supervisor.isUp(APP))

    const row = m.get(APP, s.id)!
    assert.equal(row.kind, 'remote')
    assert.equal(row.actor, 'alice')
    assert.equal(row.active, false)
    assert.equal(row.endReason, 'closed')
    assert.equal(row.bytesIn, 5)
    assert.equal(row.bytesOut, sink.bytes)
    assert.equal(row.recording, `sessions/${s.id}.cast`)
    assert.equal(m.active(APP), 0)

    const file = m.recordingPath(APP, s.id)!
    assert.equal(file, path.join(d.dataDir, 'apps', APP, 'sessions', `${s.id}.cast`))
    assert.equal(fs.statSync(file).mode & 0o777, 0o640)
    const cast = await readCast(file)
    assert.equal(cast.header.version, 2)
    assert.equal(cast.header.width, 120)
    assert.equal(cast.header.height, 40)
    assert.deepEqual(cast.header.env, { TERM: 'xterm-256color' })
    assert.equal(typeof cast.header.timestamp, 'number')
    assert.deepEqual([...cast.kinds].sort(), ['o', 'r'], 'output and resizes are recorded, input never is')
    assert.deepEqual(cast.resizes, ['100x30'])
    assert.ok(cast.monotonic)
    assert.equal(cast.output, sink.text(), 'the recording replays exactly what the client saw')
  })

  test('a shell the user quits (Ctrl+G, q) ends with exit; the node keeps running', async () => {
    const sink = new Sink()
    const s = await m.openRemote(APP, 'alice', { cols: 80, rows: 24 }, sink)
    await sink.until(PROMPT)
    const procs = tree(s.pid)
    s.input('\x07')
    await sink.until(/User switch command/)
    s.input('q\r')
    await s.ended
    assert.deepEqual(sink.exits, [{ code: 0, reason: 'exited' }])
    await assertGone(procs, s.pid)
    assert.equal(await served(), 'hello 0.1.0\n')
    assert.equal(m.get(APP, s.id)?.endReason, 'exited')
    assert.equal(m.get(APP, s.id)?.exitCode, 0)
  })

  test('flow control: a slow client pauses the shell, memory stays bounded and every byte arrives', async (t) => {
    const sink = new Sink(false)
    let maxBacklog = 0
    const write = sink.write.bind(sink)
    let xs = 0
    let counting = false
    sink.write = (data: Buffer) => {
      write(data)
      sink.buffered += data.length
      maxBacklog = Math.max(maxBacklog, sink.buffered)
      if (counting) for (const b of data) if (b === 0x78) xs++
    }
    const s: Session = await m.openRemote(APP, 'bob', { cols: 200, rows: 50 }, sink)
    // The "network" sends 2 MB/s: less than the remote shell produces unthrottled (3-7 MB/s here).
    const rate = 20_000
    const drain = setInterval(() => {
      sink.buffered = Math.max(0, sink.buffered - rate)
      s.drained()
    }, 10)
    let rssMax = 0
    const rssBefore = process.memoryUsage().rss
    const rss = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 50)
    try {
      await sink.until(PROMPT)
      counting = true
      const started = Date.now()
      s.input('Hello.big_output(20_000_000)\r')
      await sink.until(/:ok\S*\r\niex\([^)]*\)2> $/, { timeoutMs: 60_000 })
      const ms = Date.now() - started
      // 19531 lines of 1023 x and one of 255, plus the x of the "iex" prompt that follows.
      assert.equal(xs, 19531 * 1023 + 255 + 1)
      assert.ok(s.stats().pauses > 0, 'the pty was paused')
      assert.ok(maxBacklog <= HIGH_WATER_MARK + 256 * 1024, `the client's backlog stayed near the high-water mark (max ${maxBacklog})`)
      assert.ok(rssMax - rssBefore < 64 * 1024 * 1024, `RSS grew by ${rssMax - rssBefore} bytes`)
      t.diagnostic(`20 MB through a 2 MB/s client in ${ms} ms (${(20 / (ms / 1000)).toFixed(1)} MB/s), ${s.stats().pauses} pauses, max backlog ${maxBacklog} B, RSS +${((rssMax - rssBefore) / 1048576).toFixed(1)} MiB`)
    } finally {
      clearInterval(drain)
      clearInterval(rss)
      await s.close()
    }
    const cast = await readCast(m.recordingPath(APP, s.id)!)
    assert.equal(cast.outputHash, sink.digest(), 'the recording holds every byte the client got')
  })
})

describe('console attach', () => {
  test('viewers share the node console; Ctrl+C and Ctrl+G are blocked; Ctrl+D detaches one viewer', async () => {
    const a = new Sink()
    const b = new Sink()
    const va = await m.openAttach(APP, 'carol', { cols: 100, rows: 30 }, a)
    await a.until(/attached to the console of hello[\s\S]*Attaching to .*\(\^D to exit\)/)
    await sleep(300) // let the shell echo to_erl's ^L and berth rub it out
    const vb = await m.openAttach(APP, 'dave', { cols: 100, rows: 30 }, b)
    assert.equal(va.pid, vb.pid, 'one to_erl serves both viewers')
    const toErl = tree(va.pid)
    await b.until(/attached to the console of hello/)

    va.input('IO.puts("marker-" <> "attach")\r')
    await a.until(/\r\nmarker-attach\r\n/)
    await b.until(/\r\nmarker-attach\r\n/)
    assert.doesNotMatch(a.text(), /SyntaxError/, "to_erl's ^L does not spoil the first command")

    const mark = a.bytes
    va.input('\x03')
    va.input('\x07')
    await a.until(/Ctrl\+C and Ctrl\+G are blocked in attach mode/, { from: mark })
    await sleep(500)
    assert.doesNotMatch(a.text(mark), /BREAK|User switch/)
    assert.ok(d.server.services.supervisor.isUp(APP))
    assert.equal(await served(), 'hello 0.1.0\n')
    vb.input('IO.puts("still-" <> "here")\r')
    await a.until(/\r\nstill-here\r\n/)

    vb.input('\x04')
    await vb.ended
    assert.deepEqual(b.exits, [{ code: 0, reason: 'detached' }])
    assert.ok(toErl.every((p) => isSameProcess(p.pid, p.startTicks)), 'the other viewer keeps the console')
    va.input('IO.puts("after-" <> "detach")\r')
    await a.until(/\r\nafter-detach\r\n/)

    await va.close()
    assert.deepEqual(a.exits, [{ code: null, reason: 'closed' }])
    await assertGone(toErl, va.pid)
    assert.ok(d.server.services.supervisor.isUp(APP))
    assert.equal(await served(), 'hello 0.1.0\n')
    assert.equal(m.get(APP, va.id)?.kind, 'attach')
    assert.equal(m.get(APP, vb.id)?.endReason, 'detached')
    const cast = await readCast(m.recordingPath(APP, va.id)!)
    assert.equal(cast.output, a.text())
  })
})

describe('tokens', () => {
  test('a session opened with a token ends at once when the token is revoked or expires; a dead token opens none', async () => {
    const { tokens, log } = d.server.services
    const watch = new TokenWatch(tokens, log, 50)
    const mt = manager({ tokenWatch: watch })
    const waitExit = async (sink: Sink, ms: number) => {
      for (const end = Date.now() + ms; sink.exits.length === 0 && Date.now() < end; ) await sleep(5)
    }
    try {
      const { info } = tokens.create({ name: 'sess-revoke', scopes: ['console'] })
      const sink = new Sink()
      const s = await mt.openRemote(APP, info, { cols: 80, rows: 24 }, sink)
      await sink.until(PROMPT)
      assert.equal(s.actor, 'sess-revoke')
      assert.equal(watch.size, 1)
      const procs = tree(s.pid)
      tokens.revoke('sess-revoke')
      const t0 = Date.now()
      await waitExit(sink, 2000)
      assert.ok(Date.now() - t0 < 1000, `the sink heard of the revocation after ${Date.now() - t0} ms`)
      assert.deepEqual(sink.exits, [{ code: null, reason: 'token revoked', ended: 'UNAUTHORIZED' }])
      await s.ended
      await assertGone(procs, s.pid)
      assert.equal(sink.exits.length, 1, 'told once')
      assert.equal(mt.get(APP, s.id)?.endReason, 'token revoked')
      assert.equal(watch.size, 0, 'the hold was released')
      assert.ok(await served())
      const before = mt.list(APP).length
      await assert.rejects(mt.openRemote(APP, info, { cols: 80, rows: 24 }, new Sink()), (err: unknown) => isBerthError(err) && err.code === 'UNAUTHORIZED' && /was revoked/.test(err.message))
      assert.equal(mt.list(APP).length, before, 'no session was recorded for a revoked token')

      const brief = tokens.create({ name: 'sess-expire', scopes: ['console'], lifetimeMs: 3000 }).info
      const viewer = new Sink()
      const a = await mt.openAttach(APP, brief, { cols: 80, rows: 24 }, viewer)
      await waitExit(viewer, 6000)
      const late = Date.now() - Date.parse(brief.expiresAt!)
      assert.ok(late >= 0 && late < 1000, `ended ${late} ms after the expiry`)
      assert.deepEqual(viewer.exits, [{ code: null, reason: 'token expired', ended: 'UNAUTHORIZED' }])
      await a.ended
      assert.equal(mt.get(APP, a.id)?.endReason, 'token expired')
      assert.equal(mt.active(APP), 0)
    } finally {
      await mt.closeAll()
      watch.close()
    }
  })
})

describe('limits', () => {
  test('sessions are capped per app, and need a deployed, running app', async () => {
    const capped = manager({ maxPerApp: 2 })
    const sinks = [new Sink(), new Sink(), new Sink()]
    const one = await capped.openAttach(APP, 'e', { cols: 80, rows: 24 }, sinks[0]!)
    const two = await capped.openAttach(APP, 'e', { cols: 80, rows: 24 }, sinks[1]!)
    await assert.rejects(capped.openRemote(APP, 'e', { cols: 80, rows: 24 }, sinks[2]!), (err: unknown) => isBerthError(err) && err.code === 'TOO_MANY_SESSIONS' && err.status === 429)
    await assert.rejects(capped.openAttach('nope', 'e', { cols: 80, rows: 24 }, sinks[2]!), (err: unknown) => isBerthError(err) && err.code === 'NOT_DEPLOYED')
    await assert.rejects(capped.openAttach(APP, 'e', { cols: 0, rows: 24 }, sinks[2]!), (err: unknown) => isBerthError(err) && err.code === 'VALIDATION_FAILED')
    await Promise.all([one.close(), two.close()])
    assert.equal(capped.active(APP), 0)
  })

  test('a console held by a to_erl outside berth is refused as busy', async () => {
    const rel = path.join(d.dataDir, 'apps', APP, 'current')
    const erts = fs.readdirSync(rel).find((f) => f.startsWith('erts-'))!
    const outside = pty.spawn(path.join(rel, erts, 'bin', 'to_erl'), [`${path.join(d.dataDir, 'apps', APP, 'shared', 'pipe')}/`], { cols: 80, rows: 24, cwd: d.dataDir, env: {}, encoding: null })
    let seen = ''
    outside.onData((b) => (seen += b.toString()))
    const gone = new Promise((resolve) => outside.onExit(resolve))
    try {
      while (!seen.includes('^L')) await sleep(20)
      await assert.rejects(m.openAttach(APP, 'e', { cols: 80, rows: 24 }, new Sink()), (err: unknown) => isBerthError(err) && err.code === 'CONSOLE_BUSY')
    } finally {
      outside.write('\x7f') // rub out to_erl's ^L, as berth does
      await sleep(200)
      outside.write('\x04')
      await gone
    }
  })

  test('idle sessions are closed with a notice', async () => {
    const idle = manager({ idleMs: 1500 })
    const ra = new Sink()
    const aa = new Sink()
    const [r, a] = await Promise.all([idle.openRemote(APP, 'f', { cols: 80, rows: 24 }, ra), idle.openAttach(APP, 'f', { cols: 80, rows: 24 }, aa)])
    const procs = tree(r.pid)
    await Promise.all([r.ended, a.ended])
    for (const s of [ra, aa]) {
      assert.match(s.text(), /\[berth\] session idle for 2 s, closing/)
      assert.equal(s.exits[0]?.reason, 'idle')
    }
    await assertGone(procs, r.pid)
  })
})

describe('recordings', () => {
  test('UTF-8 split across reads is kept whole; the size cap ends the recording with a marker', async () => {
    const dir = tempDir('berth-cast-')
    try {
      const rec = new Recorder({ file: path.join(dir, 'a.cast'), cols: 80, rows: 24, title: 't' })
      const bytes = Buffer.from('é€😀!')
      for (const b of bytes) rec.output(Buffer.from([b]))
      await rec.close()
      assert.equal((await readCast(path.join(dir, 'a.cast'))).output, 'é€😀!')

      const capped = new Recorder({ file: path.join(dir, 'b.cast'), cols: 80, rows: 24, title: 't', maxBytes: 4096 })
      for (let i = 0; i < 100; i++) capped.output(Buffer.from('y'.repeat(100)))
      await capped.close()
      const cast = await readCast(path.join(dir, 'b.cast'))
      assert.ok(fs.statSync(path.join(dir, 'b.cast')).size <= 4096)
      assert.match(cast.output, /\[recording truncated: size limit of 4096 bytes reached\]\r\n$/)
      assert.throws(() => new Recorder({ file: path.join(dir, 'b.cast'), cols: 80, rows: 24, title: 't' }), /EEXIST/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('retention keeps the newest recordings per app; older rows stay without a file', async () => {
    const keep2 = manager({ retention: { maxRecordings: 2 } })
    const ids: string[] = []
    for (let i = 0; i < 3; i++) {
      const s = await keep2.openAttach(APP, 'g', { cols: 80, rows: 24 }, new Sink())
      ids.push(s.id)
      await s.close()
    }
    const files = fs.readdirSync(path.join(d.dataDir, 'apps', APP, 'sessions')).sort()
    assert.deepEqual(files, [`${ids[1]}.cast`, `${ids[2]}.cast`].sort())
    const rows = keep2.list(APP)
    assert.equal(rows[0]?.id, ids[2], 'newest first')
    assert.equal(rows.find((r) => r.id === ids[0])?.recording, null)
    assert.equal(keep2.recordingPath(APP, ids[0]!), null)
    assert.ok(rows.length >= 6, 'every session keeps its row')
  })
})

describe('node stops', () => {
  test('attached viewers and remote shells end when the node stops', async () => {
    const { supervisor, apps } = d.server.services
    const rs = new Sink()
    const as = new Sink()
    const r = await m.openRemote(APP, 'i', { cols: 80, rows: 24 }, rs)
    const a = await m.openAttach(APP, 'i', { cols: 80, rows: 24 }, as)
    await rs.until(PROMPT)
    const procs = [...tree(r.pid), ...tree(a.pid)]
    const release = supervisor.status(APP).release!
    await supervisor.stop(APP, apps.settings(APP))
    await Promise.all([r.ended, a.ended])
    assert.deepEqual(as.exits, [{ code: 0, reason: 'console closed' }])
    assert.deepEqual(rs.exits, [{ code: null, reason: 'node stopped' }])
    assert.match(rs.text(), /\[berth\] the node of hello stopped; closing this shell/)
    await assertGone(procs, r.pid)
    await assert.rejects(m.openRemote(APP, 'i', { cols: 80, rows: 24 }, new Sink()), (err: unknown) => isBerthError(err) && err.code === 'NODE_NOT_RUNNING')
    await supervisor.start(APP, release, apps.settings(APP))
    await supervisor.verify(APP, apps.settings(APP))
    assert.equal(await served(), 'hello 0.1.0\n')
  })
})

describe('shutdown', () => {
  test('closeAll ends every session, refuses new ones, and leaves no pty open', async () => {
    const rs = new Sink()
    const as = new Sink()
    const r = await m.openRemote(APP, 'h', { cols: 80, rows: 24 }, rs)
    const a = await m.openAttach(APP, 'h', { cols: 80, rows: 24 }, as)
    await rs.until(PROMPT)
    const procs = [...tree(r.pid), ...tree(a.pid)]
    await m.closeAll('shutdown')
    assert.deepEqual(rs.exits, [{ code: null, reason: 'shutdown' }])
    assert.deepEqual(as.exits, [{ code: null, reason: 'shutdown' }])
    await assertGone(procs, r.pid)
    await assert.rejects(m.openAttach(APP, 'h', { cols: 80, rows: 24 }, new Sink()), (err: unknown) => isBerthError(err) && err.code === 'SHUTTING_DOWN')
    assert.ok(d.server.services.supervisor.isUp(APP))
    assert.equal(ptmxCount(), ptmxBefore, 'every pty master was closed')
  })
})

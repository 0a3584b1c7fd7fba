// The per-app proxy process: one haproxy per app with the proxy setting, started detached (its own session,
// so berth's SIGTERM or kill -9 never reaches it), re-adopted at berth's start from its pid record, restarted
// when it dies, and switched between instance slots through its runtime socket, without a reload.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { replaceFileSync } from '../fsutil.js'
import type { Paths, Slot } from '../paths.js'
import type { EventStore } from '../store/events.js'
import { isSameProcess, procInfo, signal, sleep, waitUntil } from '../supervision/proc.js'
import { BACKEND, checkSilent, parseSessions, renderConfig, runtimeCommand, switchCommands, type SlotTarget } from './haproxy.js'

export interface ProxyDeps {
  paths: Paths
  events: EventStore
  log: Logger
  /** The haproxy executable. */
  haproxy: string
  /** How often a proxy's process is checked (and restarted when it died). */
  watchMs?: number
  /** haproxy's own output is cut back to nothing past this size (it logs warnings only). */
  logMaxBytes?: number
}

/** What berth keeps of a running proxy in apps/APP/proxy/state.json: enough to find it again after a restart. */
interface ProxyRecord {
  pid: number
  startTicks: number
  listen: string
  live: SlotTarget | null
  startedAt: string
  restarts: number
  lastExit: string | null
}

export interface ProxyStatus {
  listen: string
  state: 'running' | 'down'
  pid: number | null
  startedAt: string | null
  /** Times berth found it dead and started it again. */
  restarts: number
  lastExit: string | null
}

/** One instance behind the proxy, as status shows it. */
export interface ProxiedInstance {
  slot: Slot
  port: number
  release: string | null
  pid: number | null
  startedAt: string | null
}

/** `proxy` of GET /v1/apps/{app}: the listener and the instances behind it. */
export interface ProxyView extends ProxyStatus {
  live: ProxiedInstance | null
  starting: ProxiedInstance | null
  draining: (ProxiedInstance & { drainUntil: string; remainingMs: number }) | null
}

const RUNTIME_TIMEOUT_MS = 2000
const START_TIMEOUT_MS = 5000

export class ProxyManager {
  private readonly procs = new Map<string, ProxyRecord>()
  private readonly restarting = new Set<string>()
  /** Apps found to have no state.json: status runs on every GET of an app, and only this class writes the file. */
  private readonly noRecord = new Set<string>()
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly deps: ProxyDeps) {}

  private dir(app: string): string {
    return this.deps.paths.proxy(app)
  }

  /** The runtime socket; relative to the proxy directory would be shorter, but haproxy resolves it from its cwd. */
  socket(app: string): string {
    return path.join(this.dir(app), 'admin.sock')
  }

  private logFile(app: string): string {
    return path.join(this.deps.paths.log(app), 'haproxy.log')
  }

  status(app: string): ProxyStatus | null {
    const r = this.procs.get(app) ?? this.readRecord(app)
    if (!r) return null
    const up = isSameProcess(r.pid, r.startTicks)
    return { listen: r.listen, state: up ? 'running' : 'down', pid: up ? r.pid : null, startedAt: up ? r.startedAt : null, restarts: r.restarts, lastExit: r.lastExit }
  }

  /** The slot the proxy sends new connections to, as berth last set it. */
  liveSlot(app: string): SlotTarget | null {
    return (this.procs.get(app) ?? this.readRecord(app))?.live ?? null
  }

  isRunning(app: string): boolean {
    const r = this.procs.get(app)
    return !!r && isSameProcess(r.pid, r.startTicks)
  }

  /**
   * Makes the app's proxy run on `listen` and send new connections to `live`: adopts or starts haproxy, and
   * applies `live` through the runtime socket when it already ran. A changed listen address restarts it.
   */
  async ensure(app: string, listen: string, live: SlotTarget | null): Promise<void> {
    let r = this.procs.get(app) ?? this.adoptOne(app)
    if (r && (!isSameProcess(r.pid, r.startTicks) || r.listen !== listen)) {
      if (isSameProcess(r.pid, r.startTicks)) await this.kill(app, r)
      r = await this.start(app, listen, live, r)
    } else if (!r) {
      r = await this.start(app, listen, live, null)
    }
    if (live) await this.switchTo(app, live)
    this.watch()
  }

  /** Sends new connections to `to` and none to the other slot; connections already open keep their instance. */
  async switchTo(app: string, to: SlotTarget): Promise<void> {
    const r = this.procs.get(app)
    if (!r) throw problem('PROXY_UNREACHABLE', `The proxy of "${app}" is not running.`)
    // The config first: a haproxy that dies right after the switch comes back pointing at `to`.
    r.live = to
    this.writeConfig(app, r)
    this.writeRecord(app, r)
    for (const c of switchCommands(to)) checkSilent(c, await runtimeCommand(this.socket(app), c, RUNTIME_TIMEOUT_MS))
  }

  /** Open sessions (requests in flight, websockets) on a slot's server. */
  async sessions(app: string, slot: Slot): Promise<number> {
    const csv = await runtimeCommand(this.socket(app), `show stat -1 4 -1`, RUNTIME_TIMEOUT_MS)
    return parseSessions(csv).get(slot) ?? 0
  }

  /** Ends every connection still open on a slot (the websockets a drain could not wait out). */
  async closeSessions(app: string, slot: Slot): Promise<void> {
    const c = `shutdown sessions server ${BACKEND}/${slot}`
    checkSilent(c, await runtimeCommand(this.socket(app), c, RUNTIME_TIMEOUT_MS))
  }

  /**
   * Waits until the slot has no open session or the drain time is over, then closes what is left. Answers
   * how many sessions were cut. `signal` (berth shutting down) ends the wait without closing anything.
   */
  async drain(app: string, slot: Slot, untilMs: number, signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (signal?.aborted) throw problem('ABORTED', 'the drain was interrupted: berth is shutting down')
      const open = await this.sessions(app, slot)
      if (open === 0) return 0
      if (Date.now() >= untilMs) {
        await this.closeSessions(app, slot)
        return open
      }
      await sleep(Math.min(100, Math.max(0, untilMs - Date.now())))
    }
  }

  /** Stops the app's proxy (the proxy setting was turned off); its listener goes away with it. */
  async stop(app: string): Promise<void> {
    const r = this.procs.get(app) ?? this.adoptOne(app)
    if (r && isSameProcess(r.pid, r.startTicks)) await this.kill(app, r)
    this.procs.delete(app)
    fs.rmSync(path.join(this.dir(app), 'state.json'), { force: true })
    this.deps.log.info({ app }, 'proxy stopped')
  }

  /** At berth's start: every app whose proxy record names a running haproxy gets it back, untouched. */
  adopt(apps: string[]): string[] {
    const found: string[] = []
    for (const app of apps) if (this.adoptOne(app)) found.push(app)
    if (found.length > 0) this.watch()
    return found
  }

  private adoptOne(app: string): ProxyRecord | null {
    const r = this.readRecord(app)
    if (!r) return null
    if (isSameProcess(r.pid, r.startTicks)) {
      // A reused pid with the same start time is all but impossible; a process that is not haproxy is not ours.
      if (isHaproxy(r.pid, this.deps.haproxy)) this.deps.log.info({ app, proxyPid: r.pid, listen: r.listen }, 're-adopted running proxy')
      else r.startTicks = -1
    }
    this.procs.set(app, r)
    return r
  }

  private readRecord(app: string): ProxyRecord | null {
    if (this.noRecord.has(app)) return null
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir(app), 'state.json'), 'utf8')) as ProxyRecord
    } catch {
      this.noRecord.add(app)
      return null
    }
  }

  private writeRecord(app: string, r: ProxyRecord): void {
    this.noRecord.delete(app)
    // Synced: after a power loss a torn state.json would hide a haproxy that still holds the listener.
    replaceFileSync(path.join(this.dir(app), 'state.json'), JSON.stringify(r), 0o640)
  }

  private writeConfig(app: string, r: Pick<ProxyRecord, 'listen' | 'live'>): string {
    const file = path.join(this.dir(app), 'haproxy.cfg')
    replaceFileSync(file, renderConfig({ listen: r.listen, socket: this.socket(app), live: r.live }), 0o640)
    return file
  }

  private async start(app: string, listen: string, live: SlotTarget | null, prev: ProxyRecord | null): Promise<ProxyRecord> {
    const { log } = this.deps
    fs.mkdirSync(this.dir(app), { recursive: true, mode: 0o750 })
    fs.mkdirSync(this.deps.paths.log(app), { recursive: true, mode: 0o750 })
    const cfg = this.writeConfig(app, { listen, live: live ?? prev?.live ?? null })
    this.capLog(app)
    const out = fs.openSync(this.logFile(app), 'a', 0o640)
    // Foreground (-db) in a session of its own: berth's exit or signals never reach it; it outlives berth.
    const child = spawn(this.deps.haproxy, ['-db', '-f', cfg], { cwd: this.dir(app), detached: true, stdio: ['ignore', out, out] })
    fs.closeSync(out)
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!))
      child.once('error', (err) => reject(problem('PROXY_START_FAILED', `haproxy could not be started (${(err as NodeJS.ErrnoException).code ?? err.message}); install it (apt-get install haproxy) or set BERTH_HAPROXY.`)))
    })
    child.unref()
    const r: ProxyRecord = { pid, startTicks: procInfo(pid)?.startTicks ?? 0, listen, live: live ?? prev?.live ?? null, startedAt: new Date().toISOString(), restarts: prev?.restarts ?? 0, lastExit: prev?.lastExit ?? null }
    const ready = await waitUntil(() => !isSameProcess(pid, r.startTicks) || fs.existsSync(this.socket(app)), START_TIMEOUT_MS, 20)
    let answered = false
    const deadline = Date.now() + START_TIMEOUT_MS
    while (ready && !answered && Date.now() < deadline && isSameProcess(pid, r.startTicks)) {
      answered = await runtimeCommand(this.socket(app), 'show info', RUNTIME_TIMEOUT_MS).then((a) => a.includes('Pid:'), () => false)
      if (!answered) await sleep(50)
    }
    if (!answered) {
      signal(pid, 'SIGKILL')
      throw problem('PROXY_START_FAILED', `haproxy for "${app}" did not start on ${listen}: ${this.logTail(app) || 'no output'}. Check that nothing else listens there (and, below port 1024, that berth has CAP_NET_BIND_SERVICE).`, { listen })
    }
    this.procs.set(app, r)
    this.writeRecord(app, r)
    log.info({ app, proxyPid: pid, listen }, 'proxy started')
    this.deps.events.record({ app, actor: 'berth', action: 'proxy.start', outcome: 'ok', detail: { listen, pid } })
    return r
  }

  private async kill(app: string, r: ProxyRecord): Promise<void> {
    signal(r.pid, 'SIGTERM')
    if (!(await waitUntil(() => !isSameProcess(r.pid, r.startTicks), 5000, 50))) {
      signal(r.pid, 'SIGKILL')
      await waitUntil(() => !isSameProcess(r.pid, r.startTicks), 5000, 50)
    }
    this.deps.log.info({ app, proxyPid: r.pid }, 'proxy process ended')
  }

  /** One check of every proxy: a dead one is started again, pointing at the live instance it had. */
  async check(): Promise<void> {
    for (const [app, r] of this.procs) {
      if (this.restarting.has(app) || isSameProcess(r.pid, r.startTicks)) continue
      this.restarting.add(app)
      const why = `${new Date().toISOString()} haproxy (pid ${r.pid}) exited while it should run`
      this.deps.log.warn({ app, proxyPid: r.pid }, 'proxy died: starting it again')
      this.deps.events.record({ app, actor: 'berth', action: 'proxy.exit', outcome: 'error', detail: { pid: r.pid } })
      try {
        await this.start(app, r.listen, r.live, { ...r, restarts: r.restarts + 1, lastExit: why })
      } catch (err) {
        this.deps.log.error({ app, err }, 'could not restart the proxy')
        Object.assign(r, { restarts: r.restarts + 1, lastExit: why })
      } finally {
        this.restarting.delete(app)
      }
    }
    for (const app of this.procs.keys()) this.capLog(app)
  }

  private watch(): void {
    if (this.timer) return
    this.timer = setInterval(() => void this.check(), this.deps.watchMs ?? 500)
    this.timer.unref()
  }

  /** haproxy keeps its log file open in append mode: cutting it in place keeps its writes going to the file. */
  private capLog(app: string): void {
    const file = this.logFile(app)
    const max = this.deps.logMaxBytes ?? 1024 * 1024
    try {
      if ((fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0) <= max) return
      fs.copyFileSync(file, `${file}.1`)
      fs.truncateSync(file, 0)
    } catch {
      // a full disk must not stop the watch
    }
  }

  private logTail(app: string): string {
    try {
      return fs.readFileSync(this.logFile(app), 'utf8').trim().split('\n').slice(-3).join(' / ').slice(0, 500)
    } catch {
      return ''
    }
  }

  /** berth stops: the proxies keep running (and forwarding); a restarted berth adopts them. */
  detach(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.procs.clear()
  }

  /** For tests: stop every proxy berth knows of. */
  async stopAll(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    for (const app of [...this.procs.keys()]) await this.stop(app)
  }
}

/** The pid record could name a reused pid: only a process running the haproxy executable is ours. */
function isHaproxy(pid: number, bin: string): boolean {
  try {
    const exe = fs.readlinkSync(`/proc/${pid}/exe`)
    return path.basename(exe) === path.basename(bin) || exe === bin
  } catch {
    return false
  }
}

/** What the deployer needs of the proxy: the seam between deploy and the haproxy processes. */
export type ProxyControl = Pick<ProxyManager, 'ensure' | 'switchTo' | 'drain' | 'stop' | 'status' | 'adopt' | 'isRunning'>

/** A free port on loopback for a new instance (the kernel picks it; the instance binds it a moment later). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', (err) => reject(problem('INTERNAL', `no free loopback port for a new instance: ${err.message}`)))
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

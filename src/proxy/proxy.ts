// The per-app proxy process: one haproxy per app with the proxy setting, started detached (its own session,
// so berth's SIGTERM or kill -9 never reaches it), re-adopted at berth's start from its pid record, restarted
// when it dies, and switched between instance slots through its runtime socket, without a reload. A new
// listen address gets a new haproxy beside the old one, which finishes its connections and exits.
// Which slot it routes to is not kept here: the instances module owns it (ProxyDeps.routes).

import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { replaceFileSync } from '../fsutil.js'
import type { Paths, Slot } from '../paths.js'
import type { EventStore } from '../store/events.js'
import { isSameProcess, procInfo, signal, sleep, waitUntil } from '../process/proc.js'
import { capLogFile, endHaproxy, isHaproxy, logTail } from './haproxy-proc.js'
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
  /** What each app's proxy routes to (instances/instances.ts): read at every (re)start, written before every switch. */
  routes: ProxyRoutes
  /** How haproxy is started (isolation/launch.ts engine: without the apps' groups); default: as it is. */
  launch?: (cmd: string, args: string[]) => { file: string; args: string[] }
}

/** The route's owner, as the proxy needs it. */
export interface ProxyRoutes {
  routed(app: string): SlotTarget | null
  route(app: string, to: SlotTarget | null): void
}

/**
 * What berth keeps of a running proxy process in apps/APP/proxy/state.json: enough to find it again after a
 * restart. (A berth from before routes were in berth.db wrote `live` here too; it is dropped when read.)
 */
interface ProxyRecord {
  pid: number
  startTicks: number
  listen: string
  startedAt: string
  restarts: number
  lastExit: string | null
  /** This process's runtime socket; absent in records of a proxy started before each had its own. */
  socket?: string
  /** How long it lets connections finish once told to stop listening (haproxy's hard-stop-after). */
  drainMs?: number
}

/** What ensure needs of the app's proxy setting. */
export interface ProxyTarget {
  listen: string
  drainTimeoutMs: number
}

/** A proxy replaced by one on a new address, finishing the connections it has: it exits by itself. */
interface Retiring {
  r: ProxyRecord
  /** Past this, berth ends it (haproxy's own hard-stop-after should have done so already). */
  untilMs: number
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
export interface ProxyView extends Omit<ProxyStatus, 'listen'> {
  /** The app's own listener; null for an app only on the edge (proxy.hosts). */
  listen: string | null
  live: ProxiedInstance | null
  starting: ProxiedInstance | null
  draining: (ProxiedInstance & { drainUntil: string; remainingMs: number }) | null
}

const RUNTIME_TIMEOUT_MS = 2000
const START_TIMEOUT_MS = 5000
/** Records written before drainMs was kept: the setting's default. */
const DEFAULT_DRAIN_MS = 30_000
const LEGACY_SOCKET = 'admin.sock'

export class ProxyManager {
  private readonly procs = new Map<string, ProxyRecord>()
  private readonly restarting = new Set<string>()
  private readonly retiring = new Map<string, Retiring>()
  /** Apps found to have no state.json: status runs on every GET of an app, and only this class writes the file. */
  private readonly noRecord = new Set<string>()
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly deps: ProxyDeps) {}

  private dir(app: string): string {
    return this.deps.paths.proxy(app)
  }

  /**
   * A proxy's runtime socket. Each haproxy gets a path of its own: one that replaced another's would leave that
   * one unreachable, and a new one that fails to start would have taken the old one's with it. Absolute,
   * because haproxy resolves it from its cwd.
   */
  private socketOf(app: string, r: ProxyRecord): string {
    return path.join(this.dir(app), path.basename(r.socket ?? LEGACY_SOCKET))
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

  isRunning(app: string): boolean {
    const r = this.procs.get(app)
    return !!r && isSameProcess(r.pid, r.startTicks)
  }

  /**
   * Makes the app's proxy run on `target.listen` and send new connections to `live`: adopts or starts haproxy,
   * and applies `live` through the runtime socket when it already ran. For a changed listen address a new
   * haproxy starts first; only once it answers does the old one stop listening, and it keeps the connections
   * it has until they finish or the drain time is over (requests in flight are not cut). If the new one
   * cannot start (the address is taken), the old one goes on serving as before and the error is the answer.
   */
  async ensure(app: string, target: ProxyTarget, live: SlotTarget | null): Promise<void> {
    let r = this.procs.get(app) ?? this.adoptOne(app)
    const drainMs = target.drainTimeoutMs
    if (r && isSameProcess(r.pid, r.startTicks) && r.listen !== target.listen) {
      const old = r
      r = await this.start(app, target.listen, live, { ...old, drainMs })
      this.retire(app, old, drainMs)
    } else if (r && !isSameProcess(r.pid, r.startTicks)) {
      r = await this.start(app, target.listen, live, { ...r, drainMs })
    } else if (!r) {
      r = await this.start(app, target.listen, live, { drainMs })
    } else if (r.drainMs !== drainMs) {
      // Applies at its next start (the config is what a restarted haproxy reads); a running one keeps its own.
      r.drainMs = drainMs
      this.writeRecord(app, r)
    }
    if (live) await this.switchTo(app, live)
    this.watch()
  }

  /**
   * Tells a replaced haproxy to stop listening and finish what it has (SIGUSR1: haproxy's soft stop); it exits
   * when its last connection closes, by its hard-stop-after (written into its config) at the latest.
   */
  private retire(app: string, old: ProxyRecord, drainMs: number): void {
    this.retiring.set(app, { r: old, untilMs: Date.now() + (old.drainMs ?? drainMs) + 5000 })
    signal(old.pid, 'SIGUSR1')
    this.deps.log.info({ app, proxyPid: old.pid, listen: old.listen }, 'the proxy moved: the old one stopped listening and finishes its connections')
    this.deps.events.record({ app, actor: 'berth', action: 'proxy.retire', outcome: 'ok', detail: { listen: old.listen, pid: old.pid } })
  }

  /** Ends a replaced haproxy that is still finishing its connections (its drain is over, or the proxy goes). */
  private async endRetiring(app: string): Promise<void> {
    const old = this.retiringOf(app)
    if (old) await this.kill(app, old)
    this.retiringOf(app)
  }

  /** The replaced haproxy still finishing its connections, if any (for its sessions and the end of a drain). */
  private retiringOf(app: string): ProxyRecord | null {
    const t = this.retiring.get(app)
    if (!t) return null
    if (isSameProcess(t.r.pid, t.r.startTicks)) return t.r
    this.retiring.delete(app)
    fs.rmSync(this.socketOf(app, t.r), { force: true })
    return null
  }

  /** Sends new connections to `to` and none to the other slot; connections already open keep their instance. */
  async switchTo(app: string, to: SlotTarget): Promise<void> {
    const r = this.procs.get(app)
    if (!r) throw problem('PROXY_UNREACHABLE', `The proxy of "${app}" is not running.`)
    // The route, then the config: a haproxy that dies right after the switch comes back pointing at `to`, and a
    // berth killed before the runtime switch has its nodes row (still the old instance) win at its start.
    this.deps.routes.route(app, to)
    this.writeConfig(app, r, to)
    for (const c of switchCommands(to)) checkSilent(c, await runtimeCommand(this.socketOf(app, r), c, RUNTIME_TIMEOUT_MS))
  }

  /**
   * Open sessions (requests in flight, websockets) on a slot's server. A replaced proxy still finishing its
   * connections counts as one: it closed its runtime socket with its listeners, so what it carries cannot be
   * asked, and a drain that looked only at the new one would stop an instance the old one still sends to.
   */
  async sessions(app: string, slot: Slot): Promise<number> {
    const r = this.procs.get(app)
    if (!r) throw problem('PROXY_UNREACHABLE', `The proxy of "${app}" is not running.`)
    const csv = await runtimeCommand(this.socketOf(app, r), `show stat -1 4 -1`, RUNTIME_TIMEOUT_MS)
    return (parseSessions(csv).get(slot) ?? 0) + (this.retiringOf(app) ? 1 : 0)
  }

  /** Ends every connection still open on a slot (the websockets a drain could not wait out), and a replaced proxy. */
  async closeSessions(app: string, slot: Slot): Promise<void> {
    const r = this.procs.get(app)
    if (!r) throw problem('PROXY_UNREACHABLE', `The proxy of "${app}" is not running.`)
    const c = `shutdown sessions server ${BACKEND}/${slot}`
    checkSilent(c, await runtimeCommand(this.socketOf(app, r), c, RUNTIME_TIMEOUT_MS))
    await this.endRetiring(app)
  }

  /** Stops the app's proxy (the proxy setting was turned off); its listener goes away with it. */
  async stop(app: string): Promise<void> {
    const r = this.procs.get(app) ?? this.adoptOne(app)
    if (r && isSameProcess(r.pid, r.startTicks)) await this.kill(app, r)
    await this.endRetiring(app)
    this.procs.delete(app)
    fs.rmSync(path.join(this.dir(app), 'state.json'), { force: true })
    this.deps.routes.route(app, null)
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
      const { live: _routedBefore, ...r } = JSON.parse(fs.readFileSync(path.join(this.dir(app), 'state.json'), 'utf8')) as ProxyRecord & { live?: unknown }
      return r
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

  private writeConfig(app: string, r: ProxyRecord, live: SlotTarget | null): string {
    const file = path.join(this.dir(app), 'haproxy.cfg')
    replaceFileSync(file, renderConfig({ listen: r.listen, socket: this.socketOf(app, r), live, hardStopAfterMs: r.drainMs ?? DEFAULT_DRAIN_MS }), 0o640)
    return file
  }

  private async start(app: string, listen: string, live: SlotTarget | null, prev: Partial<ProxyRecord>): Promise<ProxyRecord> {
    const { log } = this.deps
    fs.mkdirSync(this.dir(app), { recursive: true, mode: 0o750 })
    fs.mkdirSync(this.deps.paths.log(app), { recursive: true, mode: 0o750 })
    const r: ProxyRecord = {
      pid: 0,
      startTicks: 0,
      listen,
      startedAt: new Date().toISOString(),
      restarts: prev.restarts ?? 0,
      lastExit: prev.lastExit ?? null,
      socket: `admin-${crypto.randomBytes(4).toString('hex')}.sock`,
      drainMs: prev.drainMs ?? DEFAULT_DRAIN_MS,
    }
    // Where it sends connections: where it is told to, else the route berth last set (a restart after a death).
    const cfg = this.writeConfig(app, r, live ?? this.deps.routes.routed(app))
    const socket = this.socketOf(app, r)
    this.capLog(app)
    const out = fs.openSync(this.logFile(app), 'a', 0o640)
    // Foreground (-db) in a session of its own: berth's exit or signals never reach it; it outlives berth.
    const l = this.deps.launch?.(this.deps.haproxy, ['-db', '-f', cfg]) ?? { file: this.deps.haproxy, args: ['-db', '-f', cfg] }
    const child = spawn(l.file, l.args, { cwd: this.dir(app), detached: true, stdio: ['ignore', out, out] })
    fs.closeSync(out)
    r.pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!))
      child.once('error', (err) => reject(problem('PROXY_START_FAILED', `haproxy could not be started (${(err as NodeJS.ErrnoException).code ?? err.message}); install it (apt-get install haproxy) or set BERTH_HAPROXY.`)))
    })
    child.unref()
    r.startTicks = procInfo(r.pid)?.startTicks ?? 0
    const ready = await waitUntil(() => !isSameProcess(r.pid, r.startTicks) || fs.existsSync(socket), START_TIMEOUT_MS, 20)
    let answered = false
    const deadline = Date.now() + START_TIMEOUT_MS
    while (ready && !answered && Date.now() < deadline && isSameProcess(r.pid, r.startTicks)) {
      answered = await runtimeCommand(socket, 'show info', RUNTIME_TIMEOUT_MS).then((a) => a.includes('Pid:'), () => false)
      if (!answered) await sleep(50)
    }
    if (!answered) {
      signal(r.pid, 'SIGKILL')
      fs.rmSync(socket, { force: true })
      throw problem('PROXY_START_FAILED', `haproxy for "${app}" did not start on ${listen}: ${logTail(this.logFile(app)) || 'no output'}. Check that nothing else listens there (and, below port 1024, that berth has CAP_NET_BIND_SERVICE).`, { listen })
    }
    this.procs.set(app, r)
    this.writeRecord(app, r)
    this.sweepSockets(app, [r, prev])
    log.info({ app, proxyPid: r.pid, listen }, 'proxy started')
    this.deps.events.record({ app, actor: 'berth', action: 'proxy.start', outcome: 'ok', detail: { listen, pid: r.pid } })
    return r
  }

  /** Removes the runtime sockets of proxies that are gone (one killed with berth leaves its file behind). */
  private sweepSockets(app: string, keep: Partial<ProxyRecord>[]): void {
    const alive = [...keep, this.retiring.get(app)?.r].filter((k): k is Partial<ProxyRecord> => !!k?.pid && isSameProcess(k.pid, k.startTicks ?? -1))
    const kept = new Set(alive.map((k) => path.basename(k.socket ?? LEGACY_SOCKET)))
    try {
      for (const f of fs.readdirSync(this.dir(app))) if (/^admin.*\.sock$/.test(f) && !kept.has(f)) fs.rmSync(path.join(this.dir(app), f), { force: true })
    } catch (err) {
      this.deps.log.warn({ app, err }, 'could not remove old proxy sockets')
    }
  }

  private async kill(app: string, r: ProxyRecord): Promise<void> {
    await endHaproxy(r.pid, r.startTicks)
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
        await this.start(app, r.listen, null, { ...r, restarts: r.restarts + 1, lastExit: why })
      } catch (err) {
        this.deps.log.error({ app, err }, 'could not restart the proxy')
        Object.assign(r, { restarts: r.restarts + 1, lastExit: why })
      } finally {
        this.restarting.delete(app)
      }
    }
    for (const [app, t] of this.retiring) {
      if (!this.retiringOf(app) || Date.now() < t.untilMs) continue
      // Its hard-stop-after should have ended it; a connection must not hold the old address open for good.
      this.deps.log.warn({ app, proxyPid: t.r.pid, listen: t.r.listen }, 'the replaced proxy outlived its drain: ending it')
      signal(t.r.pid, 'SIGKILL')
    }
    for (const app of this.procs.keys()) this.capLog(app)
  }

  private watch(): void {
    if (this.timer) return
    this.timer = setInterval(() => void this.check(), this.deps.watchMs ?? 500)
    this.timer.unref()
  }

  private capLog(app: string): void {
    capLogFile(this.logFile(app), this.deps.logMaxBytes ?? 1024 * 1024)
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

// The shared edge of this host: which apps it routes (their hostnames and edge settings, in edge/apps.json),
// its haproxy (started or adopted, reloaded hitlessly when the apps change, restarted when it dies), the
// slot each app's backend sends to (switched through the runtime API), pauses, and the certificates it serves.

import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { tlsMode, type ProxySettings } from '../apps/proxy-settings.js'
import type { EdgeConfig } from '../config.js'
import { problem } from '../errors.js'
import { replaceFileSync } from '../fsutil.js'
import type { Paths, Slot } from '../paths.js'
import { isSameProcess } from '../process/proc.js'
import { checkSilent, parseSessions, switchCommands, type SlotTarget } from '../proxy/haproxy.js'
import type { ProxyRoutes } from '../proxy/proxy.js'
import type { EventStore } from '../store/events.js'
import { backendOf, redirectedHosts, type EdgeApp, type EdgeFiles } from './config.js'
import { EdgeDisk, type EdgeState } from './disk.js'
import { selfSignedPem } from './default-cert.js'
import { EdgeProcess, type MasterRecord } from './process.js'
import type { EdgeControl } from './types.js'

export interface EdgeDeps {
  paths: Paths
  events: EventStore
  log: Logger
  haproxy: string
  /** How haproxy is started (isolation/launch.ts engine: without the apps' groups); default: as it is. */
  launch?: (cmd: string, args: string[]) => { file: string; args: string[] }
  config: EdgeConfig
  /** Each app's route (instances/instances.ts), shared with its own haproxy: read at every render. */
  routes: ProxyRoutes
  /** The access log's lines for the config (edge/access-log.ts); none: not logged. */
  logLines?: () => { sections: string[]; defaults: string[] }
  /** After an app's hostnames change on the edge (certificates may be due). */
  onHosts?: (app: string, hosts: string[]) => void
  watchMs?: number
}

export interface EdgeStatus {
  state: 'running' | 'down'
  http: string
  https: string | null
  pid: number | null
  startedAt: string | null
  restarts: number
  lastExit: string | null
  /** systemd runs the edge (berth-edge.service); berth reloads it. */
  supervisedBy: 'berth' | 'systemd'
  apps: string[]
}

/** The longest a replaced worker keeps its connections after a reload (websockets of apps not changed). */
const HARD_STOP_AFTER_MS = 2 * 3600_000
const RETRY_MS = 5000

export class Edge implements EdgeControl {
  private readonly proc: EdgeProcess
  private readonly files: EdgeFiles
  private readonly disk: EdgeDisk
  /** The apps on the edge, their pauses, and the hosts it has certificates for. */
  private state: EdgeState = { apps: new Map(), paused: new Map(), certified: new Set() }
  private master: MasterRecord | null = null
  private queue: Promise<unknown> = Promise.resolve()
  private timer: NodeJS.Timeout | null = null
  private restarting = false
  /** After a failed start, the next try is not before this (a taken port must not spawn haproxy twice a second). */
  private nextTryAt = 0

  constructor(private readonly deps: EdgeDeps) {
    this.disk = new EdgeDisk(deps.paths)
    this.files = this.disk.files
    this.proc = new EdgeProcess({ haproxy: deps.haproxy, dir: deps.paths.edge, config: this.disk.config, runtimeSocket: this.files.runtimeSocket, externalMaster: deps.config.masterSocket, launch: deps.launch })
  }

  get fallbackSocket(): string {
    return this.files.fallbackSocket
  }

  /** One change at a time: a reload must not interleave with another's file writes or runtime commands. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  /**
   * At berth's start: the edge's files exist, and its haproxy runs with them: adopted untouched when it
   * runs (reloaded only when the config berth would write differs), started otherwise.
   */
  async start(): Promise<void> {
    const dir = this.deps.paths.edge
    if (Buffer.byteLength(this.files.fallbackSocket) > 100) throw problem('EDGE_START_FAILED', `The data directory's path is too long for the edge's unix sockets (${this.files.fallbackSocket}, over 100 bytes): choose a shorter BERTH_DATA_DIR.`)
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    fs.mkdirSync(this.deps.paths.edgeCerts, { recursive: true, mode: 0o700 })
    this.state = this.disk.read()
    const defaultPem = path.join(dir, 'default.pem')
    if (!fs.existsSync(defaultPem)) replaceFileSync(defaultPem, await selfSignedPem(), 0o600)
    if (!fs.existsSync(this.files.crtList)) replaceFileSync(this.files.crtList, `${defaultPem}\n`, 0o600)
    await this.serial(async () => {
      const changed = this.writeFiles()
      this.master = this.disk.readRecord(this.deps.haproxy)
      if (this.proc.external) {
        if (changed) await this.proc.reload(() => true)
      } else if (this.master && isSameProcess(this.master.pid, this.master.startTicks)) {
        this.deps.log.info({ edgePid: this.master.pid }, 're-adopted the running edge')
        if (changed) await this.proc.reload(() => this.alive())
      } else {
        try {
          this.master = await this.proc.spawn(this.master ?? {})
        } catch (err) {
          // berth still starts (its API, the apps' own listeners); the watch tries again, and status says why.
          const why = `${new Date().toISOString()} ${(err as Error).message}`
          this.master = { pid: 0, startTicks: -1, startedAt: new Date().toISOString(), restarts: this.master?.restarts ?? 0, lastExit: why }
          this.nextTryAt = Date.now() + RETRY_MS
          this.deps.log.error({ err }, 'the edge did not start: its hostnames are not served until it does (berth tries again every 5 s)')
          this.deps.events.record({ actor: 'berth', action: 'edge.start', outcome: 'error', detail: { error: (err as Error).message.slice(0, 300) } })
          return
        }
        this.writeRecord()
        this.deps.log.info({ edgePid: this.master.pid, http: this.deps.config.http, https: this.deps.config.https }, 'edge started')
        this.deps.events.record({ actor: 'berth', action: 'edge.start', outcome: 'ok', detail: { pid: this.master.pid } })
      }
    })
    this.watch()
  }

  serves(app: string): boolean {
    return this.state.apps.has(app)
  }

  /** The app's hostnames and edge settings as they are now, and its live slot: reloads only when they changed. */
  async ensure(app: string, settings: ProxySettings, live: SlotTarget | null): Promise<void> {
    const next: EdgeApp = {
      hosts: [...settings.hosts],
      tls: tlsMode(settings, !!this.deps.config.https),
      httpsRedirect: settings.httpsRedirect ?? true,
      hstsMaxAge: settings.hstsMaxAge,
      maxBodyBytes: settings.maxBodyBytes,
      timeoutMs: settings.timeoutMs,
      drainTimeoutMs: settings.drainTimeoutMs,
    }
    const before = this.state.apps.get(app)
    await this.serial(async () => {
      if (live) this.deps.routes.route(app, live)
      if (JSON.stringify(before) !== JSON.stringify(next)) {
        this.state.apps.set(app, next)
        await this.apply()
        this.deps.events.record({ app, actor: 'berth', action: 'edge.route', outcome: 'ok', detail: { hosts: next.hosts, tls: next.tls } })
      }
      if (live) await this.runtimeSwitch(app, live)
    })
    if (JSON.stringify(before?.hosts) !== JSON.stringify(next.hosts) || !before) this.deps.onHosts?.(app, next.hosts)
  }

  async remove(app: string): Promise<void> {
    if (!this.state.apps.has(app)) return
    await this.serial(async () => {
      this.state.apps.delete(app)
      this.state.paused.delete(app)
      await this.apply()
    })
    this.deps.events.record({ app, actor: 'berth', action: 'edge.remove', outcome: 'ok', detail: {} })
    this.deps.onHosts?.(app, [])
  }

  async switchTo(app: string, to: SlotTarget): Promise<void> {
    await this.serial(async () => {
      this.deps.routes.route(app, to)
      this.writeFiles()
      await this.runtimeSwitch(app, to)
    })
  }

  private async runtimeSwitch(app: string, to: SlotTarget): Promise<void> {
    for (const c of switchCommands(to, backendOf(app))) checkSilent(c, await this.proc.runtime(c))
  }

  /** Sessions to the slot in the current worker and in the old ones still finishing after a reload. */
  async sessions(app: string, slot: Slot): Promise<number> {
    const cmd = `show stat -1 4 -1`
    const texts = [await this.proc.runtime(cmd), ...(await this.proc.onOldWorkers(cmd))]
    return texts.reduce((n, csv) => n + (parseSessions(csv, backendOf(app)).get(slot) ?? 0), 0)
  }

  async closeSessions(app: string, slot: Slot): Promise<void> {
    const c = `shutdown sessions server ${backendOf(app)}/${slot}`
    checkSilent(c, await this.proc.runtime(c))
    await this.proc.onOldWorkers(c)
  }

  /** The edge answers 503 with Retry-After and the app's maintenance page for every host of the app. */
  async pause(app: string, retryAfterSeconds: number, actor: string | null): Promise<void> {
    if (!this.state.apps.has(app)) throw problem('APP_NOT_ON_EDGE', `App "${app}" has no hostnames on the edge yet: set proxy.hosts and deploy it first.`)
    await this.serial(async () => {
      const was = this.state.paused.has(app)
      this.state.paused.set(app, retryAfterSeconds)
      this.writeFiles()
      if (was) await this.proc.runtime(`set map ${this.files.pausedMap} ${app} ${retryAfterSeconds}`)
      else checkSilent('add map', await this.proc.runtime(`add map ${this.files.pausedMap} ${app} ${retryAfterSeconds}`))
    })
    this.deps.events.record({ app, actor, action: 'edge.pause', outcome: 'ok', detail: { retryAfterSeconds } })
  }

  async resume(app: string, actor: string | null): Promise<void> {
    if (!this.state.paused.has(app)) return
    await this.serial(async () => {
      this.state.paused.delete(app)
      this.writeFiles()
      await this.proc.runtime(`del map ${this.files.pausedMap} ${app}`)
    })
    this.deps.events.record({ app, actor, action: 'edge.resume', outcome: 'ok', detail: {} })
  }

  /** Paused apps and their Retry-After, for the fallback server and the app view. */
  pausedFor(app: string): number | null {
    return this.state.paused.get(app) ?? null
  }

  routedApps(): ReadonlyMap<string, EdgeApp> {
    return this.state.apps
  }

  /**
   * Serves a host's certificate at once, without a reload: a new one is created, filled and committed in
   * haproxy's store and added to the crt-list; a known one is replaced (connections keep theirs).
   */
  async install(host: string, pemFile: string): Promise<void> {
    await this.serial(async () => {
      const listed = this.disk.crtListed()
      const known = (await this.proc.runtime('show ssl cert')).split('\n').includes(pemFile)
      const payload = fs.readFileSync(pemFile, 'utf8').trim()
      if (!known) await this.certCommand(`new ssl cert ${pemFile}`)
      await this.certCommand(`set ssl cert ${pemFile} <<\n${payload}\n`)
      await this.certCommand(`commit ssl cert ${pemFile}`)
      if (!listed.includes(pemFile)) {
        this.disk.writeCrtList([...listed, pemFile])
        if (!known) await this.certCommand(`add ssl crt-list ${this.files.crtList} ${pemFile}`)
      }
      await this.setCertified(host, true)
      this.deps.log.info({ host }, 'the edge serves a new certificate for the host')
    })
  }

  /** Stops serving a host's certificate (the file edge/certs.ts named when it installed it). */
  async uninstall(host: string, pemFile: string): Promise<void> {
    await this.serial(async () => {
      const listed = this.disk.crtListed()
      if (!listed.includes(pemFile)) return
      this.disk.writeCrtList(listed.filter((l) => l !== pemFile))
      await this.setCertified(host, false)
      await this.certCommand(`del ssl crt-list ${this.files.crtList} ${pemFile}`)
      await this.certCommand(`del ssl cert ${pemFile}`)
      this.deps.log.info({ host }, 'the edge no longer serves a certificate for the host')
    })
  }

  /** A host's certificate came or went: its redirect to HTTPS follows, at once (map) and for restarts (file). */
  private async setCertified(host: string, on: boolean): Promise<void> {
    const before = redirectedHosts(this.state.apps, this.state.certified, !!this.deps.config.https).includes(host)
    if (on) this.state.certified.add(host)
    else this.state.certified.delete(host)
    const after = redirectedHosts(this.state.apps, this.state.certified, !!this.deps.config.https).includes(host)
    this.writeFiles()
    if (after && !before) checkSilent('add map', await this.proc.runtime(`add map ${this.files.redirectMap} ${host} 1`))
    if (before && !after) await this.proc.runtime(`del map ${this.files.redirectMap} ${host}`)
  }

  private async certCommand(c: string): Promise<void> {
    const answer = (await this.proc.runtime(c)).trim()
    if (/error|can't|cannot|unable|not found|failed/i.test(answer) && !/success/i.test(answer)) throw problem('PROXY_COMMAND_FAILED', `the edge refused "${c.split('\n')[0]!.slice(0, 120)}": ${answer.slice(0, 300)}`)
  }

  status(): EdgeStatus {
    const up = this.alive()
    return {
      state: up ? 'running' : 'down',
      http: this.deps.config.http!,
      https: this.deps.config.https,
      pid: up && this.master ? this.master.pid : null,
      startedAt: up ? (this.master?.startedAt ?? null) : null,
      restarts: this.master?.restarts ?? 0,
      lastExit: this.master?.lastExit ?? null,
      supervisedBy: this.proc.external ? 'systemd' : 'berth',
      apps: [...this.state.apps.keys()].sort(),
    }
  }

  private alive(): boolean {
    if (this.proc.external) return fs.existsSync(this.proc.masterSocket)
    return !!this.master && isSameProcess(this.master.pid, this.master.startTicks)
  }

  /** Files, then a hitless reload; a refused config leaves the edge as it was (and the files are put back). */
  private async apply(): Promise<void> {
    const restore = this.disk.snapshot()
    this.writeFiles()
    try {
      await this.proc.reload(() => this.alive())
    } catch (err) {
      restore()
      throw err
    }
  }

  /** Writes the config, maps and apps.json; answers whether the config changed. */
  private writeFiles(): boolean {
    return this.disk.write(this.state, {
      http: this.deps.config.http!,
      https: this.deps.config.https,
      live: (app) => this.deps.routes.routed(app),
      log: this.deps.logLines?.(),
      hardStopAfterMs: HARD_STOP_AFTER_MS,
    })
  }

  private writeRecord(): void {
    if (this.master) this.disk.writeRecord(this.master)
  }

  /** One check: a master that died is started again with the config on disk (the live slots it had). */
  async check(): Promise<void> {
    this.proc.capLog()
    if (this.proc.external || this.restarting || !this.master || this.alive() || Date.now() < this.nextTryAt) return
    this.restarting = true
    // pid 0: it never started (a taken port, say); the reason stays the one its start gave.
    const died = this.master.pid !== 0
    const why = died ? `${new Date().toISOString()} the edge's haproxy (pid ${this.master.pid}) exited while it should run` : (this.master.lastExit ?? 'the edge never started')
    if (died) {
      this.deps.log.warn({ edgePid: this.master.pid }, 'the edge died: starting it again')
      this.deps.events.record({ actor: 'berth', action: 'edge.exit', outcome: 'error', detail: { pid: this.master.pid } })
    }
    try {
      await this.serial(async () => {
        this.writeFiles()
        this.master = await this.proc.spawn({ restarts: (this.master?.restarts ?? 0) + (died ? 1 : 0), lastExit: why })
        this.writeRecord()
        if (!died) this.deps.log.info({ edgePid: this.master.pid }, 'edge started')
      })
    } catch (err) {
      this.deps.log.error({ err }, 'could not restart the edge')
      this.nextTryAt = Date.now() + RETRY_MS
      if (this.master) Object.assign(this.master, { restarts: this.master.restarts + 1, lastExit: `${why}; starting it again failed: ${(err as Error).message.slice(0, 300)}` })
    } finally {
      this.restarting = false
    }
  }

  private watch(): void {
    if (this.timer) return
    this.timer = setInterval(() => void this.check(), this.deps.watchMs ?? 500)
    this.timer.unref()
  }

  /** berth stops: the edge keeps serving; a restarted berth adopts it. */
  detach(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  /** For tests and `berth edge stop`: ends the edge berth started. */
  async stop(): Promise<void> {
    this.detach()
    if (this.master && !this.proc.external && this.alive()) await this.proc.kill(this.master)
    this.disk.removeRecord()
  }
}

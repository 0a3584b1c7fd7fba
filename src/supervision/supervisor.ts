// Runs each app's node and keeps it running: start under run_erl (own session, so it outlives the agent and
// has a console to attach to), graceful stop, liveness, restart with backoff, and re-adoption after restarts.

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import type { AppSettings } from '../deploy/settings.js'
import type { Paths } from '../paths.js'
import type { AppStore, NodeRecord } from '../store/apps.js'
import type { EventStore } from '../store/events.js'
import { CommandLedger } from './ledger.js'
import { descendants, isSameProcess, procInfo, runCommand, signal, signalGroup, sleep, type CommandResult } from './proc.js'

export type NodeState = 'stopped' | 'starting' | 'running' | 'stopping' | 'crashed' | 'backoff' | 'errored'

export interface NodeStatus {
  state: NodeState
  release: string | null
  /** run_erl's pid: the supervised process (the BEAM is its child). */
  pid: number | null
  beamPid: number | null
  startedAt: string | null
  uptimeMs: number | null
  restarts: number
  lastExit: string | null
}

export interface SupervisorDeps {
  paths: Paths
  apps: AppStore
  events: EventStore
  log: Logger
  /** epmd port for every node berth runs (ERL_EPMD_PORT). */
  epmdPort: number
  /** Extra environment for nodes (tests isolate epmd this way). */
}

interface Live {
  app: string
  release: string
  pid: number
  startTicks: number
  child: ChildProcess | null
  state: NodeState
  startedAt: number
  /** Resolves when the run_erl process has exited. */
  exited: Promise<string>
  onExit: (why: string) => void
  poll: NodeJS.Timeout | null
}

/** Hook for the crash policy (restart/backoff/rollback), installed by whoever owns that policy. */
export type CrashHandler = (app: string, why: string) => void

export class Supervisor {
  private readonly live = new Map<string, Live>()
  private readonly extra = new Map<string, NodeState>()
  onCrash: CrashHandler = () => {}
  private readonly ledger: CommandLedger

  constructor(private readonly deps: SupervisorDeps) {
    this.ledger = new CommandLedger(deps.paths.run, deps.log)
  }

  releaseDir(app: string, release: string): string {
    return this.deps.paths.release(app, release)
  }

  /** The environment a node and every command run for the app get: the app's env plus berth's own settings. */
  nodeEnv(app: string): NodeJS.ProcessEnv {
    const { paths } = this.deps
    const settings = this.deps.apps.settings(app)
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: process.env.LANG ?? 'C.UTF-8',
      HOME: paths.shared(app),
      ...this.deps.apps.env(app),
      RELEASE_TMP: path.join(paths.shared(app), 'tmp'),
      ERL_CRASH_DUMP: path.join(paths.log(app), 'erl_crash.dump'),
      // Distribution and epmd on loopback only: the cookie is the only guard, so the port must not be reachable.
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_EPMD_PORT: String(this.deps.epmdPort),
      ERL_AFLAGS: '-kernel inet_dist_use_interface {127,0,0,1}',
      RUN_ERL_LOG_MAXSIZE: String(settings.consoleLogMaxBytes),
      RUN_ERL_LOG_GENERATIONS: String(settings.consoleLogGenerations),
      RUN_ERL_LOG_ALIVE_MINUTES: '1440',
    }
  }

  /** The app's writable directories: where RELEASE_TMP, the console pipe and logs live (releases are read-only). */
  ensureAppDirs(app: string): void {
    const { paths } = this.deps
    for (const d of [paths.shared(app), path.join(paths.shared(app), 'tmp'), paths.log(app)]) fs.mkdirSync(d, { recursive: true, mode: 0o750 })
  }

  /**
   * Runs `bin/APP <command> [args]` from a release, e.g. eval, rpc, pid, stop. Each is a BEAM of its own that
   * must not outlive berth: it dies with berth where setpriv can arrange that, and is on the ledger regardless.
   */
  command(app: string, release: string, command: string, args: string[], timeoutMs: number, signal?: AbortSignal): Promise<CommandResult> {
    this.ensureAppDirs(app)
    const dir = this.releaseDir(app, release)
    return runCommand(path.join(dir, 'bin', app), [command, ...args], {
      cwd: this.deps.paths.shared(app),
      env: this.nodeEnv(app),
      timeoutMs,
      signal,
      dieWithBerth: true,
      recorder: { app, ledger: this.ledger },
    })
  }

  status(app: string): NodeStatus {
    const l = this.live.get(app)
    const rec = this.deps.apps.node(app)
    const state: NodeState = l?.state ?? this.extra.get(app) ?? 'stopped'
    const beam = l ? (descendants(l.pid).find((p) => p.state !== 'Z' && fs.existsSync(`/proc/${p.pid}`) && readComm(p.pid).startsWith('beam')) ?? null) : null
    return {
      state,
      release: l?.release ?? rec?.releaseId ?? null,
      pid: l?.pid ?? null,
      beamPid: beam?.pid ?? null,
      startedAt: l ? new Date(l.startedAt).toISOString() : null,
      uptimeMs: l && l.state === 'running' ? Date.now() - l.startedAt : null,
      restarts: rec?.restarts ?? 0,
      lastExit: rec?.lastExit ?? null,
    }
  }

  /** The node's state without the /proc walk that status() does for the BEAM pid (cheap enough to poll). */
  state(app: string): NodeState {
    return this.live.get(app)?.state ?? this.extra.get(app) ?? 'stopped'
  }

  setState(app: string, state: NodeState): void {
    const l = this.live.get(app)
    if (l) l.state = state
    else this.extra.set(app, state)
  }

  isUp(app: string): boolean {
    const l = this.live.get(app)
    return !!l && isSameProcess(l.pid, l.startTicks)
  }

  /** Starts the release's node under run_erl. The node must not be running. */
  async start(app: string, release: string, settings: AppSettings): Promise<void> {
    if (this.live.has(app)) throw new Error(`node of ${app} is already running`)
    const { paths, apps, log } = this.deps
    const dir = this.releaseDir(app, release)
    const pipeDir = path.join(paths.shared(app), 'pipe')
    // A stale pipe would make run_erl pick erlang.pipe.2 and to_erl attach to nothing.
    fs.rmSync(pipeDir, { recursive: true, force: true })
    this.ensureAppDirs(app)
    fs.mkdirSync(pipeDir, { mode: 0o750 })
    const erts = fs.readdirSync(dir).find((f) => f.startsWith('erts-'))
    const runErl = erts ? path.join(dir, erts, 'bin', 'run_erl') : 'run_erl'
    const command = `exec "${path.join(dir, 'bin', app)}" ${settings.commands.start}`
    // detached: its own session and process group, so berth's exit or restart never takes the node with it.
    const child = spawn(runErl, [`${pipeDir}/`, `${paths.log(app)}/`, command], { cwd: paths.shared(app), env: this.nodeEnv(app), detached: true, stdio: 'ignore' })
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!))
      child.once('error', reject)
    })
    child.unref()
    const info = procInfo(pid)
    const l = this.track(app, release, pid, info?.startTicks ?? 0, child)
    const prev = apps.node(app)
    apps.saveNode({ app, releaseId: release, pid, startTicks: l.startTicks, desired: 'running', startedAt: new Date(l.startedAt).toISOString(), restarts: prev?.restarts ?? 0, lastExit: prev?.lastExit ?? null })
    this.extra.delete(app)
    log.info({ app, release, nodePid: pid }, 'node started')
    this.deps.events.record({ app, actor: 'berth', action: 'node.start', outcome: 'ok', detail: { release, pid } })
  }

  private track(app: string, release: string, pid: number, startTicks: number, child: ChildProcess | null): Live {
    let onExit!: (why: string) => void
    const exited = new Promise<string>((resolve) => (onExit = resolve))
    const l: Live = { app, release, pid, startTicks, child, state: 'starting', startedAt: Date.now(), exited, onExit, poll: null }
    if (child) {
      child.on('exit', (code, sig) => this.exitedNow(l, sig ? `killed by ${sig}` : `exited with code ${code}`))
    } else {
      // Adopted after an agent restart: not our child, so we can only poll.
      l.poll = setInterval(() => {
        if (!isSameProcess(l.pid, l.startTicks)) this.exitedNow(l, 'exited while berth was not its parent')
      }, 500)
    }
    this.live.set(app, l)
    return l
  }

  private exitedNow(l: Live, why: string): void {
    if (l.poll) clearInterval(l.poll)
    l.poll = null
    if (this.live.get(l.app) !== l) return
    this.live.delete(l.app)
    const rec = this.deps.apps.node(l.app)
    const expected = l.state === 'stopping'
    if (rec) this.deps.apps.saveNode({ ...rec, pid: null, startTicks: null, lastExit: `${new Date().toISOString()} ${why}` })
    this.deps.log[expected ? 'info' : 'warn']({ app: l.app, release: l.release, nodePid: l.pid, why }, expected ? 'node stopped' : 'node exited unexpectedly')
    l.onExit(why)
    if (!expected && rec?.desired === 'running') {
      this.extra.set(l.app, 'crashed')
      this.deps.events.record({ app: l.app, actor: 'berth', action: 'node.exit', outcome: 'error', detail: { release: l.release, why } })
      this.onCrash(l.app, why)
    } else {
      this.extra.set(l.app, 'stopped')
    }
  }

  /** Waits for the node's exit; resolves with the reason, or null on timeout. */
  async waitExit(app: string, timeoutMs: number): Promise<string | null> {
    const l = this.live.get(app)
    if (!l) return 'not running'
    // The timer is cleared either way: a pending one would hold the agent's exit back by up to timeoutMs.
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)))
    try {
      return await Promise.race([l.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Stops the node gracefully: `bin/APP stop` (from the release that started it: each build has its own
   * cookie), then SIGTERM and finally SIGKILL to run_erl's group and the BEAM's, each after a timeout.
   */
  async stop(app: string, settings: AppSettings, opts: { desired?: 'stopped' | 'running' } = {}): Promise<void> {
    const rec = this.deps.apps.node(app)
    if (rec && opts.desired !== 'running') this.deps.apps.saveNode({ ...rec, desired: 'stopped' })
    const l = this.live.get(app)
    if (!l) {
      this.extra.set(app, 'stopped')
      return
    }
    l.state = 'stopping'
    const { log } = this.deps
    const tree = () => [l.pid, ...descendants(l.pid).map((p) => p.pid)]
    const stopRun = await this.command(app, l.release, settings.commands.stop, [], Math.min(settings.stopTimeoutMs, 10_000))
    if (stopRun.code !== 0) log.warn({ app, code: stopRun.code }, 'bin/APP stop failed; signalling the node')
    if ((await this.waitExit(app, settings.stopTimeoutMs)) !== null) return
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      const pids = tree()
      log.warn({ app, signal: sig, pids }, 'node did not stop in time')
      for (const p of pids) {
        signalGroup(procInfo(p)?.pgid ?? p, sig)
        signal(p, sig)
      }
      if ((await this.waitExit(app, sig === 'SIGTERM' ? 5000 : 10_000)) !== null) return
    }
    throw new Error(`node of ${app} (pid ${l.pid}) did not exit after SIGKILL`)
  }

  /**
   * The node answers: `bin/APP pid` succeeds, then the health URL (if any) answers 2xx, then it stays up for
   * the stable window. Throws an Error whose message is the reason, for the deployment record.
   */
  async verify(app: string, settings: AppSettings, signal?: AbortSignal): Promise<string> {
    const l = this.live.get(app)
    if (!l) throw new Error('the node is not running')
    const deadline = Date.now() + settings.bootTimeoutMs
    const notes: string[] = []
    const died = () => !this.live.has(app) || this.live.get(app) !== l
    let answered = false
    while (!answered) {
      if (died()) throw new Error(`the node exited during boot (${await l.exited})`)
      if (Date.now() > deadline) throw new Error(`the node did not answer \`bin/${app} ${settings.commands.pid}\` within the boot timeout (${settings.bootTimeoutMs} ms)`)
      if (signal?.aborted) throw new Error('aborted')
      const r = await this.command(app, l.release, settings.commands.pid, [], Math.max(1000, Math.min(10_000, deadline - Date.now())))
      if (r.code === 0) {
        answered = true
        notes.push(`node answered (beam pid ${r.output.trim()}) after ${Date.now() - l.startedAt} ms`)
      } else await sleep(200)
    }
    if (settings.healthUrl) {
      let last = ''
      for (;;) {
        if (died()) throw new Error(`the node exited before ${settings.healthUrl} answered (${await l.exited})`)
        if (Date.now() > deadline) throw new Error(`${settings.healthUrl} did not answer 2xx within the boot timeout (last: ${last})`)
        try {
          const res = await fetch(settings.healthUrl, { signal: AbortSignal.timeout(2000) })
          await res.body?.cancel()
          if (res.status >= 200 && res.status < 300) break
          last = `HTTP ${res.status}`
        } catch (err) {
          last = (err as Error).message
        }
        await sleep(200)
      }
      notes.push(`${settings.healthUrl} answered 2xx after ${Date.now() - l.startedAt} ms`)
    }
    const stableUntil = Date.now() + settings.stableWindowMs
    while (Date.now() < stableUntil) {
      if (died()) throw new Error(`the node exited during the stable window (${await l.exited})`)
      await sleep(Math.min(100, Math.max(0, stableUntil - Date.now())))
    }
    if (died()) throw new Error(`the node exited during the stable window (${await l.exited})`)
    l.state = 'running'
    notes.push(`stayed up for the stable window (${settings.stableWindowMs} ms)`)
    return notes.join('\n')
  }

  markRunning(app: string): void {
    const l = this.live.get(app)
    if (l) l.state = 'running'
  }

  /** Kills the node outright (it is unhealthy); its exit then goes through the crash policy. */
  kill(app: string): void {
    const l = this.live.get(app)
    if (!l) return
    for (const p of [...descendants(l.pid).reverse(), procInfo(l.pid)].filter((x) => x !== null)) signal(p.pid, 'SIGKILL')
  }

  /**
   * After an agent restart: end the commands an earlier berth left running (a migration must not go on behind
   * the back of the deployment that was resolved as failed), re-adopt nodes that still run (same pid, same
   * start time), and report the others.
   */
  adopt(): { adopted: NodeRecord[]; dead: NodeRecord[] } {
    this.ledger.sweep()
    const adopted: NodeRecord[] = []
    const dead: NodeRecord[] = []
    for (const rec of this.deps.apps.nodes()) {
      if (rec.pid !== null && isSameProcess(rec.pid, rec.startTicks)) {
        const l = this.track(rec.app, rec.releaseId, rec.pid, rec.startTicks ?? 0, null)
        l.state = 'running'
        l.startedAt = rec.startedAt ? Date.parse(rec.startedAt) : Date.now()
        adopted.push(rec)
        this.deps.log.info({ app: rec.app, nodePid: rec.pid, release: rec.releaseId }, 're-adopted running node')
      } else if (rec.desired === 'running') {
        dead.push(rec)
      }
    }
    return { adopted, dead }
  }

  /** Stops watching (agent shutdown); the nodes keep running. */
  detach(): void {
    for (const l of this.live.values()) if (l.poll) clearInterval(l.poll)
    this.live.clear()
  }

  /** For tests and shutdown: stop every node berth runs. */
  async stopAll(settingsOf: (app: string) => AppSettings): Promise<void> {
    await Promise.all([...this.live.keys()].map((app) => this.stop(app, settingsOf(app))))
  }
}

function readComm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

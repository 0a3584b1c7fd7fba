// Runs each app's node: start under run_erl (own session, so it outlives the agent and has a console to
// attach to), graceful stop, verification, liveness, and re-adoption after agent restarts. It reports a death
// it did not ask for as a `crash` event; what to do about it is the crash policy's (deploy/crash-policy.ts).
// With the proxy on, an app has a live instance and, while a deploy switches, a standby one (starting, or
// draining after the switch), each in its own slot with its own port, node name, pipe, logs and RELEASE_TMP.

import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import type { AppSettings } from '../apps/settings.js'
import type { AppStore, NodeRecord, StandbyRecord } from '../apps/store.js'
import { problem, StepFailed } from '../errors.js'
import { RELEASE_ID, SLOTS, type Paths, type Slot } from '../paths.js'
import { commandFor, KINDS, unknownCommandHint, type CommandRole, type ReleaseKind } from '../releases/kinds.js'
import type { EventStore } from '../store/events.js'
import { bootApps, waitForBoot, waitForHealth, type WaitOutcome } from './boot-check.js'
import { releaseName, releaseScript } from '../releases/script.js'
import { appCookie, distEnv, nodeName, type DistPorts } from './distribution.js'
import { forcedStop } from './forced-stop.js'
import { CommandLedger } from './ledger.js'
import { markedStartCommand } from './log-lines.js'
import { bootLogText } from './logs.js'
import { descendants, findRunErl, isSameProcess, procInfo, runCommand, signal, signalGroup, sleep, startedAt, type CommandResult, type ProcInfo } from './proc.js'

/** How long status() trusts a BEAM pid it has seen alive before reading /proc again. */
const BEAM_RECHECK_MS = 1000

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
  /** epmd port for every node berth runs (ERL_EPMD_PORT); tests isolate epmd this way. */
  epmdPort: number
  /** What built a release (its row's kind, or detected from its directory): picks the command names. */
  kindOf(app: string, release: string): ReleaseKind
  /** Each instance's distribution port (no epmd): see distribution.ts. */
  distPorts: DistPorts
}

/** A proxied instance: its slot and private loopback port (PORT). null everywhere means the proxy is off. */
export interface InstanceSpec {
  slot: Slot
  port: number
}

/** Where an instance keeps what is its own; with the proxy off, the app's single node's places of today. */
export interface InstanceDirs {
  pipe: string
  log: string
  tmp: string
}

export interface StandbyStatus {
  role: 'starting' | 'draining'
  release: string
  slot: Slot
  port: number
  pid: number | null
  startedAt: string
  /** A draining instance's connections still open are closed then. */
  drainUntil: string | null
}

interface Live {
  app: string
  release: string
  inst: InstanceSpec | null
  /** live: the instance the node record describes and every command reaches; standby: the other one. */
  role: 'live' | 'standby'
  drainUntil: number | null
  pid: number
  startTicks: number
  child: ChildProcess | null
  state: NodeState
  startedAt: number
  /** Resolves when the run_erl process has exited. */
  exited: Promise<string>
  onExit: (why: string) => void
  poll: NodeJS.Timeout | null
  /** Cached by beamOf(). */
  beam: ProcInfo | null
  /** When beamOf() last saw that BEAM alive (ms). */
  beamSeenAt: number
  /** Why berth is stopping it, for the node record's lastExit; null while nobody asked it to stop. */
  stopCause: string | null
  /** The id of the boot mark its start command printed into the console log; null for an adopted node. */
  bootId: string | null
}

export interface SupervisorEvents {
  /** A node that should have been running died without being asked to. */
  crash: [app: string, why: string]
}

/** How much of a node's console log a boot failure carries in its step output. */
const BOOT_LOG_LINES = 30

export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly live = new Map<string, Live>()
  private readonly standby = new Map<string, Live>()
  private readonly extra = new Map<string, NodeState>()
  private readonly ledger: CommandLedger

  constructor(private readonly deps: SupervisorDeps) {
    super()
    this.ledger = new CommandLedger(deps.paths.run, deps.log)
  }

  releaseDir(app: string, release: string): string {
    return this.deps.paths.release(app, release)
  }

  /**
   * The environment a node and every command run for the app get: the app's env plus berth's own settings.
   * `relxOut` is where a relx start script writes the vm.args and sys.config it fills from vm.args.src and
   * sys.config.src, instead of into the read-only release (see relxNodeDir and commandEnv).
   */
  nodeEnv(app: string, inst: InstanceSpec | null = this.liveInstance(app), relxOut?: string, run?: { release: string; role: 'node' | 'command' }): NodeJS.ProcessEnv {
    const { paths } = this.deps
    const settings = this.deps.apps.settings(app)
    const env = this.deps.apps.env(app)
    const dirs = this.dirsOf(app, inst)
    // The instance's own port and the app's own cookie (distribution.ts); none for to_erl, which needs neither.
    const slot = inst?.slot ?? null
    const port = run ? this.deps.distPorts.portOf(app, slot) : null
    const dist = run ? distEnv(this.deps.kindOf(app, run.release), run.role, port, appCookie(paths, app)) : null
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: process.env.LANG ?? 'C.UTF-8',
      HOME: paths.shared(app),
      ...env,
      RELEASE_TMP: dirs.tmp,
      ERL_CRASH_DUMP: path.join(dirs.log, 'erl_crash.dump'),
      // Distribution and epmd on loopback only: the cookie is the only guard, so the port must not be reachable.
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_EPMD_PORT: String(this.deps.epmdPort),
      // The app's own ERL_AFLAGS are kept, after berth's: for a repeated -kernel parameter the first one
      // wins, so an app cannot move distribution off loopback by accident.
      ERL_AFLAGS: ['-kernel inet_dist_use_interface {127,0,0,1}', ...(dist?.aflags ?? []), env.ERL_AFLAGS?.trim()].filter(Boolean).join(' '),
      ...dist?.env,
      RUN_ERL_LOG_MAXSIZE: String(settings.consoleLogMaxBytes),
      RUN_ERL_LOG_GENERATIONS: String(settings.consoleLogGenerations),
      RUN_ERL_LOG_ALIVE_MINUTES: '1440',
      // run_erl writes no time per line; it stamps the log when it opens a file and, with this, before output
      // that follows a minute of silence. In ISO 8601 UTC, so that logs.ts can date console lines from them.
      RUN_ERL_LOG_ACTIVITY_MINUTES: '1',
      RUN_ERL_LOG_ALIVE_FORMAT: '%Y-%m-%dT%H:%M:%SZ',
      RUN_ERL_LOG_ALIVE_IN_UTC: '1',
      ...(relxOut ? { RELX_OUT_FILE_PATH: relxOut } : {}),
      // Two instances of one app run side by side: each its own port and node name (Mix releases read
      // RELEASE_NODE; a relx release names its node in vm.args.src, e.g. -sname ${RELEASE_NODE}).
      // A slot's node a berth from before dist ports started (no port recorded) has the name of then: APP_SLOT.
      ...(inst ? { PORT: String(inst.port), RELEASE_NODE: run && port === null ? `${app}_${inst.slot}` : instanceNodeName(app, inst.slot), RELEASE_DISTRIBUTION: env.RELEASE_DISTRIBUTION ?? 'sname' } : {}),
      // The proxy-off node is named after the app, not its release: two apps of one release get two names.
      // Not for a node a berth from before ports started (it has its release's name): commands must find it.
      ...(!inst && port !== null && !env.RELEASE_NODE ? { RELEASE_NODE: nodeName(app, null) } : {}),
    }
  }

  /**
   * relx's start script fills vm.args and sys.config at every run of bin/APP, `pid` and `stop` included, by
   * truncating and rewriting them in place: one shared pair let the `pid` that verification runs while the
   * node boots leave the booting BEAM half a sys.config ("no ending <dot> found", the node exits with code 1).
   * So a node reads a pair of its own, per release and instance, that no command writes.
   */
  private relxNodeDir(app: string, release: string, inst: InstanceSpec | null): string {
    const dir = path.join(this.relxDir(app, release), inst ? `node-${inst.slot}` : 'node')
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 })
    return dir
  }

  /** Per release: everything of a release's here goes when the release is deleted (intake/cleanup.ts). */
  private relxDir(app: string, release: string): string {
    return path.join(this.deps.paths.shared(app), 'tmp', 'relx', path.basename(this.releaseDir(app, release)))
  }

  /**
   * The environment for one run of bin/APP from `release` (a command, a remote shell): with a directory of
   * its own for relx's filled-in files (see relxNodeDir), which `dispose` removes once the run has ended.
   * One left by a berth that was killed meanwhile goes with its release.
   */
  commandEnv(app: string, release: string, inst: InstanceSpec | null = this.liveInstance(app)): { env: NodeJS.ProcessEnv; dispose(): void } {
    this.ensureAppDirs(app, inst)
    const base = this.relxDir(app, release)
    fs.mkdirSync(base, { recursive: true, mode: 0o750 })
    const dir = fs.mkdtempSync(path.join(base, 'run-'))
    const dispose = () => {
      try {
        fs.rmSync(dir, { recursive: true, force: true })
      } catch (err) {
        // Never fails the command (or, from a session's end, the daemon): what is left goes with the release.
        this.deps.log.warn({ app, err, dir }, "could not remove a command's relx directory")
      }
    }
    return { env: this.nodeEnv(app, inst, dir, { release, role: 'command' }), dispose }
  }

  /** The live instance's slot and port; null with the proxy off (or before a proxied instance ran). */
  liveInstance(app: string): InstanceSpec | null {
    const l = this.live.get(app)
    if (l) return l.inst
    const rec = this.deps.apps.node(app)
    return rec?.slot && rec.port ? { slot: rec.slot, port: rec.port } : null
  }

  dirsOf(app: string, inst: InstanceSpec | null): InstanceDirs {
    const { paths } = this.deps
    if (!inst) return { pipe: path.join(paths.shared(app), 'pipe'), log: paths.log(app), tmp: path.join(paths.shared(app), 'tmp') }
    return { pipe: path.join(paths.instance(app, inst.slot), 'pipe'), log: path.join(paths.log(app), inst.slot), tmp: path.join(paths.instance(app, inst.slot), 'tmp') }
  }

  /** The live instance's console pipe directory (what attach joins) and its console log directory. */
  pipeDir(app: string): string {
    return this.dirsOf(app, this.liveInstance(app)).pipe
  }

  consoleLogDir(app: string): string {
    return this.dirsOf(app, this.liveInstance(app)).log
  }

  /** For a follower: the live instance's console log directory as it moves between slots, and every one it may be. */
  consoleLogDirs(app: string): { current(): string; all: string[] } {
    return { current: () => this.consoleLogDir(app), all: [this.dirsOf(app, null).log, ...SLOTS.map((slot) => this.dirsOf(app, { slot, port: 0 }).log)] }
  }

  /** The app's writable directories: where RELEASE_TMP, the console pipe and logs live (releases are read-only). */
  ensureAppDirs(app: string, inst: InstanceSpec | null = null): void {
    const { paths } = this.deps
    const dirs = this.dirsOf(app, inst)
    for (const d of [paths.shared(app), path.join(paths.shared(app), 'tmp'), paths.log(app), dirs.tmp, dirs.log]) fs.mkdirSync(d, { recursive: true, mode: 0o750 })
    // RELEASE_TMP gets what a release fills in from its environment (relx's vm.args/sys.config, a Mix
    // release's runtime sys.config), env values included: berth's user only, not group berth.
    for (const d of [path.join(paths.shared(app), 'tmp'), dirs.tmp]) fs.chmodSync(d, 0o700)
  }

  /**
   * The bin/APP subcommand that does `role` for this release: the app's commands setting, else the default
   * of the release's kind; COMMAND_UNSUPPORTED when the kind has none (relx has no eval before start).
   */
  commandFor(app: string, release: string, settings: AppSettings, role: CommandRole): string {
    return commandFor(this.deps.kindOf(app, release), settings.commands, role, this.binName(app, release))
  }

  /** The release's start script, bin/NAME (its own name: the app's releaseName, by default the app's). */
  script(app: string, release: string): string {
    return releaseScript(this.releaseDir(app, release), app)
  }

  /** What built the release: its kind picks command names and how distribution settings are passed. */
  kindOf(app: string, release: string): ReleaseKind {
    return this.deps.kindOf(app, release)
  }

  /** NAME of the release's bin/NAME, for messages. */
  binName(app: string, release: string): string {
    return releaseName(this.releaseDir(app, release), app)
  }

  /** For an error after `role` failed: a sentence when its name is not a command of this kind, else ''. */
  commandHint(app: string, release: string, settings: AppSettings, role: CommandRole): string {
    const kind = this.deps.kindOf(app, release)
    const name = settings.commands[role]
    return name ? unknownCommandHint(kind, name, this.binName(app, release), role) : ''
  }

  /**
   * Runs `bin/APP <command> [args]` from a release, e.g. eval, rpc, pid, stop. Each is a BEAM of its own that
   * must not outlive berth: it dies with berth where setpriv can arrange that, and is on the ledger regardless.
   */
  command(app: string, release: string, command: string, args: string[], timeoutMs: number, signal?: AbortSignal, inst: InstanceSpec | null = this.liveInstance(app)): Promise<CommandResult> {
    this.ensureAppDirs(app, inst)
    const run = this.commandEnv(app, release, inst)
    return runCommand(this.script(app, release), [command, ...args], {
      cwd: this.deps.paths.shared(app),
      env: run.env,
      timeoutMs,
      signal,
      dieWithBerth: true,
      recorder: { app, ledger: this.ledger },
    }).finally(run.dispose)
  }

  status(app: string): NodeStatus {
    const l = this.live.get(app)
    const rec = this.deps.apps.node(app)
    const state: NodeState = l?.state ?? this.extra.get(app) ?? 'stopped'
    const beam = l ? this.beamOf(l) : null
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

  /**
   * The BEAM under run_erl. Walking /proc costs a read of every process's stat file, so the answer is kept
   * (pid and start time) and only looked for again once that process is gone, e.g. before the BEAM exists.
   */
  private beamOf(l: Live): ProcInfo | null {
    const t = Date.now()
    // Status polls come many times a second and the read of /proc/PID/stat was most of their cost; a BEAM
    // that died is reported for at most this long, and run_erl's exit (which follows) ends `live` anyway.
    if (l.beam && t - l.beamSeenAt < BEAM_RECHECK_MS) return l.beam
    if (l.beam && isSameProcess(l.beam.pid, l.beam.startTicks)) {
      l.beamSeenAt = t
      return l.beam
    }
    l.beam = descendants(l.pid).find((p) => p.state !== 'Z' && readComm(p.pid).startsWith('beam')) ?? null
    l.beamSeenAt = t
    return l.beam
  }

  /** The node's state alone: no /proc reads at all (cheap enough to poll). */
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

  /**
   * Starts the release's node under run_erl as the app's live instance. The node must not be running.
   * `inst` undefined: the slot and port the node record has when the proxy is on (a crash restart goes back
   * to where the proxy points), else the proxy-off node.
   */
  async start(app: string, release: string, settings: AppSettings, inst?: InstanceSpec | null): Promise<void> {
    if (this.live.has(app)) throw problem('ALREADY_RUNNING', `The node of "${app}" is already running; stop it first.`)
    const { apps, log } = this.deps
    const rec = apps.node(app)
    const spec = inst !== undefined ? inst : settings.proxy && rec?.slot && rec.port ? { slot: rec.slot, port: rec.port } : null
    if (spec && this.standby.get(app)?.inst?.slot === spec.slot) throw problem('ALREADY_RUNNING', `Slot ${spec.slot} of "${app}" is taken by its other instance.`)
    const { pid, child, startTicks, bootId } = await this.spawnNode(app, release, settings, spec)
    const l = this.track(app, release, pid, startTicks, child, spec, 'live')
    l.bootId = bootId
    const prev = apps.node(app)
    apps.saveNode({ app, releaseId: release, pid, startTicks: l.startTicks, desired: 'running', startedAt: new Date(l.startedAt).toISOString(), restarts: prev?.restarts ?? 0, lastExit: prev?.lastExit ?? null, slot: spec?.slot ?? null, port: spec?.port ?? null })
    this.extra.delete(app)
    log.info({ app, release, nodePid: pid, slot: spec?.slot, port: spec?.port }, 'node started')
    this.deps.events.record({ app, actor: 'berth', action: 'node.start', outcome: 'ok', detail: { release, pid, ...(spec ? { slot: spec.slot, port: spec.port } : {}) } })
  }

  /**
   * Starts a second instance of a proxied app next to the live one, in the other slot: the one a deploy
   * verifies before the proxy moves to it. It gets no traffic and no crash handling of its own.
   */
  async startStandby(app: string, release: string, settings: AppSettings, inst: InstanceSpec): Promise<void> {
    if (this.standby.has(app)) throw problem('ALREADY_RUNNING', `"${app}" already runs a second instance (slot ${this.standby.get(app)!.inst?.slot}); at most two run at once.`)
    if (this.live.get(app)?.inst?.slot === inst.slot) throw problem('ALREADY_RUNNING', `Slot ${inst.slot} of "${app}" is its live instance's.`)
    const { pid, child, startTicks, bootId } = await this.spawnNode(app, release, settings, inst)
    const l = this.track(app, release, pid, startTicks, child, inst, 'standby')
    l.bootId = bootId
    this.deps.apps.saveStandby({ app, slot: inst.slot, port: inst.port, releaseId: release, pid, startTicks, role: 'starting', startedAt: new Date(l.startedAt).toISOString(), drainUntil: null })
    this.deps.log.info({ app, release, nodePid: pid, slot: inst.slot, port: inst.port }, 'second instance started')
    this.deps.events.record({ app, actor: 'berth', action: 'node.start', outcome: 'ok', detail: { release, pid, slot: inst.slot, port: inst.port, standby: true } })
  }

  private async spawnNode(app: string, release: string, settings: AppSettings, inst: InstanceSpec | null): Promise<{ pid: number; startTicks: number; child: ChildProcess; bootId: string }> {
    const { paths } = this.deps
    const dir = this.releaseDir(app, release)
    const dirs = this.dirsOf(app, inst)
    // A stale pipe would make run_erl pick erlang.pipe.2 and to_erl attach to nothing.
    fs.rmSync(dirs.pipe, { recursive: true, force: true })
    this.ensureAppDirs(app, inst)
    fs.mkdirSync(dirs.pipe, { recursive: true, mode: 0o750 })
    const erts = fs.readdirSync(dir).find((f) => f.startsWith('erts-'))
    const runErl = erts ? path.join(dir, erts, 'bin', 'run_erl') : 'run_erl'
    const bootId = randomBytes(6).toString('hex')
    // Its own distribution port, taken now (another program may hold the one it had): nodeEnv reads it.
    await this.deps.distPorts.claim(app, inst?.slot ?? null)
    const command = markedStartCommand({ id: bootId, at: new Date(), release }, `exec "${this.script(app, release)}" ${this.commandFor(app, release, settings, 'start')}`)
    // detached: its own session and process group, so berth's exit or restart never takes the node with it.
    const child = spawn(runErl, [`${dirs.pipe}/`, `${dirs.log}/`, command], { cwd: paths.shared(app), env: this.nodeEnv(app, inst, this.relxNodeDir(app, release, inst), { release, role: 'node' }), detached: true, stdio: 'ignore' })
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!))
      child.once('error', reject)
    })
    child.unref()
    return { pid, child, startTicks: procInfo(pid)?.startTicks ?? 0, bootId }
  }

  private track(app: string, release: string, pid: number, startTicks: number, child: ChildProcess | null, inst: InstanceSpec | null = null, role: Live['role'] = 'live'): Live {
    let onExit!: (why: string) => void
    const exited = new Promise<string>((resolve) => (onExit = resolve))
    const l: Live = { app, release, inst, role, drainUntil: null, pid, startTicks, child, state: 'starting', startedAt: Date.now(), exited, onExit, poll: null, beam: null, beamSeenAt: 0, stopCause: null, bootId: null }
    if (child) {
      child.on('exit', (code, sig) => this.exitedNow(l, sig ? `killed by ${sig}` : `exited with code ${code}`))
    } else {
      // Adopted after an agent restart: not our child, so we can only poll.
      l.poll = setInterval(() => {
        if (!isSameProcess(l.pid, l.startTicks)) this.exitedNow(l, 'exited while berth was not its parent')
      }, 500)
    }
    ;(role === 'live' ? this.live : this.standby).set(app, l)
    return l
  }

  private exitedNow(l: Live, why: string): void {
    if (l.poll) clearInterval(l.poll)
    l.poll = null
    if (l.role === 'standby') {
      // Never a crash: a starting instance's verification sees it die, a draining one was on its way out.
      if (this.standby.get(l.app) === l) {
        this.standby.delete(l.app)
        this.deps.apps.deleteStandby(l.app)
      }
      this.deps.log[l.state === 'stopping' ? 'info' : 'warn']({ app: l.app, release: l.release, slot: l.inst?.slot, nodePid: l.pid, why }, 'second instance exited')
      l.onExit(why)
      return
    }
    if (this.live.get(l.app) !== l) return
    this.live.delete(l.app)
    const rec = this.deps.apps.node(l.app)
    const expected = l.state === 'stopping'
    // An asked-for exit says so: "exited with code 1" alone reads like a crash after every restart.
    const exit = expected ? `${l.stopCause ?? 'stopped by berth'} (${why})` : why
    if (rec) this.deps.apps.saveNode({ ...rec, pid: null, startTicks: null, lastExit: `${new Date().toISOString()} ${exit}` })
    this.deps.log[expected ? 'info' : 'warn']({ app: l.app, release: l.release, nodePid: l.pid, why }, expected ? 'node stopped' : 'node exited unexpectedly')
    l.onExit(why)
    if (!expected && rec?.desired === 'running') {
      this.extra.set(l.app, 'crashed')
      this.deps.events.record({ app: l.app, actor: 'berth', action: 'node.exit', outcome: 'error', detail: { release: l.release, why } })
      try {
        this.emit('crash', l.app, why)
      } catch (err) {
        this.deps.log.error({ err, app: l.app }, 'the crash handler failed')
      }
    } else {
      this.extra.set(l.app, 'stopped')
    }
  }

  /** Waits for the node's exit; resolves with the reason, or null on timeout. */
  async waitExit(app: string, timeoutMs: number, l: Live | undefined = this.live.get(app)): Promise<string | null> {
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
  /** Resolves with a warning sentence when the node had to be signalled (it did not stop cleanly), else null. */
  async stop(app: string, settings: AppSettings, opts: { desired?: 'stopped' | 'running'; cause?: string } = {}): Promise<string | null> {
    const rec = this.deps.apps.node(app)
    if (rec && opts.desired !== 'running') this.deps.apps.saveNode({ ...rec, desired: 'stopped' })
    const l = this.live.get(app)
    if (!l) {
      this.extra.set(app, 'stopped')
      return null
    }
    return this.stopInstance(l, settings, opts.cause ?? null)
  }

  /** Stops the app's second instance (one that failed verification, or one that has drained); no-op without one. */
  async stopStandby(app: string, settings: AppSettings, cause: string): Promise<string | null> {
    const l = this.standby.get(app)
    if (!l) {
      this.deps.apps.deleteStandby(app)
      return null
    }
    return this.stopInstance(l, settings, cause)
  }

  private async stopInstance(l: Live, settings: AppSettings, cause: string | null): Promise<string | null> {
    const app = l.app
    l.state = 'stopping'
    l.stopCause = cause
    const { log } = this.deps
    const tree = () => [l.pid, ...descendants(l.pid).map((p) => p.pid)]
    const stopRun = await this.command(app, l.release, this.commandFor(app, l.release, settings, 'stop'), [], Math.min(settings.stopTimeoutMs, 10_000), undefined, l.inst)
    if (stopRun.code !== 0) log.warn({ app, code: stopRun.code }, 'bin/APP stop failed; signalling the node')
    if ((await this.waitExit(app, settings.stopTimeoutMs, l)) !== null) return null
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      const pids = tree()
      log.warn({ app, signal: sig, pids }, 'node did not stop in time')
      // Set before the signal, so that the exit it causes is recorded (lastExit) as forced, not as a plain stop.
      const forced = forcedStop(app, sig, settings.stopTimeoutMs, stopRun)
      l.stopCause = `${cause ?? 'stopped by berth'}, ${forced.short}`
      for (const p of pids) {
        signalGroup(procInfo(p)?.pgid ?? p, sig)
        signal(p, sig)
      }
      if ((await this.waitExit(app, sig === 'SIGTERM' ? 5000 : 10_000, l)) !== null) return forced.warning
    }
    throw problem('NODE_STOP_FAILED', `The node of "${app}" (pid ${l.pid}) did not exit after SIGKILL; it may be stuck in the kernel (D state): check \`ps -o stat -p ${l.pid}\`.`, { pid: l.pid })
  }

  /**
   * The node has booted (init `started` and the release's applications running, asked of the node through
   * its rpc command: boot-check.ts), then the health URL (if any) answers 2xx, both within bootTimeoutMs; only
   * then does the stable window start. Throws a problem whose message is the reason, for the deployment
   * record; `signal` ends the wait early (berth is shutting down) with ABORTED.
   */
  async verify(app: string, settings: AppSettings, signal?: AbortSignal): Promise<string> {
    const l = this.live.get(app)
    if (!l) throw problem('NODE_NOT_RUNNING', 'the node is not running')
    return this.verifyInstance(l, settings, signal)
  }

  /** verify() for the second instance: the proxy's healthPath on its own port stands in for healthUrl. */
  async verifyStandby(app: string, settings: AppSettings, signal?: AbortSignal): Promise<string> {
    const l = this.standby.get(app)
    if (!l) throw problem('NODE_NOT_RUNNING', 'the second instance is not running')
    return this.verifyInstance(l, settings, signal)
  }

  /**
   * NODE_EXITED for a node that died while booting, with what this boot wrote to its console log as the
   * step's output (from its boot mark on): the reason it died (a crash report, a port in use, a bad config)
   * is there, and an earlier boot's stack trace in the same file is not.
   */
  private bootFailure(l: Live, reason: string): StepFailed {
    return new StepFailed('NODE_EXITED', reason, `${reason}${bootLogText(this.dirsOf(l.app, l.inst).log, l.app, l.bootId, BOOT_LOG_LINES)}`)
  }

  private async verifyInstance(l: Live, settings: AppSettings, signal?: AbortSignal): Promise<string> {
    const app = l.app
    const map = l.role === 'live' ? this.live : this.standby
    // A proxied instance is checked on its own port: the app's healthUrl names the public address.
    const healthUrl = l.inst && settings.proxy ? `http://127.0.0.1:${l.inst.port}${settings.proxy.healthPath}` : settings.healthUrl
    const aborted = () => {
      if (signal?.aborted) throw problem('ABORTED', 'verification was aborted: berth is shutting down')
    }
    const deadline = Date.now() + settings.bootTimeoutMs
    const notes: string[] = []
    const died = () => map.get(app) !== l
    const exitedDuring = async (what: string, hint = '') => this.bootFailure(l, `the node exited ${what} (${await l.exited})${hint}`)
    const rpc = this.commandFor(app, l.release, settings, 'rpc')
    const language = KINDS[this.deps.kindOf(app, l.release)].language
    const rel = bootApps(this.releaseDir(app, l.release))
    if (!rel) notes.push("the release's .rel was not found: booted means init's status alone")
    const boot: WaitOutcome = await waitForBoot({ died, aborted, deadline, ask: (expr, timeoutMs) => this.command(app, l.release, rpc, [expr], timeoutMs, signal, l.inst) }, language, rel?.apps ?? [])
    if (!boot.ok && boot.why === 'died') throw await exitedDuring('during boot', this.commandHint(app, l.release, settings, 'start'))
    if (!boot.ok) throw problem('BOOT_TIMEOUT', `the node did not finish booting within the boot timeout (${settings.bootTimeoutMs} ms): ${boot.why === 'timeout' ? boot.last : ''}${this.commandHint(app, l.release, settings, 'rpc')}`)
    notes.push(`booted in ${Date.now() - l.startedAt} ms: init has started${rel ? ` and the applications of ${rel.file} run (${rel.apps.join(', ')})` : ''}; asked ${boot.checks} times through bin/${this.binName(app, l.release)} ${rpc}`)
    if (healthUrl) {
      const health = await waitForHealth(healthUrl, { died, aborted, deadline }, signal)
      if (!health.ok && health.why === 'died') throw await exitedDuring(`before ${healthUrl} answered`)
      if (!health.ok) throw problem('HEALTH_CHECK_FAILED', `${healthUrl} did not answer 2xx within the boot timeout (last: ${health.why === 'timeout' ? health.last : ''})`)
      notes.push(`${healthUrl} answered 2xx after ${Date.now() - l.startedAt} ms`)
    }
    const stableUntil = Date.now() + settings.stableWindowMs
    while (Date.now() < stableUntil) {
      if (died()) throw await exitedDuring('during the stable window')
      aborted()
      await sleep(Math.min(100, Math.max(0, stableUntil - Date.now())))
    }
    if (died()) throw await exitedDuring('during the stable window')
    l.state = 'running'
    notes.push(`stayed up for the stable window (${settings.stableWindowMs} ms) after booting`)
    return notes.join('\n')
  }

  /**
   * The switch, once the proxy sends new connections to the second instance: it becomes the live one (node
   * record, commands, crash handling) and the old live instance, if any, the standby that drains until
   * `drainUntil`. Both records change in one transaction, so a restarted berth sees one or the other.
   */
  promote(app: string, drainUntil: number): void {
    const next = this.standby.get(app)
    if (!next?.inst) throw problem('NODE_NOT_RUNNING', `"${app}" has no second instance to switch to.`)
    const old = this.live.get(app) ?? null
    const rec = this.deps.apps.node(app)
    const liveRec: NodeRecord = { app, releaseId: next.release, pid: next.pid, startTicks: next.startTicks, desired: 'running', startedAt: new Date(next.startedAt).toISOString(), restarts: rec?.restarts ?? 0, lastExit: rec?.lastExit ?? null, slot: next.inst.slot, port: next.inst.port }
    const drainRec: StandbyRecord | null = old?.inst ? { app, slot: old.inst.slot, port: old.inst.port, releaseId: old.release, pid: old.pid, startTicks: old.startTicks, role: 'draining', startedAt: new Date(old.startedAt).toISOString(), drainUntil: new Date(drainUntil).toISOString() } : null
    this.deps.apps.promote(app, liveRec, drainRec)
    this.standby.delete(app)
    this.live.delete(app)
    next.role = 'live'
    next.state = 'running'
    this.live.set(app, next)
    if (old) {
      old.role = 'standby'
      old.drainUntil = drainUntil
      this.standby.set(app, old)
    }
    this.extra.delete(app)
  }

  /** The second instance, while it starts or drains. */
  standbyOf(app: string): StandbyStatus | null {
    const l = this.standby.get(app)
    if (!l?.inst) return null
    return { role: l.drainUntil === null ? 'starting' : 'draining', release: l.release, slot: l.inst.slot, port: l.inst.port, pid: l.pid, startedAt: new Date(l.startedAt).toISOString(), drainUntil: l.drainUntil === null ? null : new Date(l.drainUntil).toISOString() }
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
   * After an agent restart: re-adopt nodes that still run (same pid, same start time); report the others.
   * For each app in `apps` whose recorded node is gone (or that has no record: berth.db was lost or replaced),
   * a run_erl berth started on the app's console pipe is looked for and adopted: starting a second node next
   * to it would fight it for its port and node name, and stopping it would cost the app its uptime.
   */
  adopt(apps: string[] = []): { adopted: NodeRecord[]; dead: NodeRecord[] } {
    // Commands an earlier berth left running (a migration must not go on behind the back of the deployment
    // that recovery resolved as failed): ended first.
    this.ledger.sweep()
    const adopted: NodeRecord[] = []
    const dead: NodeRecord[] = []
    const records = new Map(this.deps.apps.nodes().map((r) => [r.app, r]))
    for (const app of new Set([...records.keys(), ...apps])) {
      const rec = records.get(app) ?? null
      if (rec && rec.pid !== null && isSameProcess(rec.pid, rec.startTicks)) {
        const l = this.track(rec.app, rec.releaseId, rec.pid, rec.startTicks ?? 0, null, rec.slot && rec.port ? { slot: rec.slot, port: rec.port } : null)
        l.state = 'running'
        l.startedAt = rec.startedAt ? Date.parse(rec.startedAt) : Date.now()
        adopted.push(rec)
        this.deps.log.info({ app: rec.app, nodePid: rec.pid, release: rec.releaseId }, 're-adopted running node')
        continue
      }
      const orphan = this.findUnrecorded(app)
      if (orphan) {
        const inst = orphan.slot && orphan.port ? { slot: orphan.slot, port: orphan.port } : null
        const found: NodeRecord = { app, releaseId: orphan.release, pid: orphan.pid, startTicks: orphan.startTicks, desired: 'running', startedAt: orphan.startedAt, restarts: rec?.restarts ?? 0, lastExit: rec?.lastExit ?? null, slot: inst?.slot ?? null, port: inst?.port ?? null }
        this.deps.apps.saveNode(found)
        const l = this.track(app, found.releaseId, orphan.pid, orphan.startTicks, null, inst)
        l.state = 'running'
        l.startedAt = orphan.startedAt ? Date.parse(orphan.startedAt) : Date.now()
        adopted.push(found)
        this.deps.log.warn({ app, nodePid: orphan.pid, release: orphan.release, slot: inst?.slot, port: inst?.port }, 're-adopted a running node berth had no record of')
        // The other slot's instance, when one runs, was the old one draining (or a new one not yet switched
        // to): recorded as draining from now, so that start-up lets its connections finish and then stops it.
        const other = inst ? findUnrecordedNodes(this.deps.paths, app).find((n) => n.slot && n.slot !== inst.slot && n.port) : undefined
        if (other && !this.deps.apps.standby(app)) {
          this.deps.apps.saveStandby({ app, slot: other.slot!, port: other.port!, releaseId: other.release, pid: other.pid, startTicks: other.startTicks, role: 'draining', startedAt: other.startedAt, drainUntil: new Date(Date.now() + (this.deps.apps.settings(app).proxy?.drainTimeoutMs ?? 0)).toISOString() })
          this.deps.log.warn({ app, nodePid: other.pid, slot: other.slot }, 'found a second instance berth had no record of: it drains and stops')
        }
      } else if (rec?.desired === 'running') {
        dead.push(rec)
      }
    }
    for (const sb of this.deps.apps.standbys()) {
      if (sb.pid !== null && isSameProcess(sb.pid, sb.startTicks) && !this.standby.has(sb.app)) {
        const l = this.track(sb.app, sb.releaseId, sb.pid, sb.startTicks ?? 0, null, { slot: sb.slot, port: sb.port }, 'standby')
        l.state = 'running'
        l.startedAt = sb.startedAt ? Date.parse(sb.startedAt) : Date.now()
        l.drainUntil = sb.drainUntil ? Date.parse(sb.drainUntil) : null
        this.deps.log.info({ app: sb.app, nodePid: sb.pid, slot: sb.slot, role: sb.role }, 're-adopted second instance')
      } else if (!this.standby.has(sb.app)) {
        this.deps.apps.deleteStandby(sb.app)
      }
    }
    return { adopted, dead }
  }

  /** A node running on the app's console pipe or an instance's, found from its run_erl command line (see findUnrecordedNode). */
  findUnrecorded(app: string): UnrecordedNode | null {
    return findUnrecordedNode(this.deps.paths, app)
  }

  /** Stops watching (agent shutdown); the nodes keep running. */
  detach(): void {
    for (const l of [...this.live.values(), ...this.standby.values()]) if (l.poll) clearInterval(l.poll)
    this.live.clear()
    this.standby.clear()
  }

  /** For tests and shutdown: stop every node berth runs. */
  async stopAll(settingsOf: (app: string) => AppSettings): Promise<void> {
    await Promise.all([...this.standby.keys()].map((app) => this.stopStandby(app, settingsOf(app), 'stopped by berth')))
    await Promise.all([...this.live.keys()].map((app) => this.stop(app, settingsOf(app))))
  }
}

/** What the deployer needs of the supervisor: the seam a unit test drives with a fake. */
export type NodeControl = Pick<Supervisor, 'command' | 'commandFor' | 'commandHint' | 'start' | 'stop' | 'verify' | 'isUp' | 'adopt'>

/** What zero-downtime deploys need of the supervisor on top of NodeControl: the second instance. */
export type InstanceControl = Pick<Supervisor, 'startStandby' | 'verifyStandby' | 'stopStandby' | 'promote' | 'standbyOf' | 'liveInstance'>

/** A proxied instance's node name: the app's name and its slot (distribution.ts nodeName). */
export function instanceNodeName(app: string, slot: Slot): string {
  return nodeName(app, slot)
}

export interface UnrecordedNode {
  pid: number
  startTicks: number
  release: string
  startedAt: string | null
  /** With the proxy on: the instance's slot and its private port (its PORT); null for the proxy-off node. */
  slot: Slot | null
  port: number | null
}

/**
 * The node berth runs for `app`, found without the database: a run_erl on the app's console pipe, or on an
 * instance slot's pipe, whose command (`exec "…/releases/ID/bin/APP" …`) names a release. With two instances
 * (the database was lost during a drain) it is the one the proxy routes to. Used by adoption and `berth import`.
 */
export function findUnrecordedNode(paths: Paths, app: string): UnrecordedNode | null {
  const found = findUnrecordedNodes(paths, app)
  const routed = routedSlot(paths, app)
  return found.find((n) => n.slot === null) ?? found.find((n) => routed && n.slot === routed.slot && n.port === routed.port) ?? found[0] ?? null
}

/** Every node berth started for `app` that still runs: the proxy-off one and each instance slot's. */
export function findUnrecordedNodes(paths: Paths, app: string): UnrecordedNode[] {
  const out: UnrecordedNode[] = []
  const places: { pipe: string; slot: Slot | null }[] = [{ pipe: path.join(paths.shared(app), 'pipe'), slot: null }, ...SLOTS.map((slot) => ({ pipe: path.join(paths.instance(app, slot), 'pipe'), slot }))]
  for (const { pipe, slot } of places) {
    for (const { info, argv } of findRunErl(pipe)) {
      const release = /\/releases\/([^/"]+)\/bin\//.exec(argv[3] ?? '')?.[1]
      if (!release || !RELEASE_ID.test(release)) continue
      // The instance's port is the PORT berth gave run_erl (the node inherits it); nothing else records it.
      const port = slot ? envPort(info.pid) : null
      if (slot && port === null) continue
      out.push({ pid: info.pid, startTicks: info.startTicks, release, startedAt: startedAt(info.startTicks)?.toISOString() ?? null, slot, port })
      break
    }
  }
  return out
}

/**
 * The instance the app's proxy sends new connections to, from its record (apps/APP/proxy/state.json): berth
 * writes it before each switch, and a haproxy that restarts reads the same slot from the config written with it.
 */
export function routedSlot(paths: Paths, app: string): { slot: Slot; port: number } | null {
  try {
    const live = (JSON.parse(fs.readFileSync(path.join(paths.proxy(app), 'state.json'), 'utf8')) as { live?: { slot?: unknown; port?: unknown } | null }).live
    return live && (SLOTS as readonly unknown[]).includes(live.slot) && typeof live.port === 'number' ? { slot: live.slot as Slot, port: live.port } : null
  } catch {
    return null
  }
}

/** PORT from a process's environment (only that variable is read; the others may hold secrets). */
function envPort(pid: number): number | null {
  try {
    const m = /(?:^|\0)PORT=(\d+)(?:\0|$)/.exec(fs.readFileSync(`/proc/${pid}/environ`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

function readComm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

// Supervision policy for each app's node: when to start it under run_erl and how to stop it (graceful, then
// forced), verification before it counts as running, liveness, and re-adoption after agent restarts. It
// reports a death it did not ask for as a `crash` event; what to do about it is the crash policy's
// (deploy/crash-policy.ts). With the proxy on, an app has a live instance and, while a deploy switches, a
// standby one: which slot each is in, and on which port, is the instances module's (src/instances/); this
// class keeps only the process handle of each. How a node is run is node-runs.ts; processes are process/.

import type { AppDirs } from '../isolation/app-dirs.js'
import type { AppLauncher } from '../isolation/launch.js'
import type { Logger } from 'pino'
import type { AppSettings } from '../apps/settings.js'
import type { AppStore } from '../apps/store.js'
import { problem } from '../errors.js'
import type { Instances } from '../instances/instances.js'
import type { NodeRecord } from '../instances/rows.js'
import type { Paths, Slot } from '../paths.js'
import { forcedStop } from '../process/forced-stop.js'
import { isSameProcess, type ProcInfo } from '../process/proc.js'
import { beamUnder, escalateStop, killTree, spawnRunErl } from '../process/run-erl.js'
import type { ReleaseKind } from '../releases/kinds.js'
import type { EventStore } from '../store/events.js'
import { bootId as newBootId } from '../store/ids.js'
import { nodeName, type DistPorts } from './distribution.js'
import { markedStartCommand } from './log-lines.js'
import { NodeFacade } from './facade.js'
import { NodeRuns } from './node-runs.js'
import type { Handle, InstanceDirs, InstanceSpec, NodeState, NodeStatus, StandbyStatus, SupervisorEvents } from './types.js'
import { verifyNode } from './verify.js'

export type { InstanceDirs, InstanceSpec, NodeState, NodeStatus, StandbyStatus, SupervisorEvents }

/** How long status() trusts a BEAM pid it has seen alive before reading /proc again. */
const BEAM_RECHECK_MS = 1000

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
  /** The owner of slot state: which instance is live, which standby, their ports, the proxy's route. */
  instances: Instances
  /** How an app's processes start (its uid, cgroups, rlimits) and who owns its directories (isolation/). */
  launcher: AppLauncher
  dirs: AppDirs
}

export class Supervisor extends NodeFacade {
  private readonly live = new Map<string, Handle>()
  private readonly standby = new Map<string, Handle>()
  private readonly extra = new Map<string, NodeState>()

  constructor(private readonly deps: SupervisorDeps) {
    super(new NodeRuns(deps), deps.instances)
  }

  private get rows() {
    return this.deps.instances.rows
  }

  status(app: string): NodeStatus {
    const l = this.live.get(app)
    const rec = this.rows.node(app)
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
  private beamOf(l: Handle): ProcInfo | null {
    const t = Date.now()
    // Status polls come many times a second and the read of /proc/PID/stat was most of their cost; a BEAM
    // that died is reported for at most this long, and run_erl's exit (which follows) ends `live` anyway.
    if (l.beam && t - l.beamSeenAt < BEAM_RECHECK_MS) return l.beam
    if (!l.beam || !isSameProcess(l.beam.pid, l.beam.startTicks)) l.beam = beamUnder(l.pid)
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
   * `inst` undefined: the live slot and port (instances.ts) when the proxy is on (a crash restart goes back
   * to where the proxy points), else the proxy-off node.
   */
  async start(app: string, release: string, settings: AppSettings, inst?: InstanceSpec | null): Promise<void> {
    if (this.live.has(app)) throw problem('ALREADY_RUNNING', `The node of "${app}" is already running; stop it first.`)
    const spec = inst !== undefined ? inst : settings.proxy ? this.deps.instances.live(app) : null
    if (spec && this.standby.get(app)?.inst?.slot === spec.slot) throw problem('ALREADY_RUNNING', `Slot ${spec.slot} of "${app}" is taken by its other instance.`)
    const l = await this.spawnNode(app, release, settings, spec, 'live')
    const prev = this.rows.node(app)
    this.rows.saveNode({ app, releaseId: release, pid: l.pid, startTicks: l.startTicks, desired: 'running', startedAt: new Date(l.startedAt).toISOString(), restarts: prev?.restarts ?? 0, lastExit: prev?.lastExit ?? null, slot: spec?.slot ?? null, port: spec?.port ?? null })
    this.extra.delete(app)
    this.deps.log.info({ app, release, nodePid: l.pid, slot: spec?.slot, port: spec?.port }, 'node started')
    this.deps.events.record({ app, actor: 'berth', action: 'node.start', outcome: 'ok', detail: { release, pid: l.pid, ...(spec ? { slot: spec.slot, port: spec.port } : {}) } })
  }

  /**
   * Starts a second instance of a proxied app next to the live one, in the other slot: the one a deploy
   * verifies before the proxy moves to it. It gets no traffic and no crash handling of its own.
   */
  async startStandby(app: string, release: string, settings: AppSettings, inst: InstanceSpec): Promise<void> {
    if (this.standby.has(app)) throw problem('ALREADY_RUNNING', `"${app}" already runs a second instance (slot ${this.standby.get(app)!.inst?.slot}); at most two run at once.`)
    if (this.live.get(app)?.inst?.slot === inst.slot) throw problem('ALREADY_RUNNING', `Slot ${inst.slot} of "${app}" is its live instance's.`)
    const l = await this.spawnNode(app, release, settings, inst, 'standby')
    this.rows.saveStandby({ app, slot: inst.slot, port: inst.port, releaseId: release, pid: l.pid, startTicks: l.startTicks, role: 'starting', startedAt: new Date(l.startedAt).toISOString(), drainUntil: null })
    this.deps.log.info({ app, release, nodePid: l.pid, slot: inst.slot, port: inst.port }, 'second instance started')
    this.deps.events.record({ app, actor: 'berth', action: 'node.start', outcome: 'ok', detail: { release, pid: l.pid, slot: inst.slot, port: inst.port, standby: true } })
  }

  private async spawnNode(app: string, release: string, settings: AppSettings, inst: InstanceSpec | null, role: Handle['role']): Promise<Handle> {
    const dirs = this.runs.dirsOf(app, inst)
    this.runs.ensureAppDirs(app, inst)
    const bootId = newBootId()
    // Its own distribution port, taken now (another program may hold the one it had): nodeEnv reads it.
    await this.deps.distPorts.claim(app, inst?.slot ?? null)
    const command = markedStartCommand({ id: bootId, at: new Date(), release }, `exec "${this.runs.script(app, release)}" ${this.runs.commandFor(app, release, settings, 'start')}`)
    const env = this.runs.nodeEnv(app, inst, this.runs.relxNodeDir(app, release, inst), { release, role: 'node' })
    const { pid, child, startTicks } = await spawnRunErl({
      releaseDir: this.releaseDir(app, release),
      pipe: dirs.pipe,
      log: dirs.log,
      command,
      cwd: this.deps.paths.shared(app),
      env,
      // As the app (isolation/launch.ts); its pipe directory is its own, so emptied as the app too.
      launch: (cmd, args) => this.runs.launch(app, cmd, args),
      resetPipe: (dir) => {
        this.deps.dirs.remove(app, [dir])
        this.deps.dirs.mkdirs(app, [dir], 0o750)
      },
    })
    const l = this.track(app, release, pid, startTicks, child, inst, role)
    l.bootId = bootId
    return l
  }

  private track(app: string, release: string, pid: number, startTicks: number, child: Handle['child'], inst: InstanceSpec | null = null, role: Handle['role'] = 'live'): Handle {
    let onExit!: (why: string) => void
    const exited = new Promise<string>((resolve) => (onExit = resolve))
    const l: Handle = { app, release, inst, role, drainUntil: null, pid, startTicks, child, state: 'starting', startedAt: Date.now(), exited, onExit, poll: null, beam: null, beamSeenAt: 0, stopCause: null, bootId: null }
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

  /** A node found running after an agent restart: watched again, as running since it started. */
  private adoptHandle(app: string, release: string, pid: number, startTicks: number, inst: InstanceSpec | null, role: Handle['role'], startedAt: string | null): Handle {
    const l = this.track(app, release, pid, startTicks, null, inst, role)
    l.state = 'running'
    l.startedAt = startedAt ? Date.parse(startedAt) : Date.now()
    return l
  }

  private exitedNow(l: Handle, why: string): void {
    if (l.poll) clearInterval(l.poll)
    l.poll = null
    if (l.role === 'standby') {
      // Never a crash: a starting instance's verification sees it die, a draining one was on its way out.
      if (this.standby.get(l.app) === l) {
        this.standby.delete(l.app)
        this.rows.deleteStandby(l.app)
      }
      this.deps.log[l.state === 'stopping' ? 'info' : 'warn']({ app: l.app, release: l.release, slot: l.inst?.slot, nodePid: l.pid, why }, 'second instance exited')
      l.onExit(why)
      return
    }
    if (this.live.get(l.app) !== l) return
    this.live.delete(l.app)
    const rec = this.rows.node(l.app)
    const expected = l.state === 'stopping'
    // An asked-for exit says so: "exited with code 1" alone reads like a crash after every restart.
    const exit = expected ? `${l.stopCause ?? 'stopped by berth'} (${why})` : why
    if (rec) this.rows.saveNode({ ...rec, pid: null, startTicks: null, lastExit: `${new Date().toISOString()} ${exit}` })
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
  async waitExit(app: string, timeoutMs: number, l: Handle | undefined = this.live.get(app)): Promise<string | null> {
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
   * Resolves with a warning sentence when the node had to be signalled (it did not stop cleanly), else null.
   */
  async stop(app: string, settings: AppSettings, opts: { desired?: 'stopped' | 'running'; cause?: string } = {}): Promise<string | null> {
    const rec = this.rows.node(app)
    if (rec && opts.desired !== 'running') this.rows.saveNode({ ...rec, desired: 'stopped' })
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
      this.rows.deleteStandby(app)
      return null
    }
    return this.stopInstance(l, settings, cause)
  }

  private async stopInstance(l: Handle, settings: AppSettings, cause: string | null): Promise<string | null> {
    const app = l.app
    l.state = 'stopping'
    l.stopCause = cause
    const { log } = this.deps
    const stopRun = await this.command(app, l.release, this.commandFor(app, l.release, settings, 'stop'), [], Math.min(settings.stopTimeoutMs, 10_000), undefined, l.inst)
    if (stopRun.code !== 0) log.warn({ app, code: stopRun.code }, 'bin/APP stop failed; signalling the node')
    if ((await this.waitExit(app, settings.stopTimeoutMs, l)) !== null) return null
    let warning = ''
    const ended = await escalateStop(l.pid, async (ms) => (await this.waitExit(app, ms, l)) !== null, (sig) => {
      // Set before the signal, so that the exit it causes is recorded (lastExit) as forced, not as a plain stop.
      const forced = forcedStop(app, sig, settings.stopTimeoutMs, stopRun)
      l.stopCause = `${cause ?? 'stopped by berth'}, ${forced.short}`
      warning = forced.warning
      log.warn({ app, signal: sig, pid: l.pid }, 'node did not stop in time')
    })
    if (ended) return warning
    throw problem('NODE_STOP_FAILED', `The node of "${app}" (pid ${l.pid}) did not exit after SIGKILL; it may be stuck in the kernel (D state): check \`ps -o stat -p ${l.pid}\`.`, { pid: l.pid })
  }

  /**
   * The node has booted, then the health URL (if any) answers 2xx, both within bootTimeoutMs; only then does
   * the stable window start (verify.ts). `signal` ends the wait early (berth is shutting down) with ABORTED.
   */
  async verify(app: string, settings: AppSettings, signal?: AbortSignal): Promise<string> {
    return this.verifyHandle(this.live, app, settings, signal, 'the node is not running')
  }

  /** verify() for the second instance: the proxy's healthPath on its own port stands in for healthUrl. */
  async verifyStandby(app: string, settings: AppSettings, signal?: AbortSignal): Promise<string> {
    return this.verifyHandle(this.standby, app, settings, signal, 'the second instance is not running')
  }

  private async verifyHandle(map: Map<string, Handle>, app: string, settings: AppSettings, signal: AbortSignal | undefined, notRunning: string): Promise<string> {
    const l = map.get(app)
    if (!l) throw problem('NODE_NOT_RUNNING', notRunning)
    const notes = await verifyNode(this.runs, l, settings, () => map.get(app) !== l, signal)
    l.state = 'running'
    return notes
  }

  /**
   * The switch, once the proxy sends new connections to the second instance: it becomes the live one (node
   * record, commands, crash handling) and the old live instance, if any, the standby that drains until
   * `drainUntil`. Both records change in one transaction (instances.ts), so a restarted berth sees one or the other.
   */
  promote(app: string, drainUntil: number): void {
    const next = this.standby.get(app)
    if (!next?.inst) throw problem('NODE_NOT_RUNNING', `"${app}" has no second instance to switch to.`)
    const old = this.live.get(app) ?? null
    const rec = this.rows.node(app)
    const liveRec: NodeRecord = { app, releaseId: next.release, pid: next.pid, startTicks: next.startTicks, desired: 'running', startedAt: new Date(next.startedAt).toISOString(), restarts: rec?.restarts ?? 0, lastExit: rec?.lastExit ?? null, slot: next.inst.slot, port: next.inst.port }
    this.deps.instances.promote(app, liveRec, old?.inst ? { app, slot: old.inst.slot, port: old.inst.port, releaseId: old.release, pid: old.pid, startTicks: old.startTicks, role: 'draining', startedAt: new Date(old.startedAt).toISOString(), drainUntil: new Date(drainUntil).toISOString() } : null)
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
    if (l) killTree(l.pid)
  }

  /**
   * After an agent restart: re-adopt nodes that still run (same pid, same start time); report the others.
   * For each app in `apps` whose recorded node is gone (or that has no record: berth.db was lost or replaced),
   * the instances module looks for a run_erl berth started on the app's console pipes (instances.recover):
   * starting a second node next to it would fight it for its port and node name, and stopping it would cost
   * the app its uptime.
   */
  adopt(apps: string[] = []): { adopted: NodeRecord[]; dead: NodeRecord[] } {
    // Commands an earlier berth left running (a migration must not go on behind the back of the deployment
    // that recovery resolved as failed): ended first.
    this.runs.ledger.sweep()
    const adopted: NodeRecord[] = []
    const dead: NodeRecord[] = []
    const records = new Map(this.rows.nodes().map((r) => [r.app, r]))
    for (const app of new Set([...records.keys(), ...apps])) {
      const rec = records.get(app) ?? null
      if (rec && rec.pid !== null && isSameProcess(rec.pid, rec.startTicks)) {
        this.adoptHandle(rec.app, rec.releaseId, rec.pid, rec.startTicks ?? 0, rec.slot && rec.port ? { slot: rec.slot, port: rec.port } : null, 'live', rec.startedAt)
        adopted.push(rec)
        this.deps.log.info({ app: rec.app, nodePid: rec.pid, release: rec.releaseId }, 're-adopted running node')
        continue
      }
      const found = this.deps.instances.recover(app)
      if (!found) {
        if (rec?.desired === 'running') dead.push(rec)
        continue
      }
      const { live: orphan, other } = found
      const inst = orphan.slot && orphan.port ? { slot: orphan.slot, port: orphan.port } : null
      const rebuilt: NodeRecord = { app, releaseId: orphan.release, pid: orphan.pid, startTicks: orphan.startTicks, desired: 'running', startedAt: orphan.startedAt, restarts: rec?.restarts ?? 0, lastExit: rec?.lastExit ?? null, slot: inst?.slot ?? null, port: inst?.port ?? null }
      this.rows.saveNode(rebuilt)
      this.adoptHandle(app, rebuilt.releaseId, orphan.pid, orphan.startTicks, inst, 'live', orphan.startedAt)
      adopted.push(rebuilt)
      this.deps.log.warn({ app, nodePid: orphan.pid, release: orphan.release, slot: inst?.slot, port: inst?.port }, 're-adopted a running node berth had no record of')
      // The other slot's instance, when one runs, was the old one draining (or a new one not yet switched
      // to): recorded as draining from now, so that start-up lets its connections finish and then stops it.
      if (other?.slot && other.port && !this.rows.standby(app)) {
        this.rows.saveStandby({ app, slot: other.slot, port: other.port, releaseId: other.release, pid: other.pid, startTicks: other.startTicks, role: 'draining', startedAt: other.startedAt, drainUntil: new Date(Date.now() + (this.deps.apps.settings(app).proxy?.drainTimeoutMs ?? 0)).toISOString() })
        this.deps.log.warn({ app, nodePid: other.pid, slot: other.slot }, 'found a second instance berth had no record of: it drains and stops')
      }
    }
    for (const sb of this.rows.standbys()) {
      if (sb.pid !== null && isSameProcess(sb.pid, sb.startTicks) && !this.standby.has(sb.app)) {
        const l = this.adoptHandle(sb.app, sb.releaseId, sb.pid, sb.startTicks ?? 0, { slot: sb.slot, port: sb.port }, 'standby', sb.startedAt)
        l.drainUntil = sb.drainUntil ? Date.parse(sb.drainUntil) : null
        this.deps.log.info({ app: sb.app, nodePid: sb.pid, slot: sb.slot, role: sb.role }, 're-adopted second instance')
      } else if (!this.standby.has(sb.app)) {
        this.rows.deleteStandby(sb.app)
      }
    }
    return { adopted, dead }
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
export type NodeControl = Pick<Supervisor, 'command' | 'commandFor' | 'commandHint' | 'uidOf' | 'kindOf' | 'start' | 'stop' | 'verify' | 'isUp' | 'adopt'>

/** What zero-downtime deploys need of the supervisor on top of NodeControl: the second instance and its port. */
export type InstanceControl = Pick<Supervisor, 'startStandby' | 'verifyStandby' | 'stopStandby' | 'promote' | 'standbyOf' | 'liveInstance' | 'allocatePort'>

/** A proxied instance's node name: the app's name and its slot (instances/names.ts). */
export function instanceNodeName(app: string, slot: Slot): string {
  return nodeName(app, slot)
}

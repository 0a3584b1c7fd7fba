// Console sessions of apps: opens remote shells (`bin/APP remote` in a pty) and attachments to the node's own
// console, caps them per app, records each one (a row in SQLite, output in an asciicast file) and prunes old
// recordings, and ends a session whose token is revoked or expires. Knows nothing of websockets: the adapter
// hands in a TerminalSink and drives the Session it gets.

import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import type { TokenEnd, TokenInfo } from '../auth/tokens.js'
import type { TokenWatch } from '../auth/watch.js'
import { problem } from '../errors.js'
import type { Paths } from '../paths.js'
import type { AppStore } from '../apps/store.js'
import { currentReleaseId } from '../releases/current.js'
import { now, type Database } from '../store/db.js'
import type { EventStore } from '../store/events.js'
import { sessionId } from '../store/ids.js'
import type { Supervisor } from '../supervision/supervisor.js'
import { AttachViewer, openConsoleHub, type ConsoleHub } from './attach.js'
import { Recorder } from './recorder.js'
import { SessionStore, type SessionKind, type SessionRecord } from '../store/sessions.js'
import { checkSize, TerminalSession, type TerminalSink } from './terminal.js'

export type { SessionKind, SessionRecord } from '../store/sessions.js'
export type { TerminalSink } from './terminal.js'

export interface SessionManagerDeps {
  db: Database
  paths: Paths
  supervisor: Supervisor
  apps: AppStore
  log: Logger
  /** Concurrent sessions per app, remote shells and console viewers together. */
  maxPerApp: number
  /** Close a session after this long without input; 0 disables. */
  idleMs: number
  retention: { maxRecordings: number }
  /** When given, opening and closing a session is written to the audit trail. */
  events?: EventStore
  /** When given, a session opened with a token ends as soon as the token is revoked or expires. */
  tokenWatch?: TokenWatch
  /** Size cap of one recording (default 50 MiB). */
  recordingMaxBytes?: number
  /** Between SIGHUP and SIGKILL when a session is closed (default 2 s). */
  hangupGraceMs?: number
}

/** Who opens a session: the token (its name is the actor; the session lives only as long as it is valid), or a bare name. */
export type Opener = TokenInfo | string

function actorOf(who: Opener): string {
  return typeof who === 'string' ? who : who.name
}

export interface TerminalSize {
  cols: number
  rows: number
}

/** An open session, as the websocket adapter drives it. */
export interface Session {
  readonly id: string
  readonly app: string
  readonly kind: SessionKind
  readonly actor: string
  /** The pty's process: `bin/APP remote`, or for attach the to_erl shared by every viewer of the console. */
  readonly pid: number
  /** Resolves once the session is over: processes gone, row and recording complete, sink.exit called. */
  readonly ended: Promise<void>
  /** False when the program has more unread input than its limit: stop reading until the sink's inputDrained(). */
  input(data: Buffer | string): boolean
  /** Throws VALIDATION_FAILED unless both are whole numbers in 1..1000. */
  resize(cols: number, rows: number): void
  /** Call on the transport's 'drain': output resumes once the sink is below the low-water mark. */
  drained(): void
  close(reason?: string): Promise<void>
  stats(): SessionStats
}

export interface SessionStats {
  bytesIn: number
  bytesOut: number
  /** Times output was paused for a slow sink (remote). */
  pauses: number
  /** Console output not delivered to a slow viewer (attach) or not recorded (disk too slow). */
  skippedBytes: number
}

export interface SessionInfo extends SessionRecord {
  active: boolean
}

/** What a Session drives: the remote shell's pty (terminal.ts) or one viewer of the node's console (attach.ts). */
interface Driver {
  readonly bytesIn: number
  readonly bytesOut: number
  input(data: Buffer | string): boolean
  resize(cols: number, rows: number): void
  drained(): void
  close(reason: string): Promise<void>
}

interface Live {
  record: SessionRecord
  recorder: Recorder | null
  handle: Session | null
  counters: () => { bytesIn: number; bytesOut: number }
  done: Promise<void>
  /** Remote shells only: called when the node they talk to is no longer running. */
  nodeDown?: () => void
  /** Set when the opener's token was revoked or expired: input is dropped from then on. */
  endedBy?: TokenEnd
  /** Lets go of the opener's token in the watch. */
  unhold: () => void
}

const RECORDING = /^sessions\/[0-9a-z-]+\.cast$/
/** How often apps with remote shells are checked for a node that went away. */
const NODE_WATCH_MS = 1000

export class SessionManager {
  private readonly store: SessionStore
  private readonly live = new Map<string, Live>()
  /** Slots taken by opens that are still checking the app (the cap must hold across their awaits). */
  private readonly pending = new Map<string, number>()
  private readonly hubs = new Map<string, ConsoleHub>()
  private shuttingDown = false
  private nodeWatch: NodeJS.Timeout | null = null

  constructor(private readonly deps: SessionManagerDeps) {
    this.store = new SessionStore(deps.db)
  }

  /** At agent start: rows a previous agent left open are marked interrupted (their ptys died with it). */
  recover(): number {
    const n = this.store.interruptOpen()
    if (n > 0) this.deps.log.warn({ sessions: n }, 'marked console sessions of the previous agent as interrupted')
    return n
  }

  /** A new `bin/APP remote` shell: a hidden node connected to the app's node by distribution. */
  async openRemote(app: string, who: Opener, size: TerminalSize, sink: TerminalSink): Promise<Session> {
    checkSize(size.cols, size.rows)
    const release = await this.admit(app)
    try {
      const { paths, supervisor, apps, idleMs, hangupGraceMs } = this.deps
      supervisor.ensureAppDirs(app)
      // The running node's release, not necessarily `current`: each build has its own cookie.
      const file = supervisor.script(app, release)
      try {
        fs.accessSync(file, fs.constants.X_OK)
      } catch {
        throw problem('RELEASE_INVALID', `Release ${release} of "${app}" has no executable bin/${supervisor.binName(app, release)}; deploy a complete release.`)
      }
      const command = supervisor.commandFor(app, release, apps.settings(app), 'remote')
      const { entry, tee } = this.begin(app, 'remote', who, release, size, sink)
      let term: TerminalSession
      const run = supervisor.commandEnv(app, release)
      try {
        const l = supervisor.launch(app, file, [command])
        term = new TerminalSession({ file: l.file, args: l.args, cwd: paths.shared(app), env: run.env, cols: size.cols, rows: size.rows, sink: tee, idleMs, hangupGraceMs })
      } catch (err) {
        run.dispose()
        await this.finish(entry, null, 'failed to start')
        throw err
      }
      void entry.done.finally(run.dispose)
      // Once its node is gone a remote shell only says "Shell process terminated": end it rather than leave
      // a hidden node running until the idle timeout.
      entry.nodeDown = () => {
        term.notice(`the node of ${app} stopped; closing this shell`)
        void term.close('node stopped')
      }
      this.watchNodes()
      return this.session(entry, term.pid, term, () => ({ pauses: term.pauses, skippedBytes: 0 }))
    } finally {
      this.release(app)
    }
  }

  /**
   * A viewer of the node's own console (the IEx under run_erl). Viewers share one to_erl per app (run_erl
   * serves only one); Ctrl+C and Ctrl+G are stripped, Ctrl+D detaches the viewer. See attach.ts.
   */
  async openAttach(app: string, who: Opener, size: TerminalSize, sink: TerminalSink): Promise<Session> {
    checkSize(size.cols, size.rows)
    const release = await this.admit(app)
    try {
      const { idleMs } = this.deps
      let hub = this.hubs.get(app)
      if (hub && !hub.alive) {
        // The last viewer is leaving (or the console ended): let its to_erl go before starting another.
        await hub.close('detached')
        if (this.hubs.get(app) === hub) this.hubs.delete(app)
        hub = this.hubs.get(app)
      }
      const first = !hub
      if (!hub) {
        hub = openConsoleHub(this.deps, app, release, size)
        this.hubs.set(app, hub)
      }
      let opened: ReturnType<SessionManager['begin']>
      try {
        opened = this.begin(app, 'attach', who, release, size, sink)
      } catch (err) {
        if (first) void hub.close('failed to start')
        throw err
      }
      const { entry, tee } = opened
      const viewer = new AttachViewer({ hub, sink: tee, idleMs })
      const handle = this.session(entry, hub.pid, viewer, () => ({ pauses: 0, skippedBytes: viewer.skippedBytes }))
      viewer.start(app, first)
      return handle
    } finally {
      this.release(app)
    }
  }

  /**
   * The one way a Session is made, for a remote shell's pty and an attach viewer alike: input is dropped once
   * the opener's token has ended, a resize reaches the recording too, and close waits for the record to complete.
   */
  private session(entry: Live, pid: number, driver: Driver, extra: () => { pauses: number; skippedBytes: number }): Session {
    entry.counters = () => driver
    const { app, kind, actor, id } = entry.record
    const handle: Session = {
      id,
      app,
      kind,
      // begin() records the opener's name: never null for a session opened here.
      actor: actor!,
      pid,
      ended: entry.done,
      input: (data) => (entry.endedBy ? true : driver.input(data)),
      resize: (cols, rows) => {
        driver.resize(cols, rows)
        entry.recorder?.resize(cols, rows)
      },
      drained: () => driver.drained(),
      close: async (reason = 'closed') => {
        await driver.close(reason)
        await entry.done
      },
      stats: () => {
        const { pauses, skippedBytes } = extra()
        return { bytesIn: driver.bytesIn, bytesOut: driver.bytesOut, pauses, skippedBytes: skippedBytes + (entry.recorder?.skippedBytes ?? 0) }
      },
    }
    entry.handle = handle
    return handle
  }

  /** Sessions of the app, newest first; open ones with their live byte counts. */
  list(app: string, limit = 100): SessionInfo[] {
    return this.store.list(app, limit).map((r) => this.withLive(r))
  }

  get(app: string, id: string): SessionInfo | null {
    const r = this.store.get(app, id)
    return r ? this.withLive(r) : null
  }

  /** Absolute path of the session's asciicast file, or null (unknown session, or recording pruned/absent). */
  recordingPath(app: string, id: string): string | null {
    const r = this.store.get(app, id)
    if (!r?.recording || !RECORDING.test(r.recording)) return null
    const file = path.join(this.deps.paths.app(app), r.recording)
    return fs.existsSync(file) ? file : null
  }

  /** Open sessions of the app (remote shells and console viewers). */
  active(app: string): number {
    let n = 0
    for (const l of this.live.values()) if (l.record.app === app) n++
    return n
  }

  /** Daemon shutdown: ends every session (the nodes keep running) and refuses new ones. */
  async closeAll(reason = 'shutdown'): Promise<void> {
    this.shuttingDown = true
    await Promise.all([...this.live.values()].map((l) => l.handle?.close(reason) ?? l.done))
    await Promise.all([...this.hubs.values()].map((h) => h.close(reason)))
    this.hubs.clear()
  }

  private watchNodes(): void {
    if (this.nodeWatch) return
    this.nodeWatch = setInterval(() => {
      const remotes = [...this.live.values()].filter((l) => l.nodeDown)
      if (remotes.length === 0) {
        clearInterval(this.nodeWatch!)
        this.nodeWatch = null
        return
      }
      const down = new Map<string, boolean>()
      for (const l of remotes) {
        const app = l.record.app
        if (!down.has(app)) down.set(app, !this.deps.supervisor.isUp(app))
        if (down.get(app)) {
          const hook = l.nodeDown!
          delete l.nodeDown
          hook()
        }
      }
    }, NODE_WATCH_MS)
    this.nodeWatch.unref()
  }

  /** Takes a session slot for the app and checks it can have one; returns the running node's release. */
  private async admit(app: string): Promise<string> {
    const { paths, supervisor, maxPerApp } = this.deps
    if (this.shuttingDown) throw problem('SHUTTING_DOWN', 'berth is shutting down; open the session again once it is back.')
    if (this.active(app) + (this.pending.get(app) ?? 0) >= maxPerApp) {
      throw problem('TOO_MANY_SESSIONS', `App "${app}" already has ${maxPerApp} console sessions open, the most allowed; close one and try again.`, { limit: maxPerApp })
    }
    this.pending.set(app, (this.pending.get(app) ?? 0) + 1)
    try {
      const current = await currentReleaseId(paths, app)
      if (!current) throw problem('NOT_DEPLOYED', `App "${app}" has no current release; deploy one before opening a console.`)
      if (!supervisor.isUp(app)) throw problem('NODE_NOT_RUNNING', `The node of "${app}" is not running; start it with POST /v1/apps/${app}/start and try again.`)
      return supervisor.status(app).release ?? current
    } catch (err) {
      this.release(app)
      throw err
    }
  }

  private release(app: string): void {
    const n = (this.pending.get(app) ?? 1) - 1
    if (n > 0) this.pending.set(app, n)
    else this.pending.delete(app)
  }

  /** The row, the recording and a sink that tees output into the recording and completes both at exit. */
  private begin(app: string, kind: SessionKind, who: Opener, release: string, size: TerminalSize, sink: TerminalSink): { entry: Live; tee: TerminalSink } {
    const { paths, log, events, recordingMaxBytes, tokenWatch } = this.deps
    const actor = actorOf(who)
    let entry: Live | null = null
    // The sink hears of the end once: at the token's end (at once), or when the session is over.
    let told = false
    const tell = (code: number | null, reason: string) => {
      if (told) return
      told = true
      sink.exit(code, reason, entry?.endedBy?.problem)
    }
    // First, before anything is recorded or started: the token may have been revoked since it was checked.
    const unhold =
      typeof who !== 'string' && tokenWatch
        ? tokenWatch.hold(who, (end) => {
            if (!entry) return
            entry.endedBy = end
            tell(null, end.reason)
            // The processes follow within the hangup grace; input is dropped meanwhile.
            void entry.handle?.close(end.reason)
          })
        : () => {}
    const id = sessionId()
    const rel = `sessions/${id}.cast`
    let recorder: Recorder | null = null
    try {
      fs.mkdirSync(path.join(paths.app(app), 'sessions'), { recursive: true, mode: 0o750 })
      recorder = new Recorder({ file: path.join(paths.app(app), rel), cols: size.cols, rows: size.rows, title: `${app} ${kind} (${actor})`, maxBytes: recordingMaxBytes, log })
    } catch (err) {
      // A full disk must not lock operators out of the node they are trying to rescue.
      log.warn({ app, session: id, err }, 'cannot record console session; it runs unrecorded')
    }
    const record: SessionRecord = { id, app, kind, actor, release, startedAt: now(), endedAt: null, endReason: null, exitCode: null, bytesIn: 0, bytesOut: 0, recording: recorder ? rel : null }
    try {
      this.store.insert(record)
    } catch (err) {
      unhold()
      void recorder?.close()
      throw err
    }
    let resolveDone!: () => void
    const done = new Promise<void>((resolve) => (resolveDone = resolve))
    const live: Live = { record, recorder, handle: null, counters: () => ({ bytesIn: 0, bytesOut: 0 }), done, unhold }
    entry = live
    this.live.set(id, live)
    events?.record({ app, actor, action: 'session.open', outcome: 'ok', detail: { session: id, kind, release } })
    log.info({ app, session: id, kind, actor }, 'console session opened')
    const tee: TerminalSink = {
      // The client first: recording only queues the chunk, but on the echo path every microsecond before the
      // send is latency. finally: a chunk the client could not be sent is still recorded, in order.
      write: (data) => {
        try {
          sink.write(data)
        } finally {
          recorder?.output(data)
        }
      },
      // A recording that cannot keep up slows the session down like a slow client does.
      bufferedAmount: () => sink.bufferedAmount() + (recorder?.pending ?? 0),
      inputDrained: () => sink.inputDrained?.(),
      exit: (code, reason) => {
        void this.finish(live, code, reason).finally(() => {
          try {
            tell(code, reason)
          } finally {
            resolveDone()
          }
        })
      },
    }
    return { entry: live, tee }
  }

  private async finish(entry: Live, code: number | null, reason: string): Promise<void> {
    const { log, events } = this.deps
    const { id, app, kind, actor } = entry.record
    try {
      await entry.recorder?.close()
      const { bytesIn, bytesOut } = entry.counters()
      this.store.finish(id, { endedAt: now(), endReason: reason, exitCode: code, bytesIn, bytesOut, recording: entry.record.recording })
      events?.record({ app, actor, action: 'session.end', outcome: 'ok', detail: { session: id, kind, reason, exitCode: code, bytesIn, bytesOut } })
      log.info({ app, session: id, kind, reason, exitCode: code, bytesIn, bytesOut }, 'console session ended')
    } catch (err) {
      log.error({ app, session: id, err }, 'could not complete the console session record')
    } finally {
      entry.unhold()
      this.live.delete(id)
    }
    await this.prune(app)
  }

  /** Keeps the newest retention.maxRecordings recordings of the app; older files go, their rows stay. */
  private async prune(app: string): Promise<void> {
    const { paths, log, retention } = this.deps
    for (const r of this.store.recordingsBeyond(app, retention.maxRecordings)) {
      try {
        if (RECORDING.test(r.recording)) await fs.promises.rm(path.join(paths.app(app), r.recording), { force: true })
        this.store.clearRecording(r.id)
      } catch (err) {
        log.warn({ app, session: r.id, err }, 'could not remove an old session recording')
      }
    }
  }

  private withLive(r: SessionRecord): SessionInfo {
    const l = this.live.get(r.id)
    if (!l) return { ...r, active: false }
    const { bytesIn, bytesOut } = l.counters()
    return { ...r, bytesIn, bytesOut, active: true }
  }
}

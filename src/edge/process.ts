// The edge's haproxy as a process: a master (-W) berth starts detached, or that systemd runs, reloaded
// through its master socket; the current worker's runtime socket, and the old workers still finishing.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { problem } from '../errors.js'
import { isSameProcess, procInfo, signal, sleep } from '../process/proc.js'
import { runtimeCommand } from '../proxy/haproxy.js'
import { capLogFile, endHaproxy, logTail } from '../proxy/haproxy-proc.js'

const TIMEOUT_MS = 3000
const START_TIMEOUT_MS = 10_000

/** The pid record of a master berth started: enough to find it again after berth restarts. */
export interface MasterRecord {
  pid: number
  startTicks: number
  startedAt: string
  restarts: number
  lastExit: string | null
}

/** `show proc` of the master CLI: the current worker and the old ones still finishing their connections. */
export interface Workers {
  current: number | null
  old: number[]
}

export function parseShowProc(text: string): Workers {
  let section: 'master' | 'workers' | 'old' = 'master'
  const out: Workers = { current: null, old: [] }
  for (const line of text.split('\n')) {
    if (/^# workers/.test(line)) section = 'workers'
    else if (/^# old workers/.test(line)) section = 'old'
    const m = /^(\d+)\s+worker\b/.exec(line)
    if (!m) continue
    if (section === 'old') out.old.push(Number(m[1]))
    else out.current ??= Number(m[1])
  }
  return out
}

export interface EdgeProcessDeps {
  haproxy: string
  dir: string
  config: string
  runtimeSocket: string
  /** systemd runs the master (berth-edge.service): berth never spawns or kills it. */
  externalMaster: string | null
  /** How haproxy is started (isolation/launch.ts engine: without the apps' groups); default: as it is. */
  launch?: (cmd: string, args: string[]) => { file: string; args: string[] }
}

export class EdgeProcess {
  constructor(private readonly d: EdgeProcessDeps) {}

  get masterSocket(): string {
    return this.d.externalMaster ?? path.join(this.d.dir, 'master.sock')
  }

  get external(): boolean {
    return this.d.externalMaster !== null
  }

  private get log(): string {
    return path.join(this.d.dir, 'haproxy.log')
  }

  master(command: string): Promise<string> {
    return runtimeCommand(this.masterSocket, command, TIMEOUT_MS)
  }

  runtime(command: string): Promise<string> {
    return runtimeCommand(this.d.runtimeSocket, command, TIMEOUT_MS)
  }

  async workers(): Promise<Workers> {
    return parseShowProc(await this.master('show proc'))
  }

  /** A command to each old worker still finishing connections (addressed through the master: `@!PID`). */
  async onOldWorkers(command: string): Promise<string[]> {
    const { old } = await this.workers()
    return Promise.all(old.map((pid) => this.master(`@!${pid} ${command}`).catch(() => '')))
  }

  /** The config parses (haproxy -c): checked before a reload, so a bad one is an answer, not a dead edge. */
  async check(): Promise<void> {
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn(this.d.haproxy, ['-c', '-q', '-f', this.d.config], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 })
      let text = ''
      child.stdout.on('data', (b: Buffer) => (text += b.toString()))
      child.stderr.on('data', (b: Buffer) => (text += b.toString()))
      child.on('error', (err) => resolve({ code: -1, text: err.message }))
      child.on('close', (code) => resolve({ code, text }))
    })
    if (out.code !== 0) throw problem('EDGE_RELOAD_FAILED', `haproxy refused the edge's new configuration: ${out.text.trim().split('\n').slice(-3).join(' / ').slice(0, 500)}`)
  }

  /** Starts a master with the config on disk; answers once its worker's runtime socket does. */
  async spawn(prev: Partial<MasterRecord>): Promise<MasterRecord> {
    fs.rmSync(this.masterSocket, { force: true })
    fs.rmSync(this.d.runtimeSocket, { force: true })
    this.capLog()
    const out = fs.openSync(this.log, 'a', 0o600)
    // Foreground master (-W -db) in a session of its own: berth's exit or signals never reach it.
    const argv = ['-W', '-db', '-S', `${this.masterSocket},mode,600`, '-f', this.d.config]
    const l = this.d.launch?.(this.d.haproxy, argv) ?? { file: this.d.haproxy, args: argv }
    const child = spawn(l.file, l.args, { cwd: this.d.dir, detached: true, stdio: ['ignore', out, out] })
    fs.closeSync(out)
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!))
      child.once('error', (err) => reject(problem('EDGE_START_FAILED', `haproxy could not be started for the edge (${(err as NodeJS.ErrnoException).code ?? err.message}); install it (apt-get install haproxy) or set BERTH_HAPROXY.`)))
    })
    child.unref()
    const r: MasterRecord = { pid, startTicks: procInfo(pid)?.startTicks ?? 0, startedAt: new Date().toISOString(), restarts: prev.restarts ?? 0, lastExit: prev.lastExit ?? null }
    if (!(await this.answers(() => isSameProcess(r.pid, r.startTicks), null))) {
      signal(r.pid, 'SIGKILL')
      throw problem('EDGE_START_FAILED', `the edge's haproxy did not start: ${this.logTail() || 'no output'}. Check that nothing else listens on the edge's addresses (and, below port 1024, that haproxy has CAP_NET_BIND_SERVICE: see systemd/berth-edge.service).`)
    }
    return r
  }

  /**
   * A hitless reload: the master starts a new worker on the config on disk, handing it the listening
   * sockets, and the old worker finishes the connections it has (up to hard-stop-after). Answers once the
   * new worker's runtime socket does.
   */
  async reload(alive: () => boolean): Promise<void> {
    await this.check()
    const before = (await this.workers()).current
    const answer = await this.master('reload')
    if (answer.trim() && !/success|reload/i.test(answer)) throw problem('EDGE_RELOAD_FAILED', `the edge's master refused the reload: ${answer.trim().slice(0, 300)}`)
    if (!(await this.answers(alive, before))) throw problem('EDGE_RELOAD_FAILED', `the edge did not come back from its reload: ${this.logTail() || 'no output'}`)
  }

  /** Waits until a worker other than `previous` is current and its runtime socket answers. */
  private async answers(alive: () => boolean, previous: number | null): Promise<boolean> {
    const deadline = Date.now() + START_TIMEOUT_MS
    while (Date.now() < deadline && (this.external || alive())) {
      const w = await this.workers().catch(() => null)
      if (w?.current && w.current !== previous) {
        const info = await this.runtime('show info').catch(() => '')
        if (info.includes(`Pid: ${w.current}`)) return true
      }
      await sleep(50)
    }
    return false
  }

  async kill(r: MasterRecord): Promise<void> {
    await endHaproxy(r.pid, r.startTicks)
  }

  /** The master logs warnings only (access lines go to berth over UDP): cut it in place past 1 MiB. */
  capLog(): void {
    capLogFile(this.log, 1024 * 1024)
  }

  logTail(): string {
    return logTail(this.log, (l) => /ALERT|WARNING|error/i.test(l))
  }
}

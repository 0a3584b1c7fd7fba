// The one-shot commands berth has running (eval, rpc, pid, stop: each a BEAM of its own), written down in
// DATA/run/ while they run, so that a berth restarted after kill -9 ends what its predecessor left behind.

import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { descendants, isSameProcess, procInfo, signal, signalGroup, type CommandRecorder } from './proc.js'

interface Entry {
  pid: number
  startTicks: number
  /** The berth that started it: while that process lives, the command is its business, not ours. */
  owner: { pid: number; startTicks: number }
  app: string
  command: string
  startedAt: string
}

export type { CommandRecorder }

export class CommandLedger implements CommandRecorder {
  private readonly self = { pid: process.pid, startTicks: procInfo(process.pid)?.startTicks ?? 0 }

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  private file(pid: number): string {
    return path.join(this.dir, `cmd-${pid}.json`)
  }

  /** Written synchronously right after spawn: a kill -9 a moment later must find the entry on disk. */
  started(pid: number, app: string, command: string): void {
    const info = procInfo(pid)
    if (!info) return
    const entry: Entry = { pid, startTicks: info.startTicks, owner: this.self, app, command, startedAt: new Date().toISOString() }
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 })
      // Rename into place so that a reader never sees half an entry.
      const tmp = `${this.file(pid)}.tmp`
      fs.writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 })
      fs.renameSync(tmp, this.file(pid))
    } catch (err) {
      this.log.warn({ app, err }, 'could not record a running command; it would survive a crash of berth')
    }
  }

  ended(pid: number): void {
    fs.rmSync(this.file(pid), { force: true })
  }

  /**
   * At agent start: ends every recorded command whose berth is gone and that is provably the process recorded
   * (same pid and /proc start time; a reused pid is left alone), with its process group and descendants.
   */
  sweep(): number {
    let ended = 0
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return 0
    }
    for (const name of names) {
      const file = path.join(this.dir, name)
      const entry = name.endsWith('.json') ? readEntry(file) : null
      // A live owner (this berth, or another one on the same data dir) still answers for its commands.
      if (entry && isSameProcess(entry.owner.pid, entry.owner.startTicks)) continue
      if (entry && isSameProcess(entry.pid, entry.startTicks)) {
        const tree = descendants(entry.pid)
        // Its group is its own (runCommand starts it detached), so the group kill cannot reach anyone else.
        if (procInfo(entry.pid)?.pgid === entry.pid) signalGroup(entry.pid, 'SIGKILL')
        signal(entry.pid, 'SIGKILL')
        for (const p of tree) if (isSameProcess(p.pid, p.startTicks)) signal(p.pid, 'SIGKILL')
        ended++
        this.log.warn({ app: entry.app, pid: entry.pid, command: entry.command, startedAt: entry.startedAt }, 'ended a command left running by an earlier berth')
      }
      fs.rmSync(file, { force: true })
    }
    return ended
  }
}

function readEntry(file: string): Entry | null {
  try {
    const e = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Entry>
    const pidOk = (n: unknown) => Number.isInteger(n) && (n as number) > 1
    if (!pidOk(e.pid) || !Number.isInteger(e.startTicks) || !pidOk(e.owner?.pid) || !Number.isInteger(e.owner?.startTicks)) return null
    return e as Entry
  } catch {
    return null
  }
}

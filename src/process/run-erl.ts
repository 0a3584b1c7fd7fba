// Nodes as OS processes: spawning a release under run_erl in a session of its own, finding its BEAM, reading
// the PORT it was given, and signalling its whole tree. What a node is for (slots, policy) is not known here.

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { descendants, isSameProcess, procInfo, signal, signalGroup, type ProcInfo } from './proc.js'

export interface RunErlSpawn {
  /** The release directory: its erts-*\/bin/run_erl is used when it has one, else run_erl from PATH. */
  releaseDir: string
  /** run_erl's pipe directory (what to_erl attaches to) and its log directory. */
  pipe: string
  log: string
  /** The shell command run_erl runs (`exec ".../bin/APP" start`). */
  command: string
  cwd: string
  env: NodeJS.ProcessEnv
  /** How the app's processes start (isolation/launch.ts): as its uid, in its cgroups. Default: as berth. */
  launch?: (cmd: string, args: string[]) => { file: string; args: string[] }
  /** Empties the pipe directory; with isolation, as the app (the directory is the app's). */
  resetPipe?: (dir: string) => void
}

export interface Spawned {
  pid: number
  startTicks: number
  child: ChildProcess
}

/**
 * Starts run_erl detached: its own session and process group, so berth's exit or restart never takes the node
 * with it. The pipe directory is made afresh: a stale pipe would make run_erl pick erlang.pipe.2 and to_erl
 * attach to nothing.
 */
export async function spawnRunErl(s: RunErlSpawn): Promise<Spawned> {
  if (s.resetPipe) s.resetPipe(s.pipe)
  else {
    fs.rmSync(s.pipe, { recursive: true, force: true })
    fs.mkdirSync(s.pipe, { recursive: true, mode: 0o750 })
  }
  const erts = fs.readdirSync(s.releaseDir).find((f) => f.startsWith('erts-'))
  const runErl = erts ? path.join(s.releaseDir, erts, 'bin', 'run_erl') : 'run_erl'
  const argv = [`${s.pipe}/`, `${s.log}/`, s.command]
  const l = s.launch ? s.launch(runErl, argv) : { file: runErl, args: argv }
  const child = spawn(l.file, l.args, { cwd: s.cwd, env: s.env, detached: true, stdio: 'ignore' })
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!))
    child.once('error', reject)
  })
  child.unref()
  return { pid, child, startTicks: procInfo(pid)?.startTicks ?? 0 }
}

/** The BEAM under a run_erl: the first live descendant whose command name starts with "beam". */
export function beamUnder(pid: number): ProcInfo | null {
  return descendants(pid).find((p) => p.state !== 'Z' && readComm(p.pid).startsWith('beam')) ?? null
}

/** PORT from a process's environment (only that variable is read; the others may hold secrets). */
export function envPort(pid: number): number | null {
  try {
    const m = /(?:^|\0)PORT=(\d+)(?:\0|$)/.exec(fs.readFileSync(`/proc/${pid}/environ`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/** Signals a process, its descendants, and each one's process group (run_erl's and the BEAM's differ). */
export function signalTree(pid: number, sig: NodeJS.Signals): number[] {
  const pids = [pid, ...descendants(pid).map((p) => p.pid)]
  for (const p of pids) {
    signalGroup(procInfo(p)?.pgid ?? p, sig)
    signal(p, sig)
  }
  return pids
}

/** SIGKILL to a process and its descendants, deepest first (a node found unhealthy). */
export function killTree(pid: number): void {
  for (const p of [...descendants(pid).reverse(), procInfo(pid)].filter((x) => x !== null)) signal(p.pid, 'SIGKILL')
}

/** Still the process recorded, a BEAM included: `isSameProcess` for a ProcInfo. */
export function stillRuns(p: ProcInfo): boolean {
  return isSameProcess(p.pid, p.startTicks)
}

function readComm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

/**
 * The end of a stop that a node ignored: SIGTERM to its whole tree, then SIGKILL, each followed by a wait for
 * its exit (`waitExit` answers whether it came within the time). `before` runs before each signal, so that
 * the exit it causes can be told apart from a plain stop. Answers the signal that ended it, or null when
 * even SIGKILL did not (a process stuck in the kernel).
 */
export async function escalateStop(pid: number, waitExit: (ms: number) => Promise<boolean>, before: (sig: 'SIGTERM' | 'SIGKILL') => void): Promise<'SIGTERM' | 'SIGKILL' | null> {
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    before(sig)
    signalTree(pid, sig)
    if (await waitExit(sig === 'SIGTERM' ? 5000 : 10_000)) return sig
  }
  return null
}

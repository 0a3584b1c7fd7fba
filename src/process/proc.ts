// Process primitives for everything berth runs: identity of a pid across agent restarts (start time from
// /proc), process-tree lookup, group kills, and one-shot commands with a timeout and bounded output.
// The bottom layer: supervision, the proxy and sessions build on it; it imports none of them.

import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

export interface ProcInfo {
  pid: number
  ppid: number
  pgid: number
  state: string
  startTicks: number
}

/** Reads /proc/PID/stat; null when the process is gone. */
export function procInfo(pid: number): ProcInfo | null {
  let raw: string
  try {
    raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ')
  return { pid, state: rest[0]!, ppid: Number(rest[1]), pgid: Number(rest[2]), startTicks: Number(rest[19]) }
}

/** True when pid runs and is the same process as when we recorded startTicks (pids get reused). Zombies are dead. */
export function isSameProcess(pid: number, startTicks: number | null): boolean {
  const info = procInfo(pid)
  if (!info || info.state === 'Z' || info.state === 'X') return false
  return startTicks === null || info.startTicks === startTicks
}

/** All live descendants of pid (children first), found by walking /proc. */
export function descendants(pid: number): ProcInfo[] {
  const all: ProcInfo[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const info = procInfo(Number(name))
    if (info && info.state !== 'Z') all.push(info)
  }
  const out: ProcInfo[] = []
  const queue = [pid]
  while (queue.length > 0) {
    const p = queue.shift()!
    for (const c of all) {
      if (c.ppid === p) {
        out.push(c)
        queue.push(c.pid)
      }
    }
  }
  return out
}

/**
 * The run_erl processes of this user whose pipe directory is `pipeDir` (its first argument), with their
 * command lines: how berth finds a node it started but has no record of (its database was lost or replaced).
 * A run_erl that has forked but not yet exec'd its child has the same command line; only the topmost counts.
 */
export function findRunErl(pipeDir: string, uids: number[] = []): { info: ProcInfo; argv: string[] }[] {
  const found: { info: ProcInfo; argv: string[] }[] = []
  const uid = process.getuid?.()
  // berth's own, or the app's (isolation): never another user's run_erl that names the same directory.
  const allowed = new Set([...(uid !== undefined ? [uid] : []), ...uids])
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')
      if (argv[1] !== `${pipeDir}/` || !argv[0]!.endsWith('run_erl')) continue
      if (uid !== undefined && !allowed.has(fs.statSync(`/proc/${name}`).uid)) continue
      const info = procInfo(Number(name))
      if (info && info.state !== 'Z' && info.state !== 'X') found.push({ info, argv })
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found.filter((f) => !found.some((o) => o.info.pid === f.info.ppid))
}

/** When a process started, from its start ticks and the boot time (the clock tick is 100 Hz on Linux). */
export function startedAt(startTicks: number): Date | null {
  const btime = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))
  return btime ? new Date((Number(btime[1]) + startTicks / 100) * 1000) : null
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig)
    return true
  } catch {
    return false
  }
}

/** Signals a process group; the node and its helpers each run in their own group. */
export function signalGroup(pgid: number, sig: NodeJS.Signals): boolean {
  return signal(-pgid, sig)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

export async function waitUntil(cond: () => boolean, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (cond()) return true
    if (Date.now() >= end) return false
    await sleep(everyMs)
  }
}

/** What runCommand needs from a ledger (ledger.ts); tests and the CLI run commands without one. */
export interface CommandRecorder {
  started(pid: number, app: string, command: string): void
  ended(pid: number): void
}

export interface CommandResult {
  code: number | null
  signal: NodeJS.Signals | null
  output: string
  timedOut: boolean
  ms: number
}

const OUTPUT_CAP = 64 * 1024

/** util-linux's setpriv where it is installed: the parent-death signal here, the app's uid in isolation/launch.ts. */
export const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((f) => fs.existsSync(f)) ?? null

/** util-linux's prlimit where it is installed: what the limits module enforces through rlimits goes through it. */
export const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((f) => fs.existsSync(f)) ?? null

let setpriv: string | null | undefined

/**
 * util-linux's setpriv when it can set a parent-death signal here, else null. Checked once by running it:
 * `setpriv --pdeathsig` is missing from old util-linux and from busybox systems.
 */
export function pdeathsigWrapper(): string | null {
  if (setpriv === undefined) {
    setpriv = SETPRIV && spawnSync(SETPRIV, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5000 }).status === 0 ? SETPRIV : null
  }
  return setpriv
}

/**
 * Runs a command in its own process group with a timeout after which the whole group is killed.
 * Keeps the last 64 KiB of combined stdout/stderr (migration logs can be long; the end says why it failed).
 * With `dieWithBerth`, the command gets SIGKILL the moment berth dies (PR_SET_PDEATHSIG through setpriv;
 * the flag survives the exec chain bin/APP → erlexec → beam.smp, which keeps the pid), so a kill -9 of berth
 * cannot leave a migration BEAM behind; `recorder` notes it on disk for the restart's sweep as a second line.
 */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; signal?: AbortSignal; dieWithBerth?: boolean; recorder?: { app: string; ledger: CommandRecorder }; launch?: (cmd: string, args: string[]) => { file: string; args: string[] } },
): Promise<CommandResult> {
  const started = Date.now()
  // `launch`: an app's command, started as the app (isolation/launch.ts), which arranges the death signal itself.
  const wrapper = opts.dieWithBerth ? pdeathsigWrapper() : null
  const { file, args: argv } = opts.launch?.(cmd, args) ?? (wrapper ? { file: wrapper, args: ['--pdeathsig', 'KILL', '--', cmd, ...args] } : { file: cmd, args })
  return new Promise((resolve) => {
    const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    const recorded = child.pid
    if (recorded && opts.recorder) opts.recorder.ledger.started(recorded, opts.recorder.app, path.basename(cmd) + (args[0] ? ` ${args[0]}` : ''))
    let output = ''
    let timedOut = false
    const take = (d: Buffer) => {
      output += d.toString('utf8')
      if (output.length > OUTPUT_CAP * 2) output = output.slice(-OUTPUT_CAP)
    }
    child.stdout!.on('data', take)
    child.stderr!.on('data', take)
    const kill = () => {
      if (child.pid) signalGroup(child.pid, 'SIGKILL')
    }
    const timer = setTimeout(() => {
      timedOut = true
      kill()
    }, opts.timeoutMs)
    opts.signal?.addEventListener('abort', kill, { once: true })
    child.on('error', (err) => {
      clearTimeout(timer)
      if (recorded && opts.recorder) opts.recorder.ledger.ended(recorded)
      resolve({ code: null, signal: null, output: `${output}\n${err.message}`, timedOut, ms: Date.now() - started })
    })
    child.on('close', (code, sig) => {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', kill)
      // The command may have left children in its group (an eval that spawned a port program).
      if (child.pid) signalGroup(child.pid, 'SIGKILL')
      if (recorded && opts.recorder) opts.recorder.ledger.ended(recorded)
      resolve({ code, signal: sig, output: output.length > OUTPUT_CAP ? output.slice(-OUTPUT_CAP) : output, timedOut, ms: Date.now() - started })
    })
  })
}

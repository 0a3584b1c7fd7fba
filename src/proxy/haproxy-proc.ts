// haproxy as an OS process, for an app's own proxy and the edge alike: whether a recorded pid is still ours,
// ending one (SIGTERM, then SIGKILL), and its log file, kept small in place and read back for errors.

import fs from 'node:fs'
import path from 'node:path'
import { isSameProcess, signal, waitUntil } from '../process/proc.js'

/** The pid record could name a reused pid: only a process running the haproxy executable is ours. */
export function isHaproxy(pid: number, bin: string): boolean {
  try {
    const exe = fs.readlinkSync(`/proc/${pid}/exe`)
    return path.basename(exe) === path.basename(bin) || exe === bin
  } catch {
    return false
  }
}

/** SIGTERM, 5 s to exit, then SIGKILL and 5 s more. */
export async function endHaproxy(pid: number, startTicks: number): Promise<void> {
  signal(pid, 'SIGTERM')
  if (!(await waitUntil(() => !isSameProcess(pid, startTicks), 5000, 50))) {
    signal(pid, 'SIGKILL')
    await waitUntil(() => !isSameProcess(pid, startTicks), 5000, 50)
  }
}

/** haproxy keeps its log file open in append mode: cutting it in place keeps its writes going to the file. */
export function capLogFile(file: string, maxBytes: number): void {
  try {
    if ((fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0) <= maxBytes) return
    fs.copyFileSync(file, `${file}.1`)
    fs.truncateSync(file, 0)
  } catch {
    // a full disk must not stop the watch
  }
}

/** The last three lines of the log (those `keep` accepts), for an error message; '' when there is none. */
export function logTail(file: string, keep: (line: string) => boolean = () => true): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').filter(keep).slice(-3).join(' / ').slice(0, 500)
  } catch {
    return ''
  }
}

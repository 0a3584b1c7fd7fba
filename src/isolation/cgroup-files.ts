// The interface files behind each limit, in cgroup v2 and v1, with the values that mean "no limit"; and the
// files usage and OOM kills are read from. Names and units only: limits.ts does the writing and reading.

import fs from 'node:fs'
import path from 'node:path'
import type { LimitField } from './limit-fields.js'
import type { V1Controller } from './cgroup-host.js'

export interface Knob {
  /** The v1 hierarchy the file is in; cgroup v2 has one directory for all. */
  controller: V1Controller | null
  file: string
  value: string
}

/** The CFS period both versions are given: 100 ms, the kernel's default, so a quota in percent is quota × 1000 µs. */
const PERIOD_US = 100_000

/** cgroup v2's files for one field; null writes the kernel's own default (no limit). */
export function v2Knobs(field: LimitField, v: number | null): Knob[] {
  switch (field) {
    case 'memoryMax': return [{ controller: null, file: 'memory.max', value: v === null ? 'max' : String(v) }]
    case 'cpuWeight': return [{ controller: null, file: 'cpu.weight', value: String(v ?? 100) }]
    case 'cpuQuota': return [{ controller: null, file: 'cpu.max', value: `${v === null ? 'max' : v * (PERIOD_US / 100)} ${PERIOD_US}` }]
    case 'tasksMax': return [{ controller: null, file: 'pids.max', value: v === null ? 'max' : String(v) }]
  }
}

/**
 * cgroup v1's files. cpu.shares has 1024 where cpu.weight has 100 (both "everyone's equal share"), so a weight
 * maps to weight × 1024 / 100 shares (at least 2, the kernel's minimum). memory.limit_in_bytes caps RAM only:
 * with swap on, an app may page beyond it (memsw is left alone, as the kernel may not account swap at all).
 */
export function v1Knobs(field: LimitField, v: number | null): Knob[] {
  switch (field) {
    case 'memoryMax': return [{ controller: 'memory', file: 'memory.limit_in_bytes', value: String(v ?? -1) }]
    case 'cpuWeight': return [{ controller: 'cpu', file: 'cpu.shares', value: String(v === null ? 1024 : Math.max(2, Math.round((v * 1024) / 100))) }]
    case 'cpuQuota': return [
      { controller: 'cpu', file: 'cpu.cfs_period_us', value: String(PERIOD_US) },
      { controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(v === null ? -1 : v * (PERIOD_US / 100)) },
    ]
    case 'tasksMax': return [{ controller: 'pids', file: 'pids.max', value: v === null ? 'max' : String(v) }]
  }
}

export interface Usage {
  memoryBytes: number | null
  /** Processes and threads in the app's cgroup(s). */
  tasks: number | null
  cpuUsageUsec: number | null
}

function readNumber(file: string | null): number | null {
  if (!file) return null
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim())
    return Number.isFinite(n) ? n : null
  } catch {
    return null
  }
}

/** `key N` from a flat-keyed file (memory.events, memory.oom_control, cpu.stat). */
export function readKey(file: string | null, key: string): number | null {
  if (!file) return null
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(fs.readFileSync(file, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

export function v2Usage(dir: string): Usage {
  return {
    memoryBytes: readNumber(path.join(dir, 'memory.current')),
    tasks: readNumber(path.join(dir, 'pids.current')),
    cpuUsageUsec: readKey(path.join(dir, 'cpu.stat'), 'usage_usec'),
  }
}

/** cpuacct.usage is in nanoseconds; where cpuacct is co-mounted with cpu, its directory is cpu's. */
export function v1Usage(dirs: Partial<Record<V1Controller, string>>): Usage {
  const ns = readNumber(dirs.cpuacct ? path.join(dirs.cpuacct, 'cpuacct.usage') : dirs.cpu ? path.join(dirs.cpu, 'cpuacct.usage') : null)
  return {
    memoryBytes: readNumber(dirs.memory ? path.join(dirs.memory, 'memory.usage_in_bytes') : null),
    tasks: readNumber(dirs.pids ? path.join(dirs.pids, 'pids.current') : null),
    cpuUsageUsec: ns === null ? null : Math.round(ns / 1000),
  }
}

/** The kernel's count of OOM kills in the cgroup (since it was made); null when there is no memory cgroup. */
export function oomKillsIn(via: 'cgroup2' | 'cgroup1', memoryDir: string | undefined): number | null {
  if (!memoryDir || !fs.existsSync(memoryDir)) return null
  return via === 'cgroup2' ? readKey(path.join(memoryDir, 'memory.events'), 'oom_kill') : readKey(path.join(memoryDir, 'memory.oom_control'), 'oom_kill')
}

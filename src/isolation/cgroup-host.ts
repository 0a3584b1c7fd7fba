// Which way this host lets berth cap each app's memory, CPU and tasks: cgroup v2 in berth's own (delegated)
// cgroup, else berth's own cgroups of the v1 hierarchies, else RLIMIT_NPROC, else nothing; and why.

import fs from 'node:fs'
import path from 'node:path'
import { LIMIT_FIELDS, type LimitField } from './limit-fields.js'

export type LimitsVia = 'cgroup2' | 'cgroup1' | 'rlimit'
/** The v1 hierarchies berth uses: cpuacct only to read CPU time where it is mounted apart from cpu. */
export type V1Controller = 'memory' | 'cpu' | 'cpuacct' | 'pids'

export interface FieldSupport {
  via: LimitsVia | null
  /** Why the field cannot be enforced here, for an operator; null when it can. */
  reason: string | null
}

export interface CgroupHost {
  via: LimitsVia | null
  /** One or two sentences: what berth uses and why, or why nothing and what would change that. */
  reason: string
  fields: Record<LimitField, FieldSupport>
  /** cgroup2: berth's own cgroup (absolute directory), which the apps' cgroups go below. */
  v2: { own: string; controllers: string[] } | null
  /** cgroup1: berth's own directory in each usable hierarchy. */
  v1: Partial<Record<V1Controller, string>> | null
}

export interface HostProbe {
  /** Where the cgroup file systems are mounted: a v2 mount itself, or a directory of v1 mounts (and unified/). */
  cgroupRoot: string
  /** The text of /proc/self/cgroup. */
  procSelfCgroup: string
  /** RLIMIT_NPROC counts every process of a uid, so it caps one app only when each app has its own uid. */
  perAppUid: boolean
  /** Whether prlimit(1) is installed (util-linux). */
  prlimit: boolean
}

/** The controllers the limits need in cgroup v2, and which field each serves. */
const V2_FOR: Record<LimitField, string> = { memoryMax: 'memory', cpuWeight: 'cpu', cpuQuota: 'cpu', tasksMax: 'pids' }
const V1_FOR: Record<LimitField, V1Controller> = { memoryMax: 'memory', cpuWeight: 'cpu', cpuQuota: 'cpu', tasksMax: 'pids' }

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err)

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

/** null when the file or directory may be written, else the reason (EROFS on a read-only mount, EACCES, ENOENT). */
function notWritable(p: string): string | null {
  try {
    fs.accessSync(p, fs.constants.W_OK)
    return null
  } catch (err) {
    return errCode(err)
  }
}

/** /proc/self/cgroup as (controllers, path) pairs: `0::/x` is v2's, `4:memory:/x` a v1 hierarchy's. */
export function parseProcCgroup(text: string): { controllers: string[]; path: string }[] {
  return text.split('\n').flatMap((line) => {
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line.trim())
    return m ? [{ controllers: m[1] === '' ? [] : m[1].split(','), path: m[2] }] : []
  })
}

function v2Mount(root: string): string | null {
  if (fs.existsSync(path.join(root, 'cgroup.controllers'))) return root
  // A hybrid host mounts v2 beside the v1 hierarchies, with only the controllers v1 left unbound.
  const unified = path.join(root, 'unified')
  return fs.existsSync(path.join(unified, 'cgroup.controllers')) ? unified : null
}

/** cgroup v2: usable when berth's own cgroup can be written and offers at least one of memory, cpu, pids. */
function probeV2(p: HostProbe, entries: ReturnType<typeof parseProcCgroup>): { host: CgroupHost['v2']; why: string } {
  const mount = v2Mount(p.cgroupRoot)
  const rel = entries.find((e) => e.controllers.length === 0)?.path
  if (!mount || rel === undefined) return { host: null, why: `no cgroup v2 file system under ${p.cgroupRoot}` }
  const own = path.join(mount, rel)
  const offered = (read(path.join(own, 'cgroup.controllers')) ?? '').trim().split(/\s+/).filter(Boolean)
  const controllers = ['memory', 'cpu', 'pids'].filter((c) => offered.includes(c))
  if (controllers.length === 0) {
    return { host: null, why: `cgroup v2 (${mount}) offers berth's cgroup ${rel} none of memory, cpu and pids${offered.length ? ` (only ${offered.join(', ')})` : ''}: they are bound to cgroup v1 hierarchies or not delegated` }
  }
  const denied = notWritable(own) ?? notWritable(path.join(own, 'cgroup.subtree_control'))
  if (denied) return { host: null, why: `berth's cgroup v2 ${own} cannot be written (${denied}): under systemd, berth.service needs Delegate=cpu memory pids and its cgroup in ReadWritePaths= (ProtectControlGroups=yes mounts the rest read-only: EROFS), as the shipped unit has them` }
  return { host: { own, controllers }, why: '' }
}

/** cgroup v1: berth's own directory in each hierarchy it needs, where it can make directories. */
function probeV1(p: HostProbe, entries: ReturnType<typeof parseProcCgroup>): { dirs: Partial<Record<V1Controller, string>>; why: string } {
  const dirs: Partial<Record<V1Controller, string>> = {}
  const missing: string[] = []
  for (const c of ['memory', 'cpu', 'cpuacct', 'pids'] as const) {
    const entry = entries.find((e) => e.controllers.includes(c))
    // Hybrid hosts mount cpu and cpuacct together as cpu,cpuacct, with cpu and cpuacct as links to it.
    const mount = entry ? [c, entry.controllers.join(',')].map((n) => path.join(p.cgroupRoot, n)).find((m) => fs.existsSync(path.join(m, 'cgroup.procs'))) : undefined
    if (!entry || !mount) {
      if (c !== 'cpuacct') missing.push(`${c} (not mounted)`)
      continue
    }
    const own = path.join(mount, entry.path)
    const denied = notWritable(own)
    if (denied) {
      if (c !== 'cpuacct') missing.push(`${c} (${own}: ${denied})`)
      continue
    }
    // Co-mounted (cpu,cpuacct): one directory serves both, so the app gets one cgroup there, not two.
    if (c === 'cpuacct' && dirs.cpu && fs.realpathSync(dirs.cpu) === fs.realpathSync(own)) continue
    dirs[c] = own
  }
  return { dirs, why: missing.length ? `no usable cgroup v1 hierarchy for ${missing.join(', ')}` : '' }
}

const RLIMIT_MEMORY = 'rlimits cannot stand in for it: RLIMIT_AS counts the address space the BEAM reserves, far beyond what it uses'

/** What this host offers, field by field; reads only, changes nothing. */
export function probeHost(p: HostProbe): CgroupHost {
  const entries = parseProcCgroup(p.procSelfCgroup)
  const v2 = probeV2(p, entries)
  const v1 = v2.host ? null : probeV1(p, entries)
  const v1Any = v1 && (['memory', 'cpu', 'pids'] as const).some((c) => v1.dirs[c])
  const via: LimitsVia | null = v2.host ? 'cgroup2' : v1Any ? 'cgroup1' : p.perAppUid && p.prlimit ? 'rlimit' : null
  const rlimitWhy = !p.perAppUid
    ? 'RLIMIT_NPROC counts every process of a uid, and apps share berth\'s uid (isolation is off): turn isolation on (run berth as root or with CAP_SETUID/CAP_SETGID)'
    : !p.prlimit ? 'prlimit is not installed (util-linux)' : null
  const fields = {} as Record<LimitField, FieldSupport>
  for (const f of LIMIT_FIELDS) {
    if (v2.host) {
      const c = V2_FOR[f]
      fields[f] = v2.host.controllers.includes(c) ? { via: 'cgroup2', reason: null } : { via: null, reason: `cgroup v2 does not offer berth's cgroup the ${c} controller` }
    } else if (v1Any && v1!.dirs[V1_FOR[f]]) {
      fields[f] = { via: 'cgroup1', reason: null }
    } else {
      const cgroupWhy = v1Any ? `cgroup v1 has no usable ${V1_FOR[f]} hierarchy` : `${v2.why}; ${v1!.why}`
      fields[f] = { via: null, reason: `${cgroupWhy}; ${f === 'memoryMax' ? RLIMIT_MEMORY : f === 'tasksMax' ? (rlimitWhy ?? '') : 'rlimits have no CPU share or quota'}` }
    }
    if (f === 'tasksMax' && fields[f].via === null && !rlimitWhy) fields[f] = { via: 'rlimit', reason: null }
  }
  const rlimitOnly = 'Only tasksMax can be enforced, through RLIMIT_NPROC (each app has its own uid)'
  const reason = v2.host
    ? `cgroup v2: berth's cgroup ${v2.host.own} is writable and offers ${v2.host.controllers.join(', ')}; each app gets ${path.join(v2.host.own, 'app-APP')}.`
    : v1Any
      ? `cgroup v1: ${v2.why}, so berth uses its own cgroups of the v1 hierarchies (${Object.keys(v1!.dirs).join(', ')}); each app gets berth-app-APP below them.${v1!.why ? ` But ${v1!.why}.` : ''}`
      : via === 'rlimit'
        ? `${rlimitOnly}: ${v2.why}; ${v1!.why}.`
        : `Not available here: ${v2.why}; ${v1!.why}; and tasksMax through rlimits: ${rlimitWhy}.`
  return { via, reason, fields, v2: v2.host, v1: v1Any ? v1!.dirs : null }
}

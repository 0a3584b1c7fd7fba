// Each app's resource limits as the host enforces them: its cgroup (v2 below berth's own, or one per v1
// hierarchy), the limit files written from the app's `limits` setting, its usage and OOM kills, and the
// cgroup files and prlimit arguments the launcher (launch.ts) puts every process of the app under.

import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { PRLIMIT } from '../process/proc.js'
import { LIMIT_FIELDS, type LimitField, type LimitSettings } from './limit-fields.js'
import { oomKillsIn, v1Knobs, v1Usage, v2Knobs, v2Usage, type Knob, type Usage } from './cgroup-files.js'
import { probeHost, type CgroupHost, type FieldSupport, type LimitsVia, type V1Controller } from './cgroup-host.js'
import type { LaunchLimits } from './launch.js'

export type { LimitsVia, Usage }

export interface NotEnforced {
  field: LimitField
  reason: string
}

/** The outcome of applying an app's limits: never silent, every field asked for is in one list or the other. */
export interface LimitsResult {
  via: LimitsVia | null
  enforced: Partial<LimitSettings>
  notEnforced: NotEnforced[]
}

/** `limits` in GET /v1/apps/{app}. */
export interface LimitsView extends LimitsResult {
  settings: LimitSettings | null
  /** What this host offers (cgroup v2, v1, rlimits or nothing) and why, whatever the app asks for. */
  hostSupport: string
  usage: Usage | null
  oomKills: number | null
}

export interface LimitsSupport {
  via: LimitsVia | null
  reason: string
  fields: Record<LimitField, FieldSupport>
}

export interface AppLimitsDeps {
  log: Logger
  /** The app's limits setting, read again by each ensure(). */
  limitsOf(app: string): LimitSettings | null
  /** Where the cgroup file systems are mounted (tests point this at a temp dir). */
  cgroupRoot?: string
  /** The file that says which cgroups berth is in. */
  procSelfCgroup?: string
  /** Whether each app runs as its own uid (isolation on): RLIMIT_NPROC caps a uid, not an app. */
  perAppUid?(): boolean
}

/** The cgroup directory of an app: in v2 beside berth's leaf, in v1 below berth's own cgroup of each hierarchy. */
const V2_NAME = (app: string) => `app-${app}`
const V1_NAME = (app: string) => `berth-app-${app}`
/** Where berth moves itself in cgroup v2: a cgroup that enables controllers for children may hold no process. */
const V2_LEAF = 'berth'

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err)
const exists = (p: string) => fs.existsSync(p)

/**
 * Sync on purpose: cgroup files are kernel interfaces answered in microseconds, and the launcher's
 * procsFiles() is called synchronously right before a spawn, when the cgroup must already exist.
 */
export class AppLimits implements LaunchLimits {
  private readonly root: string
  private readonly selfFile: string
  private hostCache: CgroupHost | null = null
  /** What the last apply of each app did, and the directories it left, to apply again only on a change. */
  private readonly applied = new Map<string, { key: string; result: LimitsResult; dirs: string[] }>()

  constructor(private readonly deps: AppLimitsDeps) {
    this.root = deps.cgroupRoot ?? '/sys/fs/cgroup'
    this.selfFile = deps.procSelfCgroup ?? '/proc/self/cgroup'
  }

  /** Which mechanism this host offers, field by field, and a sentence an operator can act on. Reads only. */
  detect(): LimitsSupport {
    let self = ''
    try {
      self = fs.readFileSync(this.selfFile, 'utf8')
    } catch (err) {
      this.deps.log.warn({ file: this.selfFile, code: errCode(err) }, 'cannot read which cgroups berth is in')
    }
    const prlimit = PRLIMIT !== null
    this.hostCache = probeHost({ cgroupRoot: this.root, procSelfCgroup: self, perAppUid: this.deps.perAppUid?.() ?? false, prlimit })
    const { via, reason, fields } = this.hostCache
    return { via, reason, fields }
  }

  private get host(): CgroupHost {
    if (!this.hostCache) {
      this.detect()
      this.deps.log.info({ via: this.hostCache!.via, why: this.hostCache!.reason }, 'app resource limits')
    }
    return this.hostCache!
  }

  /**
   * The app's limits as its settings say, applied when they changed since the last call (or its cgroup went
   * away): cheap enough to call before every start of a node or command.
   */
  ensure(app: string): LimitsResult {
    const limits = this.deps.limitsOf(app)
    const key = JSON.stringify(limits)
    const done = this.applied.get(app)
    if (done && done.key === key && done.dirs.every(exists)) return done.result
    // An app that never had limits from this berth leaves the cgroup file system alone: a cgroup of its name
    // is not its to reset (another berth in the same cgroup, as test daemons side by side, may use it).
    if (limits === null && (!done || done.key === 'null')) {
      const none: LimitsResult = { via: null, enforced: {}, notEnforced: [] }
      this.applied.set(app, { key, result: none, dirs: [] })
      return none
    }
    const result = this.apply(app, limits)
    const log = this.deps.log.child({ app })
    if (result.notEnforced.length) log.warn({ via: result.via, notEnforced: result.notEnforced }, 'some resource limits of the app cannot be enforced here')
    else if (limits) log.info({ via: result.via, enforced: result.enforced }, 'resource limits applied')
    return result
  }

  /** Creates or updates the app's cgroup(s) and writes each limit; null (or a field's null) lifts it. */
  apply(app: string, limits: LimitSettings | null): LimitsResult {
    const result = limits === null ? this.lift(app) : this.write(app, limits)
    this.applied.set(app, { key: JSON.stringify(limits), result, dirs: Object.values(this.dirsOf(app)).filter(exists) })
    return result
  }

  private write(app: string, limits: LimitSettings): LimitsResult {
    const host = this.host
    const dirs = this.dirsOf(app)
    const broken = this.makeDirs(host, dirs)
    const enforced: Partial<LimitSettings> = {}
    const notEnforced: NotEnforced[] = []
    for (const f of LIMIT_FIELDS) {
      const v = limits[f]
      const support = host.fields[f]
      if (support.via === 'cgroup2' || support.via === 'cgroup1') {
        const knobs = support.via === 'cgroup2' ? v2Knobs(f, v) : v1Knobs(f, v)
        const failed = this.writeKnobs(knobs, dirs, broken)
        if (v === null) continue
        if (failed) notEnforced.push({ field: f, reason: failed })
        else enforced[f] = v
      } else if (v !== null) {
        if (support.via === 'rlimit') enforced[f] = v
        else notEnforced.push({ field: f, reason: support.reason ?? 'not available here' })
      }
    }
    const via = LIMIT_FIELDS.map((f) => (f in enforced ? host.fields[f].via : null)).find((x) => x !== null) ?? null
    return { via, enforced, notEnforced }
  }

  /** Writes each file; the first failure as a sentence, or null. */
  private writeKnobs(knobs: Knob[], dirs: Partial<Record<DirKey, string>>, broken: Map<string, string>): string | null {
    for (const k of knobs) {
      const key: DirKey = k.controller ?? 'unified'
      const dir = dirs[key]
      if (!dir) return `berth has no ${k.controller} cgroup`
      const why = broken.get(key)
      if (why) return why
      try {
        fs.writeFileSync(path.join(dir, k.file), k.value)
      } catch (err) {
        // EBUSY: v1 refuses a memory limit below what the cgroup already uses; EINVAL: out of the kernel's range.
        return `the kernel refused ${k.value} in ${path.join(dir, k.file)} (${errCode(err)})`
      }
    }
    return null
  }

  /** mkdir of each directory (v2: after berth's own cgroup hands the controllers down); failures by key. */
  private makeDirs(host: CgroupHost, dirs: Partial<Record<DirKey, string>>): Map<string, string> {
    const broken = new Map<string, string>()
    if (host.v2) {
      const why = this.delegateV2(host.v2)
      if (why) broken.set('unified', why)
    }
    for (const [key, dir] of Object.entries(dirs)) {
      if (broken.has(key)) continue
      try {
        fs.mkdirSync(dir)
      } catch (err) {
        if (errCode(err) !== 'EEXIST') broken.set(key, `berth cannot make the cgroup ${dir} (${errCode(err)})`)
      }
    }
    return broken
  }

  /**
   * Enables memory, cpu and pids for the children of berth's own cgroup. cgroup v2 lets a cgroup do that
   * only while no process is in it (the root excepted), so berth first moves the processes of its own
   * cgroup (itself, and what it started: haproxy, nodes without limits) into the leaf `berth` beside them.
   * Only the host's root cgroup has no cgroup.type; a container's root (cgroup namespace) has one and the rule.
   */
  private delegateV2(v2: NonNullable<CgroupHost['v2']>): string | null {
    const control = path.join(v2.own, 'cgroup.subtree_control')
    const enabled = () => fs.readFileSync(control, 'utf8').trim().split(/\s+/)
    try {
      const missing = v2.controllers.filter((c) => !enabled().includes(c))
      if (missing.length === 0) return null
      if (fs.existsSync(path.join(v2.own, 'cgroup.type'))) {
        const pids = fs.readFileSync(path.join(v2.own, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)
        if (pids.length > 0) {
          const leaf = path.join(v2.own, V2_LEAF)
          fs.mkdirSync(leaf, { recursive: true })
          for (const pid of pids) {
            try {
              fs.writeFileSync(path.join(leaf, 'cgroup.procs'), pid)
            } catch (err) {
              // A process that exited meanwhile (ESRCH) is gone from the cgroup anyway.
              if (errCode(err) !== 'ESRCH') throw err
            }
          }
          this.deps.log.info({ leaf, processes: pids.length }, 'moved berth into a leaf of its cgroup, so that its apps can have cgroups of their own')
        }
      }
      for (const c of missing) fs.writeFileSync(control, `+${c}`)
      return null
    } catch (err) {
      return `berth cannot hand the ${v2.controllers.join(', ')} controllers down from its cgroup ${v2.own} (${errCode(err)}): a process berth started may have joined it meanwhile; the next change or start tries again`
    }
  }

  /** No limits: every file back to "no limit", and the cgroups removed once nothing runs in them. */
  private lift(app: string): LimitsResult {
    const dirs = this.dirsOf(app)
    if (Object.values(dirs).some(exists)) {
      const host = this.host
      for (const f of LIMIT_FIELDS) {
        const via = host.fields[f].via
        if (via === 'cgroup2' || via === 'cgroup1') this.writeKnobs(via === 'cgroup2' ? v2Knobs(f, null) : v1Knobs(f, null), dirs, new Map())
      }
      this.remove(app)
    }
    return { via: null, enforced: {}, notEnforced: [] }
  }

  /** Removes the app's cgroups; those that still hold a process (EBUSY) stay, and are named in the answer. */
  remove(app: string): string[] {
    const left: string[] = []
    for (const dir of Object.values(this.dirsOf(app))) {
      try {
        fs.rmdirSync(dir)
      } catch (err) {
        if (errCode(err) !== 'ENOENT') left.push(dir)
      }
    }
    this.applied.delete(app)
    return left
  }

  procsFiles(app: string): string[] {
    const r = this.ensure(app)
    if (r.via !== 'cgroup2' && r.via !== 'cgroup1') return []
    return Object.values(this.dirsOf(app)).filter(exists).map((d) => path.join(d, 'cgroup.procs'))
  }

  prlimitArgs(app: string): string[] {
    const r = this.ensure(app)
    const n = r.enforced.tasksMax
    return n !== undefined && this.host.fields.tasksMax.via === 'rlimit' ? [`--nproc=${n}:${n}`] : []
  }

  /** Memory, tasks and CPU time of the app's cgroup(s); null without one. */
  usage(app: string): Usage | null {
    const dirs = this.existingDirs(app)
    if (!dirs) return null
    return dirs.unified ? v2Usage(dirs.unified) : v1Usage(dirs)
  }

  /** How many times the kernel's OOM killer struck in the app's cgroup; null without a memory cgroup. */
  oomKills(app: string): number | null {
    const dirs = this.existingDirs(app)
    if (!dirs) return null
    return dirs.unified ? oomKillsIn('cgroup2', dirs.unified) : oomKillsIn('cgroup1', dirs.memory)
  }

  view(app: string): LimitsView {
    const result = this.ensure(app)
    return { settings: this.deps.limitsOf(app), hostSupport: this.host.reason, ...result, usage: this.usage(app), oomKills: this.oomKills(app) }
  }

  /** The app's cgroups this berth applied limits to and that still exist (only those: see ensure). */
  private existingDirs(app: string): Partial<Record<DirKey, string>> | null {
    const mine = this.applied.get(app)?.dirs ?? []
    const dirs = Object.fromEntries(Object.entries(this.dirsOf(app)).filter(([, d]) => mine.includes(d) && exists(d))) as Partial<Record<DirKey, string>>
    return Object.keys(dirs).length ? dirs : null
  }

  /** The app's cgroup directory in each hierarchy berth uses here (they may not exist yet). */
  private dirsOf(app: string): Partial<Record<DirKey, string>> {
    const host = this.host
    if (host.v2) return { unified: path.join(host.v2.own, V2_NAME(app)) }
    if (host.v1) return Object.fromEntries(Object.entries(host.v1).map(([c, own]) => [c, path.join(own, V1_NAME(app))]))
    return {}
  }
}

/** A directory of the app: cgroup v2's single one, or one per v1 hierarchy. */
type DirKey = 'unified' | V1Controller

// How every process of an app's code is started: as the app's uid (setpriv), in its cgroups and rlimits, with
// umask 007, dying with berth when asked. The one place that turns "run this for app A" into an argv.

import { spawnSync } from 'node:child_process'
import { problem } from '../errors.js'
import { pdeathsigWrapper, PRLIMIT } from '../process/proc.js'
import type { AppUsers, IsolationState } from './users.js'

/** What the limits module gives each launch: the cgroups to join and the rlimits to set (see limits.ts). */
export interface LaunchLimits {
  /** cgroup.procs of each cgroup the app's processes must join (one for v2, one per controller for v1); [] for none. */
  procsFiles(app: string): string[]
  /** prlimit options (e.g. --nproc=512:512) for what rlimits enforce instead; [] for none. */
  prlimitArgs(app: string): string[]
}

export interface Launch {
  file: string
  args: string[]
}

/**
 * The shell that moves itself into the app's cgroups before anything of the app runs, so nothing the app forks
 * can start outside them, then becomes the rest of its argv. $$ survives each exec: the pid berth records is
 * the app's command's. Exit 125: a cgroup refused the process (the launch fails instead of running unlimited).
 */
const ENTER = 'umask 007; while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'

export interface LauncherDeps {
  state: IsolationState
  users: AppUsers
  setpriv: string | null
  limits?: LaunchLimits
}

export class AppLauncher {
  constructor(private readonly deps: LauncherDeps) {}

  /** True when app processes run as their own uids. */
  get isolated(): boolean {
    return this.deps.state.mode === 'on'
  }

  get state(): IsolationState {
    return this.deps.state
  }

  /** Groups berth has joined: each app's, so that berth reads what the app writes (0660, umask 007). */
  private readonly joined = new Set<number>()

  /** The app's uid when isolation is on (allocated on first use), else null: it runs as berth. */
  uidOf(app: string): number | null {
    if (!this.isolated) return null
    const uid = this.deps.users.uidOf(app)
    if (!this.joined.has(uid)) {
      // CAP_SETGID allows it; process-wide (every thread), and setpriv --clear-groups keeps it from the apps.
      const groups = process.getgroups?.() ?? []
      if (!groups.includes(uid)) process.setgroups?.([...groups, uid])
      this.joined.add(uid)
    }
    return uid
  }

  /**
   * The argv that runs `cmd args` for the app. With isolation: as its uid and gid, no supplementary groups
   * and no capabilities (a non-root berth holding ambient capabilities would otherwise pass them on: the kernel
   * clears them only when root changes to non-root), then the parent-death signal, which setpriv sets after
   * the uid change (a change of credentials clears it).
   */
  wrap(app: string, cmd: string, args: string[], opts: { dieWithBerth?: boolean } = {}): Launch {
    const procs = this.deps.limits?.procsFiles(app) ?? []
    const uid = this.uidOf(app)
    let inner: string[]
    if (uid !== null) {
      const rl = this.deps.limits?.prlimitArgs(app) ?? []
      const prlimit = rl.length > 0 && PRLIMIT ? [PRLIMIT, ...rl, '--'] : []
      inner = [...prlimit, this.deps.setpriv!, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--ambient-caps=-all', ...(opts.dieWithBerth ? ['--pdeathsig', 'KILL'] : []), '--', cmd, ...args]
    } else if (this.deps.setpriv) {
      // As berth, still without its capabilities: under systemd berth holds CAP_SETUID & co. as ambient ones,
      // which a child keeps across exec unless they are dropped here.
      inner = [this.deps.setpriv, '--inh-caps=-all', '--ambient-caps=-all', ...(opts.dieWithBerth && pdeathsigWrapper() ? ['--pdeathsig', 'KILL'] : []), '--', cmd, ...args]
    } else {
      inner = [cmd, ...args]
    }
    if (procs.length === 0 && uid === null) return { file: inner[0]!, args: inner.slice(1) }
    return { file: '/bin/sh', args: ['-c', ENTER, 'berth-launch', ...procs, '--', ...inner] }
  }

  /**
   * berth's own engines (haproxy for an app's proxy and for the edge) run as berth, but without the apps' groups
   * berth joined to read their files: a compromised proxy, which parses the internet's requests, reads no app's
   * directory. Capabilities are kept (an app's proxy may bind port 80 through CAP_NET_BIND_SERVICE).
   */
  engine(cmd: string, args: string[]): Launch {
    if (!this.isolated || !this.deps.setpriv) return { file: cmd, args }
    return { file: this.deps.setpriv, args: ['--clear-groups', '--', cmd, ...args] }
  }

  /**
   * Runs a short shell script as the app (its own files: directories, removals, its cookie copy), so that a
   * link the app planted in its directories can only ever lead berth to what the app itself may touch.
   * Without isolation, the same script runs as berth. Throws with the script's stderr when it fails.
   */
  shAsApp(app: string, script: string, args: string[] = [], input?: string): void {
    const l = this.wrap(app, '/bin/sh', ['-c', script, 'berth-fs', ...args])
    const r = spawnSync(l.file, l.args, { input, stdio: ['pipe', 'ignore', 'pipe'], timeout: 30_000, env: { PATH: '/usr/bin:/bin' } })
    if (r.status !== 0) throw problem('INTERNAL', `A file operation as the user of "${app}" failed: ${(r.error?.message ?? (r.stderr?.toString().trim() || `exit ${r.status ?? r.signal}`)).slice(0, 300)}`)
  }
}

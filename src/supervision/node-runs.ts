// How a release's node and its one-shot commands are run: the environment each gets, the directories an
// instance keeps as its own, and which bin/APP subcommand does what for each kind of release.
// The supervisor decides when to run them; this module only knows how.

import crypto from 'node:crypto'
import path from 'node:path'
import type { Logger } from 'pino'
import type { AppSettings } from '../apps/settings.js'
import type { AppStore } from '../apps/store.js'
import { SLOTS, type Paths } from '../paths.js'
import { CommandLedger } from '../process/ledger.js'
import { runCommand, type CommandResult } from '../process/proc.js'
import { commandFor, unknownCommandHint, type CommandRole, type ReleaseKind } from '../releases/kinds.js'
import { releaseName, releaseScript } from '../releases/script.js'
import type { AppDirs } from '../isolation/app-dirs.js'
import type { AppLauncher, Launch } from '../isolation/launch.js'
import { appCookie, distEnv, nodeName, type DistPorts } from './distribution.js'
import type { InstanceDirs, InstanceSpec } from './types.js'

export interface NodeRunsDeps {
  paths: Paths
  apps: Pick<AppStore, 'settings' | 'env'>
  log: Logger
  /** epmd port for every node berth runs (ERL_EPMD_PORT); tests isolate epmd this way. */
  epmdPort: number
  /** What built a release (its row's kind, or detected from its directory): picks the command names. */
  kindOf(app: string, release: string): ReleaseKind
  /** Each instance's distribution port (no epmd): see distribution.ts. */
  distPorts: DistPorts
  /** How an app's processes start (as its uid, in its limits), and who owns its directories. */
  launcher: AppLauncher
  dirs: AppDirs
}

export class NodeRuns {
  /** The one-shot commands running now, on disk for a restarted berth's sweep (process/ledger.ts). */
  readonly ledger: CommandLedger

  constructor(private readonly deps: NodeRunsDeps) {
    this.ledger = new CommandLedger(deps.paths.run, deps.log)
  }

  releaseDir(app: string, release: string): string {
    return this.deps.paths.release(app, release)
  }

  /**
   * The environment a node and every command run for the app get: the app's env plus berth's own settings.
   * `relxOut` is where a relx start script writes the vm.args and sys.config it fills from vm.args.src and
   * sys.config.src, instead of into the read-only release (see relxNodeDir and commandEnv).
   */
  nodeEnv(app: string, inst: InstanceSpec | null, relxOut?: string, run?: { release: string; role: 'node' | 'command' }): NodeJS.ProcessEnv {
    const { paths } = this.deps
    const settings = this.deps.apps.settings(app)
    const env = this.deps.apps.env(app)
    const dirs = this.dirsOf(app, inst)
    // The instance's own port and the app's own cookie (distribution.ts); none for to_erl, which needs neither.
    const slot = inst?.slot ?? null
    const port = run ? this.deps.distPorts.portOf(app, slot) : null
    const dist = run ? distEnv(this.deps.kindOf(app, run.release), run.role, port, appCookie(paths, app)) : null
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: process.env.LANG ?? 'C.UTF-8',
      HOME: paths.shared(app),
      ...env,
      RELEASE_TMP: dirs.tmp,
      ERL_CRASH_DUMP: path.join(dirs.log, 'erl_crash.dump'),
      // Distribution and epmd on loopback only: the cookie is the only guard, so the port must not be reachable.
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_EPMD_PORT: String(this.deps.epmdPort),
      // The app's own ERL_AFLAGS are kept, after berth's: for a repeated -kernel parameter the first one
      // wins, so an app cannot move distribution off loopback by accident.
      ERL_AFLAGS: ['-kernel inet_dist_use_interface {127,0,0,1}', ...(dist?.aflags ?? []), env.ERL_AFLAGS?.trim()].filter(Boolean).join(' '),
      ...dist?.env,
      RUN_ERL_LOG_MAXSIZE: String(settings.consoleLogMaxBytes),
      RUN_ERL_LOG_GENERATIONS: String(settings.consoleLogGenerations),
      RUN_ERL_LOG_ALIVE_MINUTES: '1440',
      // run_erl writes no time per line; it stamps the log when it opens a file and, with this, before output
      // that follows a minute of silence. In ISO 8601 UTC, so that logs.ts can date console lines from them.
      RUN_ERL_LOG_ACTIVITY_MINUTES: '1',
      RUN_ERL_LOG_ALIVE_FORMAT: '%Y-%m-%dT%H:%M:%SZ',
      RUN_ERL_LOG_ALIVE_IN_UTC: '1',
      ...(relxOut ? { RELX_OUT_FILE_PATH: relxOut } : {}),
      // Two instances of one app run side by side: each its own port and node name (Mix releases read
      // RELEASE_NODE; a relx release names its node in vm.args.src, e.g. -sname ${RELEASE_NODE}).
      // A slot's node a berth from before dist ports started (no port recorded) has the name of then: APP_SLOT.
      ...(inst ? { PORT: String(inst.port), RELEASE_NODE: run && port === null ? `${app}_${inst.slot}` : nodeName(app, inst.slot), RELEASE_DISTRIBUTION: env.RELEASE_DISTRIBUTION ?? 'sname' } : {}),
      // The proxy-off node is named after the app, not its release: two apps of one release get two names.
      // Not for a node a berth from before ports started (it has its release's name): commands must find it.
      ...(!inst && port !== null && !env.RELEASE_NODE ? { RELEASE_NODE: nodeName(app, null) } : {}),
    }
  }

  /**
   * relx's start script fills vm.args and sys.config at every run of bin/APP, `pid` and `stop` included, by
   * truncating and rewriting them in place: one shared pair let the `pid` that verification runs while the
   * node boots leave the booting BEAM half a sys.config ("no ending <dot> found", the node exits with code 1).
   * So a node reads a pair of its own, per release and instance, that no command writes.
   */
  relxNodeDir(app: string, release: string, inst: InstanceSpec | null): string | undefined {
    if (!this.fillsItsConfig(app, release)) return undefined
    const dir = path.join(this.relxDir(app, release), inst ? `node-${inst.slot}` : 'node')
    this.deps.dirs.mkdirs(app, [dir], 0o700)
    return dir
  }

  /**
   * Only relx's script fills its config at each run: other kinds need no directory for it, which spares every
   * command two short processes as the app (making and removing it; isolation/app-dirs.ts).
   */
  private fillsItsConfig(app: string, release: string): boolean {
    return this.deps.kindOf(app, release) === 'relx'
  }

  /** Per release: everything of a release's here goes when the release is deleted (intake/cleanup.ts). */
  private relxDir(app: string, release: string): string {
    return path.join(this.deps.paths.shared(app), 'tmp', 'relx', path.basename(this.releaseDir(app, release)))
  }

  /**
   * The environment for one run of bin/APP from `release` (a command, a remote shell): for a relx release with
   * a directory of its own for the filled-in files (see relxNodeDir), which `dispose` removes once the run has
   * ended. One left by a berth that was killed meanwhile goes with its release.
   */
  commandEnv(app: string, release: string, inst: InstanceSpec | null): { env: NodeJS.ProcessEnv; dispose(): void } {
    this.ensureAppDirs(app, inst)
    if (!this.fillsItsConfig(app, release)) return { env: this.nodeEnv(app, inst, undefined, { release, role: 'command' }), dispose: () => {} }
    const dir = path.join(this.relxDir(app, release), `run-${crypto.randomBytes(6).toString('hex')}`)
    this.deps.dirs.mkdirs(app, [dir], 0o700)
    const dispose = () => {
      try {
        this.deps.dirs.remove(app, [dir])
      } catch (err) {
        // Never fails the command (or, from a session's end, the daemon): what is left goes with the release.
        this.deps.log.warn({ app, err, dir }, "could not remove a command's relx directory")
      }
    }
    return { env: this.nodeEnv(app, inst, dir, { release, role: 'command' }), dispose }
  }

  /** Where an instance keeps what is its own; with the proxy off, the app's single node's places. */
  dirsOf(app: string, inst: InstanceSpec | null): InstanceDirs {
    const { paths, dirs } = this.deps
    if (!inst) return { pipe: path.join(paths.shared(app), 'pipe'), log: dirs.consoleLogDir(app, null), tmp: path.join(paths.shared(app), 'tmp') }
    return { pipe: path.join(paths.instance(app, inst.slot), 'pipe'), log: dirs.consoleLogDir(app, inst.slot), tmp: path.join(paths.instance(app, inst.slot), 'tmp') }
  }

  /** Every console log directory an app's live instance may have: the proxy-off node's (with and without isolation) and each slot's. */
  allLogDirs(app: string): string[] {
    return [...new Set([this.deps.paths.log(app), this.dirsOf(app, null).log]), ...SLOTS.map((slot) => this.dirsOf(app, { slot, port: 0 }).log)]
  }

  /** The app's writable directories: where RELEASE_TMP, the console pipe and logs live (releases are read-only). */
  ensureAppDirs(app: string, inst: InstanceSpec | null = null): void {
    const { paths } = this.deps
    // RELEASE_TMP gets what a release fills in from its environment (relx's vm.args/sys.config, a Mix
    // release's runtime sys.config), env values included: its user only (berth's, or the app's), 0700.
    this.deps.dirs.prepareInstance(app, inst?.slot ?? null, this.dirsOf(app, inst).tmp)
    // The node's HOME copy of its cookie (Erlang reads it where no single -setcookie wins), the app's own.
    this.deps.dirs.writeFile(app, path.join(paths.shared(app), '.erlang.cookie'), appCookie(paths, app), 0o400)
  }

  uidOf(app: string): number | null {
    return this.deps.launcher.uidOf(app)
  }

  /** The argv that starts `cmd` as one of the app's processes (its uid, cgroups, rlimits): isolation/launch.ts. */
  launch(app: string, cmd: string, args: string[], opts: { dieWithBerth?: boolean } = {}): Launch {
    return this.deps.launcher.wrap(app, cmd, args, opts)
  }

  /**
   * The bin/APP subcommand that does `role` for this release: the app's commands setting, else the default
   * of the release's kind; COMMAND_UNSUPPORTED when the kind has none (relx has no eval before start).
   */
  commandFor(app: string, release: string, settings: AppSettings, role: CommandRole): string {
    return commandFor(this.deps.kindOf(app, release), settings.commands, role, this.binName(app, release))
  }

  /** The release's start script, bin/NAME (its own name: the app's releaseName, by default the app's). */
  script(app: string, release: string): string {
    return releaseScript(this.releaseDir(app, release), app)
  }

  /** What built the release: its kind picks command names and how distribution settings are passed. */
  kindOf(app: string, release: string): ReleaseKind {
    return this.deps.kindOf(app, release)
  }

  /** NAME of the release's bin/NAME, for messages. */
  binName(app: string, release: string): string {
    return releaseName(this.releaseDir(app, release), app)
  }

  /** For an error after `role` failed: a sentence when its name is not a command of this kind, else ''. */
  commandHint(app: string, release: string, settings: AppSettings, role: CommandRole): string {
    const kind = this.deps.kindOf(app, release)
    const name = settings.commands[role]
    return name ? unknownCommandHint(kind, name, this.binName(app, release), role) : ''
  }

  /**
   * Runs `bin/APP <command> [args]` from a release, e.g. eval, rpc, pid, stop. Each is a BEAM of its own that
   * must not outlive berth: it dies with berth where setpriv can arrange that, and is on the ledger regardless.
   */
  command(app: string, release: string, command: string, args: string[], timeoutMs: number, signal: AbortSignal | undefined, inst: InstanceSpec | null): Promise<CommandResult> {
    // commandEnv makes the app's directories ready first.
    const run = this.commandEnv(app, release, inst)
    return runCommand(this.script(app, release), [command, ...args], {
      cwd: this.deps.paths.shared(app),
      env: run.env,
      timeoutMs,
      signal,
      launch: (cmd, args) => this.launch(app, cmd, args, { dieWithBerth: true }),
      recorder: { app, ledger: this.ledger },
    }).finally(run.dispose)
  }
}

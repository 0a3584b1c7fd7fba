// The supervisor's pass-through face: what sessions, routes and deploys call on it to learn how the live
// instance is run (its environment, directories, commands), answered by node-runs.ts and instances/.

import { EventEmitter } from 'node:events'
import type { AppSettings } from '../apps/settings.js'
import type { Instances } from '../instances/instances.js'
import type { Slot } from '../paths.js'
import type { CommandResult } from '../process/proc.js'
import type { CommandRole, ReleaseKind } from '../releases/kinds.js'
import type { Launch } from '../isolation/launch.js'
import type { NodeRuns } from './node-runs.js'
import type { InstanceDirs, InstanceSpec, SupervisorEvents } from './types.js'

/** Supervisor extends it: the policy stays there, and callers keep the names and signatures they had. */
export abstract class NodeFacade extends EventEmitter<SupervisorEvents> {
  constructor(
    /** How nodes and commands are run. */
    readonly runs: NodeRuns,
    protected readonly instances: Instances,
  ) {
    super()
  }

  releaseDir(app: string, release: string): string {
    return this.runs.releaseDir(app, release)
  }

  nodeEnv(app: string, inst: InstanceSpec | null = this.liveInstance(app), relxOut?: string, run?: { release: string; role: 'node' | 'command' }): NodeJS.ProcessEnv {
    return this.runs.nodeEnv(app, inst, relxOut, run)
  }

  commandEnv(app: string, release: string, inst: InstanceSpec | null = this.liveInstance(app)): { env: NodeJS.ProcessEnv; dispose(): void } {
    return this.runs.commandEnv(app, release, inst)
  }

  /** The live instance's slot and port (instances.ts); null with the proxy off (or before a proxied instance ran). */
  liveInstance(app: string): InstanceSpec | null {
    return this.instances.live(app)
  }

  /** A port for a new instance in `slot` (instances/ports.ts): the deployer's, before it starts one there. */
  allocatePort(app: string, slot: Slot): Promise<number> {
    return this.instances.allocatePort(app, slot)
  }

  dirsOf(app: string, inst: InstanceSpec | null): InstanceDirs {
    return this.runs.dirsOf(app, inst)
  }

  /** The live instance's console pipe directory (what attach joins) and its console log directory. */
  pipeDir(app: string): string {
    return this.runs.dirsOf(app, this.liveInstance(app)).pipe
  }

  consoleLogDir(app: string): string {
    return this.runs.dirsOf(app, this.liveInstance(app)).log
  }

  /** For a follower: the live instance's console log directory as it moves between slots, and every one it may be. */
  consoleLogDirs(app: string): { current(): string; all: string[] } {
    return { current: () => this.consoleLogDir(app), all: this.runs.allLogDirs(app) }
  }

  ensureAppDirs(app: string, inst: InstanceSpec | null = null): void {
    this.runs.ensureAppDirs(app, inst)
  }

  /** The uid the app's processes run as (isolation on), else null: berth's own. */
  uidOf(app: string): number | null {
    return this.runs.uidOf(app)
  }

  /** The argv that runs `cmd` as one of the app's processes (a console's shell, to_erl): isolation/launch.ts. */
  launch(app: string, cmd: string, args: string[]): Launch {
    return this.runs.launch(app, cmd, args)
  }

  commandFor(app: string, release: string, settings: AppSettings, role: CommandRole): string {
    return this.runs.commandFor(app, release, settings, role)
  }

  script(app: string, release: string): string {
    return this.runs.script(app, release)
  }

  kindOf(app: string, release: string): ReleaseKind {
    return this.runs.kindOf(app, release)
  }

  binName(app: string, release: string): string {
    return this.runs.binName(app, release)
  }

  commandHint(app: string, release: string, settings: AppSettings, role: CommandRole): string {
    return this.runs.commandHint(app, release, settings, role)
  }

  /** `bin/APP <command> [args]` against the live instance by default (node-runs.ts). */
  command(app: string, release: string, command: string, args: string[], timeoutMs: number, signal?: AbortSignal, inst: InstanceSpec | null = this.liveInstance(app)): Promise<CommandResult> {
    return this.runs.command(app, release, command, args, timeoutMs, signal, inst)
  }
}

// The supervisor's vocabulary: a node's states and status as callers see them, and the handle it keeps on
// each process it watches. Slots and ports are not kept here: they are the instances module's.

import type { ChildProcess } from 'node:child_process'
import type { InstanceSpec } from '../instances/rows.js'
import type { ProcInfo } from '../process/proc.js'
import type { Slot } from '../paths.js'

export type { InstanceSpec }

export type NodeState = 'stopped' | 'starting' | 'running' | 'stopping' | 'crashed' | 'backoff' | 'errored'

export interface NodeStatus {
  state: NodeState
  release: string | null
  /** run_erl's pid: the supervised process (the BEAM is its child). */
  pid: number | null
  beamPid: number | null
  startedAt: string | null
  uptimeMs: number | null
  restarts: number
  lastExit: string | null
}

/** Where an instance keeps what is its own; with the proxy off, the app's single node's places of today. */
export interface InstanceDirs {
  pipe: string
  log: string
  tmp: string
}

export interface StandbyStatus {
  role: 'starting' | 'draining'
  release: string
  slot: Slot
  port: number
  pid: number | null
  startedAt: string
  /** A draining instance's connections still open are closed then. */
  drainUntil: string | null
}

/** A process the supervisor watches: one instance's run_erl, with what it knows of its run. */
export interface Handle {
  app: string
  release: string
  /** Which instance this process is (fixed for its life): null for the proxy-off node. */
  inst: InstanceSpec | null
  /** live: the instance the node record describes and every command reaches; standby: the other one. */
  role: 'live' | 'standby'
  drainUntil: number | null
  pid: number
  startTicks: number
  child: ChildProcess | null
  state: NodeState
  startedAt: number
  /** Resolves when the run_erl process has exited. */
  exited: Promise<string>
  onExit: (why: string) => void
  poll: NodeJS.Timeout | null
  /** Cached by beamOf(). */
  beam: ProcInfo | null
  /** When beamOf() last saw that BEAM alive (ms). */
  beamSeenAt: number
  /** Why berth is stopping it, for the node record's lastExit; null while nobody asked it to stop. */
  stopCause: string | null
  /** The id of the boot mark its start command printed into the console log; null for an adopted node. */
  bootId: string | null
  /** The OOM kills of the app's cgroup when this process was started or last checked; null without a cgroup. */
  oomKills: number | null
}

export interface SupervisorEvents {
  /** A node that should have been running died without being asked to. */
  crash: [app: string, why: string]
}

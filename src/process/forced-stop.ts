// How a stop that berth had to force is reported: the node ignored its stop command for stopTimeoutMs and
// was ended by SIGTERM or SIGKILL, which skips the app's clean shutdown, so it must not read as a plain stop.

import type { CommandResult } from './proc.js'

export interface ForcedStop {
  /** Appended to the stop's cause in the node's lastExit. */
  short: string
  /** The warning the operation carries (and the CLI prints). */
  warning: string
}

export function forcedStop(app: string, sig: 'SIGTERM' | 'SIGKILL', stopTimeoutMs: number, stopRun: CommandResult): ForcedStop {
  const after = `${(stopTimeoutMs / 1000).toFixed(1)} s`
  const ran = stopRun.timedOut ? 'timed out' : stopRun.code === 0 ? 'exited 0' : stopRun.code === null ? `was killed by ${stopRun.signal ?? 'a signal'}` : `exited ${stopRun.code}`
  const sent = sig === 'SIGTERM' ? 'SIGTERM' : 'SIGTERM and, 5 s later, SIGKILL'
  return {
    short: `forced with ${sig}: still running ${after} after its stop command`,
    warning: `the node of ${app} did not stop within ${after} (stopTimeoutMs) of its stop command (which ${ran}): berth sent ${sent}, so the app did not shut down cleanly`,
  }
}

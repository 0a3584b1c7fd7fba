// The deployment state machine as data: which event moves a deployment from which state to which, and
// nothing else (no I/O). The deployer and recovery move every deployment through transition(), so a state no path allows is refused.

import { problem } from '../errors.js'
import { FINAL, type Deployment, type DeploymentState, type StepName } from '../store/deployments.js'

/**
 * What happens to a deployment: a step starts (its name; every step but `rollback` becomes the state, and
 * `rollback` keeps the state it failed in, so the record shows where the new release failed), or it ends:
 * `succeed`, `fail`, `restored` (the previous release is back: rolled_back).
 */
export type DeploymentEvent = StepName | 'succeed' | 'fail' | 'restored'

export type OpenState = Exclude<DeploymentState, 'succeeded' | 'failed' | 'rolled_back'>

/**
 * Every legal move. A deploy: pending → migrating → switching → starting → verifying → (routing →
 * draining →) succeeded; a rollback starts with reverting_migrations; start/stop/restart with stopping or
 * starting. A failure before the switch ends failed; from the switch on, the previous release may be put
 * back (the rollback step, then restored). Any open state may fail: a crash of berth's own code, or the
 * recovery of a deployment an earlier agent left open. Final states have no moves.
 */
export const TRANSITIONS: Readonly<Record<OpenState, Readonly<Partial<Record<DeploymentEvent, DeploymentState>>>>> = {
  pending: { migrating: 'migrating', reverting_migrations: 'reverting_migrations', stopping: 'stopping', starting: 'starting', fail: 'failed' },
  migrating: { switching: 'switching', fail: 'failed' },
  reverting_migrations: { switching: 'switching', fail: 'failed' },
  stopping: { starting: 'starting', succeed: 'succeeded', fail: 'failed' },
  switching: { starting: 'starting', rollback: 'switching', restored: 'rolled_back', fail: 'failed' },
  starting: { verifying: 'verifying', rollback: 'starting', restored: 'rolled_back', fail: 'failed' },
  verifying: { routing: 'routing', succeed: 'succeeded', rollback: 'verifying', restored: 'rolled_back', fail: 'failed' },
  // Recovery finishes a deployment whose verified instance was routed to (see recovery.ts): succeed from here.
  routing: { draining: 'draining', succeed: 'succeeded', rollback: 'routing', restored: 'rolled_back', fail: 'failed' },
  // The new instance serves once draining starts: a failed drain is reported, the deployment still succeeds.
  draining: { succeed: 'succeeded', fail: 'failed' },
}

const FINAL_STATES: ReadonlySet<DeploymentState> = new Set(FINAL)

export function isFinal(state: DeploymentState): boolean {
  return FINAL_STATES.has(state)
}

/** The state `event` leads to from `state`, or null when the table has no such move (and for final states). */
export function nextState(state: DeploymentState, event: DeploymentEvent): DeploymentState | null {
  if (isFinal(state)) return null
  return TRANSITIONS[state as OpenState][event] ?? null
}

/** nextState, or INTERNAL naming the move: a path the table does not allow is a bug in berth, never a state on record. */
export function transition(state: DeploymentState, event: DeploymentEvent): DeploymentState {
  const next = nextState(state, event)
  if (next === null) throw problem('INTERNAL', `berth tried an illegal deployment transition: ${event} in ${state}`)
  return next
}

/**
 * The one way a deployment fails: state, reason and reasonCode (the catalogue code, null when there is none,
 * as for a deployment recovery resolves). Who ends the job records finishedAt and the event (deployer's settle, recovery).
 */
export function fail(d: Deployment, code: string | null, message: string): void {
  d.state = transition(d.state, 'fail')
  d.reason = message
  d.reasonCode = code
}

/** Succeeded; `reason` only where something is worth saying (recovery finishing an interrupted deployment). */
export function succeed(d: Deployment, reason?: string): void {
  d.state = transition(d.state, 'succeed')
  if (reason !== undefined) d.reason = reason
}

/** The previous release is back after the new one failed to start or verify. */
export function restored(d: Deployment, message: string): void {
  d.state = transition(d.state, 'restored')
  d.reason = message
}

// One step of a deployment: recorded as running (and as the deployment's state) before its work starts,
// with its output and end time after, so a restarted agent knows where it stopped; the verifying step's work,
// and the code a failure is recorded with.

import type { AppSettings } from '../apps/settings.js'
import { isBerthError, problem, StepFailed } from '../errors.js'
import { BEFORE_SWITCH, type Deployment, type DeploymentStore, type StepName } from '../store/deployments.js'
import type { HealthMonitor } from '../supervision/health.js'
import type { NodeControl } from '../supervision/supervisor.js'
import { transition } from './machine.js'

/** What a step's work answers: its output, null when it was skipped, or a skip with the reason why. */
export type StepOutcome = string | null | { skipped: string }

export interface StepDeps {
  deployments: Pick<DeploymentStore, 'save'>
  /** Test hook: a pause at the start of one step (see Config.testStepPause). */
  stepPause?: { step: string; ms: number } | null
}

/** The catalogue code a failure is recorded with (reasonCode); anything unexpected is INTERNAL. */
export function codeOf(err: unknown): string {
  return isBerthError(err) ? err.code : 'INTERNAL'
}

/** Runs one step; its failure is rethrown after the step is recorded as failed with the error's output. */
export async function runStep(deps: StepDeps, d: Deployment, name: StepName, signal: AbortSignal, fn: () => Promise<StepOutcome>): Promise<void> {
  if (signal.aborted) throw problem('ABORTED', `berth is shutting down; ${name} did not start`)
  const state = transition(d.state, name)
  const step = { name, state: 'running' as const, startedAt: new Date().toISOString(), endedAt: null as string | null, output: '' }
  d.steps.push(step)
  d.state = state
  deps.deployments.save(d)
  const s = d.steps[d.steps.length - 1]!
  const pause = deps.stepPause
  if (pause && pause.step === name) await new Promise((r) => setTimeout(r, pause.ms))
  try {
    const out = await fn()
    const skipped = out === null || typeof out === 'object'
    Object.assign(s, { state: skipped ? 'skipped' : 'ok', output: out === null ? '' : typeof out === 'object' ? out.skipped : out, endedAt: new Date().toISOString() })
  } catch (err) {
    Object.assign(s, { state: 'failed', output: err instanceof StepFailed && err.output ? err.output : (err as Error).message, endedAt: new Date().toISOString() })
    if (signal.aborted && !BEFORE_SWITCH.has(name)) d.reason = `berth shut down during ${name}`
    deps.deployments.save(d)
    throw err
  }
  deps.deployments.save(d)
}

/** The verifying step's work: the node's own check, then the health monitor hears its URL was just checked. */
export async function verifyNode(deps: { supervisor: Pick<NodeControl, 'verify'>; health: Pick<HealthMonitor, 'verified'> }, app: string, settings: AppSettings, signal: AbortSignal): Promise<string> {
  const out = await deps.supervisor.verify(app, settings, signal)
  if (settings.healthUrl) deps.health.verified(app, settings.healthUrl)
  return out
}

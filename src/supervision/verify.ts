// Verification policy for a node just started: booted (init and the release's applications, asked through
// its rpc command), then its health URL answering 2xx, within bootTimeoutMs, then up for the stable window.

import type { AppSettings } from '../apps/settings.js'
import { problem, StepFailed } from '../errors.js'
import { sleep } from '../process/proc.js'
import { KINDS } from '../releases/kinds.js'
import { bootApps, waitForBoot, waitForHealth, type WaitOutcome } from './boot-check.js'
import { bootLogText } from './logs.js'
import type { NodeRuns } from './node-runs.js'
import type { Handle } from './types.js'

/** How much of a node's console log a boot failure carries in its step output. */
const BOOT_LOG_LINES = 30

/**
 * NODE_EXITED for a node that died while booting, with what this boot wrote to its console log as the
 * step's output (from its boot mark on): the reason it died (a crash report, a port in use, a bad config)
 * is there, and an earlier boot's stack trace in the same file is not.
 */
function bootFailure(runs: NodeRuns, l: Handle, reason: string): StepFailed {
  return new StepFailed('NODE_EXITED', reason, `${reason}${bootLogText(runs.dirsOf(l.app, l.inst).log, l.app, l.bootId, BOOT_LOG_LINES)}`)
}

/**
 * Throws a problem whose message is the reason, for the deployment record; `died` says whether the handle is
 * no longer the one watched; `signal` ends the wait early (berth is shutting down) with ABORTED. Answers the
 * notes of what was checked; the caller marks the node running.
 */
export async function verifyNode(runs: NodeRuns, l: Handle, settings: AppSettings, died: () => boolean, signal?: AbortSignal): Promise<string> {
  const app = l.app
  // A proxied instance is checked on its own port: the app's healthUrl names the public address.
  const healthUrl = l.inst && settings.proxy ? `http://127.0.0.1:${l.inst.port}${settings.proxy.healthPath}` : settings.healthUrl
  const aborted = () => {
    if (signal?.aborted) throw problem('ABORTED', 'verification was aborted: berth is shutting down')
  }
  const deadline = Date.now() + settings.bootTimeoutMs
  const notes: string[] = []
  const exitedDuring = async (what: string, hint = '') => bootFailure(runs, l, `the node exited ${what} (${await l.exited})${hint}`)
  const rpc = runs.commandFor(app, l.release, settings, 'rpc')
  const language = KINDS[runs.kindOf(app, l.release)].language
  const rel = bootApps(runs.releaseDir(app, l.release))
  if (!rel) notes.push("the release's .rel was not found: booted means init's status alone")
  const boot: WaitOutcome = await waitForBoot({ died, aborted, deadline, ask: (expr, timeoutMs) => runs.command(app, l.release, rpc, [expr], timeoutMs, signal, l.inst) }, language, rel?.apps ?? [])
  if (!boot.ok && boot.why === 'died') throw await exitedDuring('during boot', runs.commandHint(app, l.release, settings, 'start'))
  if (!boot.ok) throw problem('BOOT_TIMEOUT', `the node did not finish booting within the boot timeout (${settings.bootTimeoutMs} ms): ${boot.why === 'timeout' ? boot.last : ''}${runs.commandHint(app, l.release, settings, 'rpc')}`)
  notes.push(`booted in ${Date.now() - l.startedAt} ms: init has started${rel ? ` and the applications of ${rel.file} run (${rel.apps.join(', ')})` : ''}; asked ${boot.checks} times through bin/${runs.binName(app, l.release)} ${rpc}`)
  if (healthUrl) {
    const health = await waitForHealth(healthUrl, { died, aborted, deadline }, signal)
    if (!health.ok && health.why === 'died') throw await exitedDuring(`before ${healthUrl} answered`)
    if (!health.ok) throw problem('HEALTH_CHECK_FAILED', `${healthUrl} did not answer 2xx within the boot timeout (last: ${health.why === 'timeout' ? health.last : ''})`)
    notes.push(`${healthUrl} answered 2xx after ${Date.now() - l.startedAt} ms`)
  }
  const stableUntil = Date.now() + settings.stableWindowMs
  while (Date.now() < stableUntil) {
    if (died()) throw await exitedDuring('during the stable window')
    aborted()
    await sleep(Math.min(100, Math.max(0, stableUntil - Date.now())))
  }
  if (died()) throw await exitedDuring('during the stable window')
  notes.push(`stayed up for the stable window (${settings.stableWindowMs} ms) after booting`)
  return notes.join('\n')
}

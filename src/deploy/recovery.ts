// Crash recovery at agent start: every deployment an earlier agent left open ends in one defined state, then
// the nodes, second instances and proxies are brought to what the resolved deployments say.

import type { Logger } from 'pino'
import type { AppStore } from '../apps/store.js'
import type { Paths } from '../paths.js'
import type { ProxyControl } from '../edge/front.js'
import { currentReleaseId, switchCurrent } from '../releases/current.js'
import { recordDeployed } from '../releases/history.js'
import { BEFORE_SWITCH, type Deployment, type DeploymentStore } from '../store/deployments.js'
import type { EventStore } from '../store/events.js'
import type { ReleaseStore } from '../store/releases.js'
import type { InstanceControl, NodeControl } from '../supervision/supervisor.js'
import { fail, succeed } from './machine.js'
import { isProxied } from './proxied.js'

export interface RecoveryDeps {
  paths: Paths
  releases: ReleaseStore
  deployments: DeploymentStore
  apps: AppStore
  events: EventStore
  supervisor: NodeControl
  log: Logger
  /** Zero-downtime deploys (apps with the proxy setting): the second instance and the proxy. */
  instances?: InstanceControl
  proxy?: ProxyControl
  /** The deployer's start/restart: a node brought back is replaced through a recorded, verified operation. */
  operate: (app: string, action: 'start' | 'restart', actor: string) => Promise<Deployment>
}

/**
 * Start-up recovery, before anything else uses the lock table. Every deployment an earlier agent left
 * unfinished ends in one defined state: when it got as far as switching, the release it started from is put
 * back as current (an interrupted deployment never leaves an unverified release live). Then the nodes are
 * made to match: a node still running current is re-adopted untouched; one running anything else, or dead
 * while it should run, is replaced through a recorded operation that verifies it, so that no node sits in
 * `starting` with nobody verifying it; one that was asked to stop is stopped.
 */
export async function recoverDeployments(deps: RecoveryDeps): Promise<Deployment[]> {
  const { deployments, releases, supervisor, apps, log, paths } = deps
  deployments.clearStaleLocks()
  const fixed: Deployment[] = []
  for (const d of deployments.unfinished()) fixed.push(await resolve(deps, d))
  // Apps without a node record too: a node whose record went with a lost database is found and adopted.
  const { dead, adopted } = supervisor.adopt(releases.apps().map((a) => a.name))
  await recoverProxies(deps)
  for (const rec of [...dead, ...adopted]) {
    const current = await currentReleaseId(paths, rec.app)
    const running = adopted.includes(rec)
    try {
      if (!current || rec.desired === 'stopped') {
        if (running) await supervisor.stop(rec.app, apps.settings(rec.app), { cause: 'stopped at agent start (asked to stay stopped)' })
      } else if (!running) {
        await deps.operate(rec.app, 'start', 'berth')
        log.info({ app: rec.app, release: current }, 'node was down at agent start: starting it')
      } else if (rec.releaseId !== current) {
        await deps.operate(rec.app, 'restart', 'berth')
        log.info({ app: rec.app, running: rec.releaseId, release: current }, 'node runs another release than current: replacing it')
      }
    } catch (err) {
      log.error({ app: rec.app, err }, 'could not bring the node to its desired state at agent start')
    }
  }
  for (const { name } of releases.apps()) {
    if (apps.node(name) || !(await currentReleaseId(paths, name))) continue
    // No record of a node and none found running: its environment may have been lost with the database, and a
    // node started without it could do harm (wrong database, no secrets). An operator starts it.
    log.warn({ app: name }, `the app has a current release but no node record and no node runs; not starting it: check its environment (berth env ${name} list), then start it (POST /v1/apps/${name}/start)`)
  }
  return fixed
}

/** One deployment an earlier agent left open: finished when its verified instance took the traffic, failed otherwise. */
async function resolve(deps: RecoveryDeps, d: Deployment): Promise<Deployment> {
  const { deployments, paths, releases, apps, log } = deps
  const step = d.steps.at(-1)?.name ?? 'pending'
  const switched = d.steps.some((s) => !BEFORE_SWITCH.has(s.name))
  const notes = [`agent restarted during ${step}`]
  const cur = await currentReleaseId(paths, d.app)
  const rec = apps.node(d.app)
  // Behind the proxy, a deployment that got to routing with its instance recorded as live had passed
  // verification and takes the traffic: finishing it (the old instance is stopped below) is the safe way.
  const switchedTraffic = isProxied(deps, apps.settings(d.app)) && d.steps.some((s) => s.name === 'routing') && rec?.releaseId === d.release && !!rec.slot && apps.standby(d.app)?.role !== 'starting'
  if ((d.kind === 'deploy' || d.kind === 'rollback') && switchedTraffic) {
    if (cur !== d.release) await switchCurrent(paths, d.app, d.release)
    notes.push(`${d.release} had taken the traffic: kept it; the old instance finishes its drain and stops`)
    succeed(d, notes.join('; '))
    deployments.finish(d)
    await recordDeployed(paths, d.app, d.release, d.finishedAt ?? new Date().toISOString()).catch(() => {})
    deps.events.record({ app: d.app, actor: 'berth', action: d.kind, outcome: 'succeeded', detail: { deployment: d.id, reason: d.reason } })
    log.warn({ app: d.app, deployment: d.id, step }, 'finished a deployment interrupted by an agent restart after its switch')
    return d
  }
  if ((d.kind === 'deploy' || d.kind === 'rollback') && switched && d.previous && releases.get(d.app, d.previous)) {
    if (cur !== d.previous) await switchCurrent(paths, d.app, d.previous)
    notes.push(`put ${d.previous} back as current`)
  } else if (cur && !releases.get(d.app, cur) && d.previous) {
    // current names a release that is not recorded: put back what the deployment started from.
    await switchCurrent(paths, d.app, d.previous)
    notes.push(`put ${d.previous} back as current`)
  }
  // The code a failure recorded before the agent died (a failed boot, say) stays with it.
  fail(d, d.reasonCode, notes.join('; '))
  deployments.finish(d)
  deps.events.record({ app: d.app, actor: 'berth', action: d.kind, outcome: 'failed', detail: { deployment: d.id, reason: d.reason } })
  log.warn({ app: d.app, deployment: d.id, step }, 'resolved deployment interrupted by an agent restart')
  return d
}

/**
 * At start, after the deployments are resolved and the instances adopted: each proxy is adopted, or started
 * when it died with berth, and pointed at the live instance; a second instance that was starting belongs to
 * no deployment any more and is stopped, one that was draining finishes its drain and then stops.
 */
async function recoverProxies(deps: RecoveryDeps): Promise<void> {
  const { instances, proxy, releases, apps, supervisor, log } = deps
  if (!instances || !proxy) return
  for (const { name } of releases.apps()) {
    const settings = apps.settings(name)
    try {
      const other = instances.standbyOf(name)
      const live = supervisor.isUp(name) ? instances.liveInstance(name) : null
      if (settings.proxy && (live || proxy.status(name) || proxy.isRunning(name))) await proxy.ensure(name, settings.proxy, live)
      if (other?.role === 'draining' && live && proxy.isRunning(name)) {
        // The old instance of a finished switch keeps its connections for the rest of its drain, as if
        // berth had not restarted; a deployment that starts meanwhile stops it first.
        void proxy
          .drain(name, other.slot, Date.parse(other.drainUntil ?? new Date().toISOString()))
          .catch((err) => log.warn({ app: name, err }, 'the proxy did not answer while the old instance drained'))
          .then(() => instances.stopStandby(name, settings, 'stopped after its drain'))
          .catch((err) => log.error({ app: name, err }, 'could not stop the drained instance'))
      } else if (other) await instances.stopStandby(name, settings, 'stopped at agent start: its deployment was resolved')
    } catch (err) {
      log.error({ app: name, err }, 'could not bring the proxy and instances to their state at agent start')
    }
  }
}

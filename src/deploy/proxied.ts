// Starting a release behind the proxy, for deploys, rollbacks and restarts: beside the live instance when one
// serves (verified on its own port, routed to, the old one drained), and putting things back when it fails.

import type { AppSettings } from '../apps/settings.js'
import { SLOTS, type Paths } from '../paths.js'
import { FrontDoor, type ProxyControl } from '../edge/front.js'
import { switchCurrent } from '../releases/current.js'
import type { Deployment, DeploymentStore } from '../store/deployments.js'
import type { HealthMonitor } from '../supervision/health.js'
import type { InstanceControl, InstanceSpec, NodeControl } from '../supervision/supervisor.js'
import { succeed } from './machine.js'
import { runStep, verifyNode, type StepDeps } from './steps.js'

export type ProxiedSettings = AppSettings & { proxy: NonNullable<AppSettings['proxy']> }

export interface ProxiedDeps extends StepDeps {
  paths: Paths
  deployments: Pick<DeploymentStore, 'save'>
  supervisor: NodeControl
  health: Pick<HealthMonitor, 'verified'>
  /** Zero-downtime deploys (apps with the proxy setting): the second instance and the proxy. */
  instances?: InstanceControl
  proxy?: ProxyControl
}

/** The app has the proxy setting and this berth runs proxies and second instances. */
export function isProxied(deps: Pick<ProxiedDeps, 'instances' | 'proxy'>, settings: AppSettings): settings is ProxiedSettings {
  return !!settings.proxy && !!deps.proxy && !!deps.instances
}

export class ProxiedStart {
  /** Deployments whose new instance starts next to the live one: a failure before the switch only drops it. */
  private readonly sideBySide = new Set<string>()

  constructor(private readonly deps: ProxiedDeps) {}

  /**
   * How a deploy would start the node now, for the dry run as for start(): `direct` stops the node and
   * starts the new one; `proxied` has no instance serving behind the proxy and starts one, then routes to it;
   * `beside-live` starts the new instance next to the live one, routes to it and drains the old one.
   */
  startPath(app: string, settings: AppSettings): 'direct' | 'proxied' | 'beside-live' {
    if (!isProxied(this.deps, settings)) return 'direct'
    return this.deps.instances!.liveInstance(app) && this.deps.supervisor.isUp(app) ? 'beside-live' : 'proxied'
  }

  /**
   * True once, when `id` started its instance beside the live one and it never took traffic: then a failure
   * only drops the new instance. Forgets the deployment either way.
   */
  untouchedLive(id: string): boolean {
    return this.sideBySide.delete(id)
  }

  /**
   * Starting behind the proxy. With a proxied live instance up: the new one starts in the other slot, is
   * verified on its own port, takes the new connections, and the old one drains and stops; the old one is
   * never touched before the switch. Without one (the first deploy behind the proxy, or the app was down):
   * the node starts as the live instance, and the proxy sends traffic to it once it is verified.
   */
  async start(d: Deployment, release: string, settings: ProxiedSettings, signal: AbortSignal): Promise<void> {
    const { supervisor } = this.deps
    const instances = this.deps.instances!
    const proxy = this.deps.proxy!
    const live = instances.liveInstance(d.app)
    if (!live || this.startPath(d.app, settings) !== 'beside-live') {
      const slot = live?.slot ?? 'a'
      const inst: InstanceSpec = { slot, port: await instances.allocatePort(d.app, slot) }
      await runStep(this.deps, d, 'starting', signal, async () => {
        const forced = await supervisor.stop(d.app, settings, { desired: 'running', cause: `stopped by ${d.kind} to ${release}` })
        if (forced) d.warnings.push(forced)
        await supervisor.start(d.app, release, settings, inst)
        return `started ${release} under run_erl in slot ${inst.slot} on 127.0.0.1:${inst.port} (no instance was serving)`
      })
      await runStep(this.deps, d, 'verifying', signal, () => verifyNode(this.deps, d.app, settings, signal))
      await runStep(this.deps, d, 'routing', signal, async () => {
        await proxy.ensure(d.app, settings.proxy, inst)
        return `${FrontDoor.describe(settings.proxy)} -> slot ${inst.slot} (127.0.0.1:${inst.port})`
      })
      succeed(d)
      return
    }
    const slot = SLOTS.find((s) => s !== live.slot)!
    const inst: InstanceSpec = { slot, port: await instances.allocatePort(d.app, slot) }
    this.sideBySide.add(d.id)
    await runStep(this.deps, d, 'starting', signal, async () => {
      // A second instance left behind (berth died mid-deploy and recovery could not stop it) is not kept.
      await instances.stopStandby(d.app, settings, 'replaced by a new deployment')
      await instances.startStandby(d.app, release, settings, inst)
      return `started ${release} under run_erl in slot ${inst.slot} on 127.0.0.1:${inst.port}; slot ${live.slot} keeps serving`
    })
    await runStep(this.deps, d, 'verifying', signal, () => instances.verifyStandby(d.app, settings, signal))
    const drainUntil = Date.now() + settings.proxy.drainTimeoutMs
    await runStep(this.deps, d, 'routing', signal, async () => {
      await proxy.ensure(d.app, settings.proxy, live)
      await proxy.switchTo(d.app, inst)
      instances.promote(d.app, Date.now() + settings.proxy.drainTimeoutMs)
      this.sideBySide.delete(d.id)
      return `${FrontDoor.describe(settings.proxy)} -> slot ${inst.slot} (127.0.0.1:${inst.port}); slot ${live.slot} drains`
    })
    if (settings.healthUrl) this.deps.health.verified(d.app, settings.healthUrl)
    // The new instance serves from here on: a failed drain is reported, never rolled back.
    await runStep(this.deps, d, 'draining', signal, () => this.drainOld(d.app, live, drainUntil, settings, signal)).catch((err) => {
      if (signal.aborted) throw err
    })
    succeed(d)
  }

  /** Lets the old instance's connections finish until drainUntil, closes what is left, then stops it. */
  private async drainOld(app: string, old: InstanceSpec, drainUntil: number, settings: AppSettings, signal: AbortSignal): Promise<string> {
    const started = Date.now()
    let note: string
    try {
      const cut = await this.deps.proxy!.drain(app, old.slot, drainUntil, signal)
      note = cut > 0 ? `closed ${cut} connection(s) still open after the drain timeout` : 'every connection finished'
    } catch (err) {
      if (signal.aborted) throw err
      note = `the proxy did not answer during the drain (${(err as Error).message})`
    }
    await this.deps.instances!.stopStandby(app, settings, 'stopped after its drain')
    return `slot ${old.slot} drained for ${Date.now() - started} ms: ${note}; stopped it`
  }

  /**
   * A new instance failed before it took any traffic: it is stopped, current goes back, and the live
   * instance, which served throughout, is left exactly as it was (the proxy is pointed at it again in case
   * the switch was under way). The rollback step's work; throws when putting things back failed.
   */
  async dropNewInstance(d: Deployment, settings: ProxiedSettings, signal: AbortSignal): Promise<void> {
    const instances = this.deps.instances!
    await runStep(this.deps, d, 'rollback', signal, async () => {
      await instances.stopStandby(d.app, settings, 'stopped after it failed verification')
      if (d.previous) await switchCurrent(this.deps.paths, d.app, d.previous)
      const live = instances.liveInstance(d.app)
      // Where the proxy runs now: putting things back includes the listener, and a new address may be the
      // very reason this failed (taken).
      const listen = this.deps.proxy!.status(d.app)?.listen ?? settings.proxy.listen
      if (live) await this.deps.proxy!.ensure(d.app, { ...settings.proxy, listen }, live)
      return `${d.previous ? `current -> releases/${d.previous}\n` : ''}stopped the new instance; the live instance${live ? ` in slot ${live.slot}` : ''} served throughout`
    })
  }
}

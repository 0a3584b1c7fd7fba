// The front door of an app, as deploys see it: its own haproxy (proxy.listen) and/or its hostnames on the
// shared edge (proxy.hosts). Routing, switching and draining go to whichever the app's settings name.

import type { ProxySettings } from '../apps/proxy-settings.js'
import { problem } from '../errors.js'
import type { Slot } from '../paths.js'
import type { SlotTarget } from '../proxy/haproxy.js'
import type { ProxyManager, ProxyStatus } from '../proxy/proxy.js'
import { sleep } from '../process/proc.js'
import type { EdgeControl } from './types.js'

export class FrontDoor {
  constructor(
    private readonly proxy: ProxyManager,
    /** null: no edge on this host (BERTH_EDGE_HTTP unset). */
    private readonly edge: EdgeControl | null,
  ) {}

  /**
   * Makes the app's listener and hostnames route to `live`, as its settings say now: a listener or
   * hostnames the settings dropped stop routing to it.
   */
  async ensure(app: string, settings: ProxySettings, live: SlotTarget | null): Promise<void> {
    if (settings.hosts.length > 0 && !this.edge) {
      throw problem('EDGE_NOT_CONFIGURED', `App "${app}" has proxy.hosts, but this host runs no edge: set BERTH_EDGE_HTTP (and BERTH_EDGE_HTTPS) and restart berth, or remove the hosts.`)
    }
    if (settings.listen) await this.proxy.ensure(app, { listen: settings.listen, drainTimeoutMs: settings.drainTimeoutMs }, live)
    else if (this.proxy.status(app)) await this.proxy.stop(app)
    if (this.edge && settings.hosts.length > 0) await this.edge.ensure(app, settings, live)
    else if (this.edge?.serves(app)) await this.edge.remove(app)
  }

  /** New connections go to `to`, on the listener and on the edge alike; open ones keep their instance. */
  async switchTo(app: string, to: SlotTarget): Promise<void> {
    if (this.proxy.isRunning(app)) await this.proxy.switchTo(app, to)
    if (this.edge?.serves(app)) await this.edge.switchTo(app, to)
  }

  /** Open sessions to a slot through either door. */
  async sessions(app: string, slot: Slot): Promise<number> {
    const own = this.proxy.isRunning(app) ? await this.proxy.sessions(app, slot) : 0
    const edge = this.edge?.serves(app) ? await this.edge.sessions(app, slot) : 0
    return own + edge
  }

  /**
   * Waits until the slot has no open session through either door or the drain time is over, then closes
   * what is left. Answers how many sessions were cut. `signal` ends the wait without closing anything.
   */
  async drain(app: string, slot: Slot, untilMs: number, signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (signal?.aborted) throw problem('ABORTED', 'the drain was interrupted: berth is shutting down')
      const open = await this.sessions(app, slot)
      if (open === 0) return 0
      if (Date.now() >= untilMs) {
        if (this.proxy.isRunning(app)) await this.proxy.closeSessions(app, slot)
        if (this.edge?.serves(app)) await this.edge.closeSessions(app, slot)
        return open
      }
      await sleep(Math.min(100, Math.max(0, untilMs - Date.now())))
    }
  }

  /** The app has no proxy setting any more: its listener goes, and its hostnames leave the edge. */
  async stop(app: string): Promise<void> {
    if (this.proxy.status(app)) await this.proxy.stop(app)
    if (this.edge?.serves(app)) await this.edge.remove(app)
  }

  /** The app's own listener (null without one); the edge has its own status. */
  status(app: string): ProxyStatus | null {
    return this.proxy.status(app)
  }

  /** Something routes to the app's instances now: its listener, or the edge. */
  isRunning(app: string): boolean {
    return this.proxy.isRunning(app) || !!this.edge?.serves(app)
  }

  /** Where the app's traffic enters, for step details: its listener and its hostnames. */
  static describe(settings: ProxySettings): string {
    return [settings.listen, ...settings.hosts].filter(Boolean).join(', ')
  }
}

/** What the deployer needs of the front door. */
export type ProxyControl = Pick<FrontDoor, 'ensure' | 'switchTo' | 'drain' | 'stop' | 'status' | 'isRunning'>

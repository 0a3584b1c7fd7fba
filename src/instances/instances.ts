// The one owner of slot state: which instance of an app is live and which is standby (starting or draining),
// their slots, ports and node names, and what the app's proxy routes to. Persisted once, in berth.db.
//
// Which slot is live, and on which port? `live(app)`: the nodes row's slot and port (null with the proxy
// off). The other instance, while a deploy starts it or after the switch while it drains: `standby(app)`.
// What haproxy sends new connections to: `routed(app)`, set by the proxy just before each switch, so it leads
// `live` by the moments between the switch and `promote` (which turns standby into live in one transaction).
// A berth killed in between comes back with the nodes row as the truth; deploy recovery points the proxy
// back at it. Without berth.db, `recover` finds the running instances and takes haproxy's config for which
// one is live: the only place that reads another module's file, and only when the database has nothing.
//
// Who writes: the supervisor (start, exit, promote, adoption), the crash policy and the deployer (restart
// counts and desired state, through AppStore's node rows, which are these), the proxy (the route). Nobody
// else keeps a copy: the supervisor's maps hold process handles, not slots.

import type { Logger } from 'pino'
import type { Paths, Slot } from '../paths.js'
import type { Database } from '../store/db.js'
import { nodeName } from './names.js'
import { InstancePorts, type PortRange } from './ports.js'
import { findUnrecordedNode, findUnrecordedNodes, type UnrecordedNode } from './recovery.js'
import { InstanceRows, type InstanceSpec, type NodeRecord, type StandbyRecord } from './rows.js'

export type { InstanceSpec, NodeRecord, StandbyRecord, UnrecordedNode, PortRange }

export interface InstancesDeps {
  db: Database
  paths: Paths
  log: Logger
  /** BERTH_INSTANCE_PORTS: where instance ports come from. */
  ports: PortRange
  /** The bind check of a port; tests hand in their own. */
  canListen?: (port: number) => Promise<boolean>
}

export class Instances {
  readonly rows: InstanceRows
  private readonly ports: InstancePorts

  constructor(private readonly deps: InstancesDeps) {
    this.rows = new InstanceRows(deps.db)
    this.ports = new InstancePorts(this.rows, deps.ports, deps.log, deps.paths.dataDir, deps.canListen)
  }

  /** The live instance's slot and port; null with the proxy off (or before a proxied instance ran). */
  live(app: string): InstanceSpec | null {
    const rec = this.rows.node(app)
    return rec?.slot && rec.port ? { slot: rec.slot, port: rec.port } : null
  }

  /** The second instance's row: starting before the switch, draining after it; null when there is none. */
  standby(app: string): StandbyRecord | null {
    return this.rows.standby(app)
  }

  /** The instance the app's proxy sends new connections to, as berth last told it. */
  routed(app: string): InstanceSpec | null {
    return this.rows.route(app)
  }

  /** Written by the proxy before it switches (a haproxy restarted meanwhile must come back pointing there). */
  route(app: string, to: InstanceSpec | null): void {
    this.rows.saveRoute(app, to)
  }

  /** An instance's distribution node name: APP--SLOT (distribution.ts), or APP with the proxy off. */
  nodeName(app: string, slot: Slot | null): string {
    return nodeName(app, slot)
  }

  /** A port for a new instance in `slot`, from BERTH_INSTANCE_PORTS, recorded as the slot's (ports.ts). */
  allocatePort(app: string, slot: Slot): Promise<number> {
    return this.ports.claim(app, slot)
  }

  /** The port recorded for a slot, or null. */
  portOf(app: string, slot: Slot): number | null {
    return this.ports.portOf(app, slot)
  }

  /**
   * The switch, in one transaction: the standby becomes the live instance (the nodes row) and the old live
   * one, when there is one, becomes the standby that drains until `drainUntil`.
   */
  promote(app: string, live: NodeRecord, draining: StandbyRecord | null): void {
    this.rows.promote(app, live, draining)
  }

  /**
   * After berth.db was lost (or for `berth import`): the node to adopt as live, and the other slot's, if one
   * runs, which is left to drain. Recorded here: the live one's route, and both slots' ports (so that no new
   * instance is given a port a running one holds).
   */
  recover(app: string): { live: UnrecordedNode; other: UnrecordedNode | null } | null {
    const live = findUnrecordedNode(this.deps.paths, app)
    if (!live) return null
    const other = live.slot ? (findUnrecordedNodes(this.deps.paths, app).find((n) => n.slot && n.slot !== live.slot && n.port) ?? null) : null
    for (const n of [live, other]) if (n?.slot && n.port) this.ports.adopt(app, n.slot, n.port)
    if (live.slot && live.port && !this.rows.route(app)) this.rows.saveRoute(app, { slot: live.slot, port: live.port })
    return { live, other }
  }
}

// Finding instances without berth.db: the run_erl processes berth started on an app's console pipes, and,
// only here, what the app's haproxy config says it routes to. Used by adoption and `berth import`.

import fs from 'node:fs'
import path from 'node:path'
import { appUidOnDisk } from '../isolation/app-dirs.js'
import { RELEASE_ID, SLOTS, type Paths, type Slot } from '../paths.js'
import { findRunErl, startedAt } from '../process/proc.js'
import { envPort } from '../process/run-erl.js'
import { liveInConfig } from '../proxy/haproxy.js'
import type { InstanceSpec } from './rows.js'

export interface UnrecordedNode {
  pid: number
  startTicks: number
  release: string
  startedAt: string | null
  /** With the proxy on: the instance's slot and its private port (its PORT); null for the proxy-off node. */
  slot: Slot | null
  port: number | null
}

/**
 * The node berth runs for `app`, found without the database: a run_erl on the app's console pipe, or on an
 * instance slot's pipe, whose command (`exec "…/releases/ID/bin/APP" …`) names a release. With two instances
 * (the database was lost during a drain) it is the one the proxy routes to.
 */
export function findUnrecordedNode(paths: Paths, app: string): UnrecordedNode | null {
  const found = findUnrecordedNodes(paths, app)
  const routed = routedByProxyConfig(paths, app)
  return found.find((n) => n.slot === null) ?? found.find((n) => routed && n.slot === routed.slot && n.port === routed.port) ?? found[0] ?? null
}

/** Every node berth started for `app` that still runs: the proxy-off one and each instance slot's. */
export function findUnrecordedNodes(paths: Paths, app: string): UnrecordedNode[] {
  const out: UnrecordedNode[] = []
  const places: { pipe: string; slot: Slot | null }[] = [{ pipe: path.join(paths.shared(app), 'pipe'), slot: null }, ...SLOTS.map((slot) => ({ pipe: path.join(paths.instance(app, slot), 'pipe'), slot }))]
  const uid = appUidOnDisk(paths, app)
  for (const { pipe, slot } of places) {
    for (const { info, argv } of findRunErl(pipe, uid === null ? [] : [uid])) {
      const release = /\/releases\/([^/"]+)\/bin\//.exec(argv[3] ?? '')?.[1]
      if (!release || !RELEASE_ID.test(release)) continue
      // The instance's port is the PORT berth gave run_erl (the node inherits it); nothing else records it.
      const port = slot ? envPort(info.pid) : null
      if (slot && port === null) continue
      out.push({ pid: info.pid, startTicks: info.startTicks, release, startedAt: startedAt(info.startTicks)?.toISOString() ?? null, slot, port })
      break
    }
  }
  return out
}

/**
 * What the app's haproxy routes to by its config (apps/APP/proxy/haproxy.cfg): the proxy writes it before each
 * switch, and a haproxy that restarts reads it. Only for when berth.db has no route: routes in berth.db win.
 */
export function routedByProxyConfig(paths: Paths, app: string): InstanceSpec | null {
  try {
    return liveInConfig(fs.readFileSync(path.join(paths.proxy(app), 'haproxy.cfg'), 'utf8'))
  } catch {
    return null
  }
}

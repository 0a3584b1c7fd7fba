// The seams between the edge's parts: what the certificate owner needs of the running edge (load a PEM,
// drop one), and what deploys need of it (route an app's hostnames to an instance slot, drain a slot).

import type { ProxySettings } from '../apps/proxy-settings.js'
import type { Slot } from '../paths.js'
import type { SlotTarget } from '../proxy/haproxy.js'

/** The running edge as certificates need it: each call also writes what a restarted edge reads. */
export interface CertificateSink {
  /**
   * Serves `pemFile` (chain then key, already written by the caller under Paths.edgeCerts) for the
   * hostnames it covers, at once and without a reload: haproxy's `set ssl cert` / `add ssl crt-list`.
   */
  install(host: string, pemFile: string): Promise<void>
  /** Stops serving the host's certificate (it was removed, or the host left every app). */
  remove(host: string): Promise<void>
}

/** The edge as deploys need it (edge/front.ts composes it with the per-app proxy). */
export interface EdgeControl {
  /** Routes the app's hostnames to `live` (null: none verified yet), with the app's edge settings. */
  ensure(app: string, settings: ProxySettings, live: SlotTarget | null): Promise<void>
  /** The app leaves the edge: its hostnames answer berth's 404 page. */
  remove(app: string): Promise<void>
  switchTo(app: string, to: SlotTarget): Promise<void>
  /** Open sessions to one slot of the app, in every edge process (a reloaded one finishing too). */
  sessions(app: string, slot: Slot): Promise<number>
  closeSessions(app: string, slot: Slot): Promise<void>
  /** The edge routes this app now. */
  serves(app: string): boolean
}

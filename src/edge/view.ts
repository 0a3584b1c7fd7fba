// What the app view (GET /v1/apps/{app}) says of an app on the shared edge: its hostnames with the URLs users
// reach them at, the TLS mode in force, whether the edge routes it yet, and its pause.

import { tlsMode, type ProxySettings, type TlsMode } from '../apps/proxy-settings.js'
import type { Edge } from './edge.js'

export interface AppEdgeView {
  hosts: string[]
  /** One per host, in the same order: https:// with TLS on, else http://, with the listener's port unless default. */
  urls: string[]
  tls: TlsMode
  /** The edge routes the app now; false until it is deployed (or restarted) with these hostnames. */
  routed: boolean
  paused: boolean
  retryAfterSeconds: number | null
}

/** The listener's port as a URL needs it: empty for the scheme's default. */
function portSuffix(listen: string | null, defaultPort: string): string {
  const port = listen ? /:(\d+)$/.exec(listen)?.[1] : undefined
  return !port || port === defaultPort ? '' : `:${port}`
}

/**
 * null: the host runs no edge, or the app has no hostnames on it. The hostnames are those of the settings
 * (what the next deploy routes), or, with none left there, those the edge still routes.
 */
export function appEdgeView(edge: Edge | null, app: string, proxy: ProxySettings | null): AppEdgeView | null {
  if (!edge) return null
  const routed = edge.routedApps().get(app) ?? null
  const hosts = proxy?.hosts.length ? proxy.hosts : routed?.hosts ?? []
  if (hosts.length === 0) return null
  const { http, https } = edge.status()
  const tls = proxy ? tlsMode(proxy, https !== null) : routed!.tls
  const secure = tls !== 'off' && https !== null
  const base = secure ? `https://%h${portSuffix(https, '443')}/` : `http://%h${portSuffix(http, '80')}/`
  const retryAfterSeconds = edge.pausedFor(app)
  return { hosts, urls: hosts.map((h) => base.replace('%h', h)), tls, routed: routed !== null, paused: retryAfterSeconds !== null, retryAfterSeconds }
}

// The proxy setting: the app's own listener (listen) and its hostnames on the shared edge (hosts, tls,
// redirects, limits), with their validation; and the rule that one hostname belongs to one app.

import { problem } from '../errors.js'

export type TlsMode = 'acme' | 'custom' | 'off'

/**
 * Zero-downtime deploys: berth runs haproxy on `listen` in front of the app's instances, each on a private
 * loopback port in PORT, and/or routes `hosts` to them on the host's shared edge (issue 25). A new instance
 * takes traffic once `healthPath` answers 2xx on its port, and the old one drains for up to drainTimeoutMs
 * (then its remaining connections, websockets, are closed).
 */
export interface ProxySettings {
  /** The app's own listener, IPV4:PORT or [IPV6]:PORT; null: only on the edge (then hosts is not empty). */
  listen: string | null
  drainTimeoutMs: number
  healthPath: string
  /** Hostnames the edge routes to the live instance, lower case; each belongs to this app alone. */
  hosts: string[]
  /** null: `acme` when the edge has an HTTPS listener, else `off`. */
  tls: TlsMode | null
  /** Plain-HTTP requests for these hosts are redirected to HTTPS (308, path and query kept); null: on with TLS. */
  httpsRedirect: boolean | null
  /** Strict-Transport-Security max-age in seconds on HTTPS answers; null: not sent. */
  hstsMaxAge: number | null
  /** Largest request body the edge lets through (by Content-Length, 413 beyond); null: no limit. */
  maxBodyBytes: number | null
  /** The longest the edge waits for the app to answer (haproxy's server timeout; websockets have their own). */
  timeoutMs: number
}

export const DEFAULT_PROXY: Omit<ProxySettings, 'listen'> = {
  drainTimeoutMs: 30_000,
  healthPath: '/health',
  hosts: [],
  tls: null,
  httpsRedirect: null,
  hstsMaxAge: null,
  maxBodyBytes: null,
  timeoutMs: 60_000,
}

const LISTEN = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/
const HEALTH_PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,500}$/
/** A DNS name of two labels or more, ASCII (IDNs in their xn-- form), no wildcard, no trailing dot. */
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/
export const MAX_HOSTS_PER_APP = 100
const KNOWN = ['listen', 'drainTimeoutMs', 'healthPath', 'hosts', 'tls', 'httpsRedirect', 'hstsMaxAge', 'maxBodyBytes', 'timeoutMs']

const invalid = (field: string, detail: string) => problem('PROXY_SETTING_INVALID', detail, { field })

/**
 * A hostname as berth keeps it: lower case, checked label by label. Wildcards are refused: HTTP-01 cannot
 * prove them, and a wildcard route would take names another app may claim later.
 */
export function normalizeHostname(raw: unknown, field = 'proxy.hosts'): string {
  const h = typeof raw === 'string' ? raw.toLowerCase() : ''
  const labels = h.split('.')
  const ok = h.length > 0 && h.length <= 253 && labels.length >= 2 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1)!)
  if (!ok) throw invalid(field, `"${String(raw).slice(0, 80)}" is not a hostname berth routes: DNS labels of a-z, 0-9 and inner hyphens, two or more, no wildcard and no IP address (e.g. "shop.example.com"; IDNs in their xn-- form).`)
  return h
}

function wholeMs(field: string, f: unknown, min: number, max: number): number {
  if (typeof f !== 'number' || !Number.isInteger(f) || f < min || f > max) throw invalid(field, `Setting ${field} must be a whole number from ${min} to ${max}.`)
  return f
}

/** The proxy setting: null, or an object whose fields go over their current or default values. */
export function proxySetting(v: unknown, current: ProxySettings | null): ProxySettings | null {
  if (v === null) return null
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid('proxy', 'Setting proxy must be null or an object like {"listen": "127.0.0.1:4000"} or {"hosts": ["shop.example.com"]}.')
  const next: ProxySettings = { listen: null, ...DEFAULT_PROXY, ...(current ?? {}) }
  for (const [k, f] of Object.entries(v as Record<string, unknown>)) {
    switch (k) {
      case 'listen': {
        if (f === null) {
          next.listen = null
          break
        }
        const m = typeof f === 'string' ? LISTEN.exec(f) : null
        const port = m ? Number(m[3]) : 0
        const v4ok = !m?.[1] || m[1].split('.').every((o) => Number(o) <= 255)
        if (!m || !v4ok || port < 1 || port > 65535) throw invalid('proxy.listen', 'Setting proxy.listen must be IPV4:PORT or [IPV6]:PORT with a port from 1 to 65535, e.g. "0.0.0.0:80" or "127.0.0.1:4000", or null with hosts.')
        next.listen = f as string
        break
      }
      case 'drainTimeoutMs':
        next.drainTimeoutMs = wholeMs('proxy.drainTimeoutMs', f, 0, 3600_000)
        break
      case 'healthPath':
        if (typeof f !== 'string' || !HEALTH_PATH.test(f)) throw invalid('proxy.healthPath', 'Setting proxy.healthPath must be a URL path starting with "/", e.g. "/health".')
        next.healthPath = f
        break
      case 'hosts': {
        if (!Array.isArray(f)) throw invalid('proxy.hosts', 'Setting proxy.hosts must be a list of hostnames, e.g. ["shop.example.com"].')
        if (f.length > MAX_HOSTS_PER_APP) throw invalid('proxy.hosts', `Setting proxy.hosts takes at most ${MAX_HOSTS_PER_APP} hostnames.`)
        next.hosts = [...new Set(f.map((h) => normalizeHostname(h)))]
        break
      }
      case 'tls':
        if (f !== null && f !== 'acme' && f !== 'custom' && f !== 'off') throw invalid('proxy.tls', 'Setting proxy.tls must be "acme", "custom", "off" or null (acme when the edge has an HTTPS listener).')
        next.tls = f
        break
      case 'httpsRedirect':
        if (f !== null && typeof f !== 'boolean') throw invalid('proxy.httpsRedirect', 'Setting proxy.httpsRedirect must be true, false or null (on with TLS).')
        next.httpsRedirect = f
        break
      case 'hstsMaxAge':
        next.hstsMaxAge = f === null ? null : wholeMs('proxy.hstsMaxAge', f, 0, 2 * 365 * 86_400)
        break
      case 'maxBodyBytes':
        next.maxBodyBytes = f === null ? null : wholeMs('proxy.maxBodyBytes', f, 1, 2 ** 40)
        break
      case 'timeoutMs':
        next.timeoutMs = wholeMs('proxy.timeoutMs', f, 100, 3600_000)
        break
      default:
        throw invalid(`proxy.${k}`, `Unknown proxy setting "${k}"; known: ${KNOWN.join(', ')}.`)
    }
  }
  if (!next.listen && next.hosts.length === 0) throw invalid('proxy.listen', 'Setting proxy needs listen (the app\'s own HOST:PORT, e.g. {"listen": "127.0.0.1:4000"}) or hosts (its hostnames on the edge, e.g. {"hosts": ["shop.example.com"]}).')
  return next
}

/** Which app claims a hostname, as the check needs it. */
export interface HostClaim {
  app: string
  host: string
}

/** Refuses hostnames another app has (409 HOST_TAKEN): the edge routes one name to one app. */
export function checkHostsFree(app: string, hosts: readonly string[], claims: readonly HostClaim[]): void {
  for (const host of hosts) {
    const taken = claims.find((c) => c.host === host && c.app !== app)
    if (taken) throw problem('HOST_TAKEN', `Hostname ${host} belongs to app "${taken.app}": one hostname routes to one app. Remove it from that app's proxy.hosts first.`, { field: 'proxy.hosts', host, owner: taken.app })
  }
}

/** The TLS mode in force: the setting, else acme when the edge terminates TLS. */
export function tlsMode(p: Pick<ProxySettings, 'tls'>, edgeHasHttps: boolean): TlsMode {
  return p.tls ?? (edgeHasHttps ? 'acme' : 'off')
}

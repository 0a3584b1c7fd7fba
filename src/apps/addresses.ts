// Who owns which listening address on this host: berth's own listener and each app's proxy (later the edge
// too); settings and webhooks are checked against them, so that one address has one owner and berth's own
// checks never call berth. Plain functions over parsed addresses; the callers gather the owners.

import net from 'node:net'
import os from 'node:os'
import { problem } from '../errors.js'
import { checkHostsFree, type HostClaim } from './proxy-settings.js'

/** A TCP listening address: host as an IP literal (IPv6 without brackets, lower case) and a port. */
export interface SocketAddress {
  host: string
  port: number
}

/**
 * Something that holds an address on this host. `kind` says who, for the answer: berth itself, another
 * app's proxy (from its settings, or still running there), and the edge once there is one (it adds its
 * listeners to the same list, so the rule below covers it without a change here).
 */
export interface AddressClaim {
  kind: 'berth' | 'proxy' | 'edge'
  /** The app for a proxy claim. */
  app?: string
  address: SocketAddress
  /** Where the claim comes from, for the answer, e.g. "its settings" or "its running haproxy". */
  source?: string
}

const WILDCARD_V4 = '0.0.0.0'
const WILDCARD_V6 = '::'

/** `IPV4:PORT` or `[IPV6]:PORT` (the proxy.listen form, already checked by settings.ts) to its parts. */
export function parseListenAddress(listen: string): SocketAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen)
  if (!m) throw problem('PROXY_SETTING_INVALID', `"${listen.slice(0, 80)}" is not IPV4:PORT or [IPV6]:PORT.`, { field: 'proxy.listen' })
  return { host: normalizeHost(m[1] ?? m[2]!), port: Number(m[3]) }
}

/**
 * One spelling per address: IPv6 compressed and lower case, IPv4-mapped IPv6 as its IPv4, IPv4 octets as
 * numbers (127.000.0.1 is 127.0.0.1). Names are kept as given, lower case and without a final dot.
 */
export function normalizeHost(host: string): string {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '')
  if (net.isIPv4(h)) return h
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(h)) return h.split('.').map(Number).join('.')
  if (net.isIPv6(h)) {
    // The URL parser writes IPv6 in its one canonical form; mapped addresses reach the IPv4 socket.
    const canon = new URL(`http://[${h}]/`).hostname.slice(1, -1)
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canon)
    if (mapped) {
      const hi = parseInt(mapped[1]!, 16)
      const lo = parseInt(mapped[2]!, 16)
      return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.')
    }
    return canon
  }
  return h
}

function isWildcard(host: string): boolean {
  return host === WILDCARD_V4 || host === WILDCARD_V6
}

/**
 * Whether two listeners cannot both bind (Linux, TCP, without SO_REUSEPORT, which berth's haproxies no longer
 * set): same port and the same address, or either is a wildcard that covers the other. `::` covers IPv4 too
 * (dual-stack sockets are the default, net.ipv6.bindv6only=0); `0.0.0.0` covers IPv4 only.
 */
export function collide(a: SocketAddress, b: SocketAddress): boolean {
  if (a.port !== b.port) return false
  if (a.host === b.host) return true
  if (a.host === WILDCARD_V6 || b.host === WILDCARD_V6) return true
  if (a.host === WILDCARD_V4) return net.isIPv4(b.host)
  if (b.host === WILDCARD_V4) return net.isIPv4(a.host)
  return false
}

function describe(c: AddressClaim): string {
  const where = c.address.host.includes(':') ? `[${c.address.host}]:${c.address.port}` : `${c.address.host}:${c.address.port}`
  if (c.kind === 'berth') return `berth's own listener (${where}, BERTH_LISTEN)`
  if (c.kind === 'edge') return `the edge (${where})`
  return `the proxy of app "${c.app}" (${where}, ${c.source ?? 'its settings'})`
}

/**
 * Refuses a proxy listen address that another listener on this host holds or will hold: two haproxies on
 * one address split its requests between two apps, and one on berth's own address takes berth's. 409.
 */
export function checkListenFree(app: string, listen: string, claims: readonly AddressClaim[]): void {
  const wanted = parseListenAddress(listen)
  const taken = claims.find((c) => !(c.kind === 'proxy' && c.app === app) && collide(wanted, c.address))
  if (!taken) return
  throw problem('PROXY_LISTEN_IN_USE', `proxy.listen ${listen} overlaps ${describe(taken)}: one address serves one app. Choose another port (or address), or turn that proxy off first${taken.kind === 'proxy' ? ` (its address is free once "${taken.app}" was deployed or restarted without it)` : ''}.`, {
    field: 'proxy.listen',
    listen,
    ...(taken.app ? { app: taken.app } : {}),
    owner: taken.kind,
  })
}

/** True for names and addresses that reach this host over loopback, and for the wildcards (a connect to 0.0.0.0 does). */
function isLoopbackOrWildcard(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  if (isWildcard(host) || host === '::1') return true
  return net.isIPv4(host) && host.startsWith('127.')
}

/** Every address of this host's interfaces (a listener on a wildcard is reachable at each of them). */
function localAddresses(): Set<string> {
  const out = new Set<string>()
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) out.add(normalizeHost(i.address.split('%')[0]!))
  return out
}

/**
 * Refuses a URL that reaches berth's own listener: berth's own outbound requests (health checks, webhook
 * deliveries) must never arrive at berth, where, unauthenticated, they count as failed logins from
 * loopback and lock out real clients. The port decides; for the host, loopback names and addresses, the
 * wildcards, berth's bound address and (for a berth on a wildcard) every address of this host. A DNS name
 * that happens to resolve to this host is not resolved here: the delivery side refuses loopback targets.
 */
export function checkNotBerth(rawUrl: string, field: string, berth: SocketAddress | null): void {
  if (!berth) return
  let u: URL
  try {
    u = new URL(rawUrl)
  } catch {
    return // not a URL: the field's own rule answers that
  }
  const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : u.protocol === 'http:' ? 80 : -1
  if (port !== berth.port) return
  const host = normalizeHost(u.hostname)
  const berthHost = normalizeHost(berth.host)
  const reaches = isLoopbackOrWildcard(host) || host === berthHost || (isWildcard(berthHost) && localAddresses().has(host))
  if (!reaches) return
  throw problem('TARGET_IS_BERTH', `${field} points at berth's own listener (port ${berth.port}); berth does not send its health checks or webhooks to itself. Use the app's own address, or another host.`, { field })
}

/** What a settings change is checked against: berth's listener (null before it listens) and the claims of others. */
export interface SettingsAddressDeps {
  berth: SocketAddress | null
  /** Proxy addresses of every app (settings and running haproxies), and the edge's listeners. */
  claims: () => AddressClaim[]
  /** The hostnames each app's stored settings route on the edge. */
  hostClaims: () => HostClaim[]
}

/**
 * The check a settings change runs inside its write (apps/store.ts saveSettings): a proxy.listen or a
 * healthUrl the patch names must not take an address that belongs to someone else. Only fields the patch
 * names are checked, so an unrelated change to an app is not refused for an overlap stored before this rule.
 */
export function settingsAddressCheck(app: string, patch: Record<string, unknown>, deps: SettingsAddressDeps): (next: { proxy: { listen: string | null; hosts: string[] } | null; healthUrl: string | null }) => void {
  return (next) => {
    if (Object.hasOwn(patch, 'healthUrl') && next.healthUrl) checkNotBerth(next.healthUrl, 'healthUrl', deps.berth)
    if (Object.hasOwn(patch, 'proxy') && next.proxy) checkHostsFree(app, next.proxy.hosts, deps.hostClaims())
    if (Object.hasOwn(patch, 'proxy') && next.proxy?.listen) {
      const berth: AddressClaim[] = deps.berth ? [{ kind: 'berth', address: { host: normalizeHost(deps.berth.host), port: deps.berth.port } }] : []
      checkListenFree(app, next.proxy.listen, [...berth, ...deps.claims()])
    }
  }
}

/** The address a Node server listens on, as a SocketAddress (null when it does not listen, e.g. inject). */
export function listenerOf(server: net.Server): SocketAddress | null {
  const a = server.address()
  return a && typeof a === 'object' ? { host: normalizeHost(a.address), port: a.port } : null
}

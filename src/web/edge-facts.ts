// What the dashboard says of an app on the shared edge, as text: its hostnames as links, whether the edge
// serves, pauses or does not route it yet, and its certificates. No DOM: test/web-edge.test.ts runs these in node.

import { duration } from './format.js'
import type { AppEdge } from './schemas.js'

/**
 * One entry of GET /v1/apps/{app}/certificates. Declared here rather than taken from the generated types:
 * the certificate routes (and `berth certs`) land in a parallel change of issue 25, so openapi.yaml does
 * not describe them yet. Once it does, alias `components['schemas'][…]` in schemas.ts and drop this.
 */
export interface Certificate {
  host: string
  source: 'acme' | 'custom'
  state: string
  notAfter: string | null
  notBefore: string | null
  issuer: string | null
  lastError: string | null
  nextRenewalAt?: string | null
}

/** The answer of that route: `{"certificates": [...]}`. */
export interface CertificateList {
  certificates: Certificate[]
}

/** A certificate expiring within this many days is marked, whatever its source (a custom one never renews). */
export const EXPIRY_WARN_DAYS = 14
const DAY_MS = 86_400_000

/** Each host with its link; the server builds the URLs, and an href is still only ever http(s). */
export function hostLinks(edge: AppEdge): { host: string; url: string; href: string | null }[] {
  return edge.hosts.map((host, i) => {
    const url = edge.urls[i] ?? host
    let href: string | null = null
    try {
      const u = new URL(url)
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href
    } catch {}
    return { host, url, href }
  })
}

/** The edge's part in one phrase: what a user of these hostnames gets now. */
export function edgeStateText(edge: AppEdge): string {
  if (!edge.routed) return 'not on the edge yet: deploy (or restart) the app to route these hostnames'
  if (edge.paused) return `paused: the edge answers 503 with Retry-After ${edge.retryAfterSeconds ?? '-'} s and the maintenance page`
  return 'serving'
}

export function tlsText(edge: AppEdge): string {
  return { acme: 'HTTPS, certificates from ACME', custom: 'HTTPS, custom certificates', off: 'plain HTTP only' }[edge.tls]
}

/** "in 59 d 23 h (2027-02-05)", "expired 2 d 1 h ago (…)"; the date is the UTC day, as certificates state it. */
export function expiryText(notAfter: string | null, now = Date.now()): string {
  if (!notAfter) return '-'
  const at = Date.parse(notAfter)
  if (Number.isNaN(at)) return notAfter
  const day = new Date(at).toISOString().slice(0, 10)
  return at <= now ? `expired ${duration(now - at)} ago (${day})` : `in ${duration(at - now)} (${day})`
}

export interface CertificateRow {
  host: string
  source: string
  state: string
  expiry: string
  issuer: string
  lastError: string
  /** Expired, expiring within EXPIRY_WARN_DAYS, or failing: the row is marked. */
  bad: boolean
}

export function certificateRows(certs: readonly Certificate[], now = Date.now()): CertificateRow[] {
  return [...certs].sort((a, b) => a.host.localeCompare(b.host)).map((c) => {
    const left = c.notAfter ? Date.parse(c.notAfter) - now : null
    const renewal = c.nextRenewalAt ? `; renewal from ${c.nextRenewalAt.slice(0, 10)}` : ''
    return {
      host: c.host,
      source: c.source,
      state: c.state,
      expiry: `${expiryText(c.notAfter, now)}${renewal}`,
      issuer: c.issuer ?? '-',
      lastError: c.lastError ?? '',
      bad: c.lastError !== null || (left !== null && left < EXPIRY_WARN_DAYS * DAY_MS),
    }
  })
}

/** The pause dialog's Retry-After field: empty is berth's default (null); else whole seconds, 1 to 86400. */
export function readRetryAfter(text: string): number | null | 'invalid' {
  const t = text.trim()
  if (t === '') return null
  if (!/^\d+$/.test(t)) return 'invalid'
  const n = Number(t)
  return n >= 1 && n <= 86_400 ? n : 'invalid'
}

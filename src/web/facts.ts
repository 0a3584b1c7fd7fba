// What the dashboard says about an app, as text from the API's data: warnings, release labels, the last
// deployment, health, instances and the public address. No DOM: test/web-facts.test.ts runs these in node.

import { ago, duration, stateText } from './format.js'
import type { AppStatus, Deployment, NodeStatus, ProxyInstance, Release, Settings } from './schemas.js'

/** What needs a look: an errored or crash-looping node, a failed or rolled-back last deployment. */
export function warnings(status: AppStatus): string[] {
  const out: string[] = []
  const node: Partial<NodeStatus> = status.node ?? {}
  if (node.state && ['errored', 'crashed', 'backoff'].includes(node.state)) out.push(`node ${node.state}`)
  if ((node.restarts ?? 0) >= 3) out.push(`${node.restarts} restarts`)
  if (node.health && node.health.ok === false) out.push('unhealthy')
  const last = status.lastDeployment
  if (last && (last.state === 'failed' || last.state === 'rolled_back')) out.push(`${last.kind} ${stateText(last.state)}`)
  // A proxy that is down means no traffic reaches the app, however healthy its node is.
  if (status.proxy && status.proxy.state !== 'running') out.push(`proxy ${status.proxy.state}`)
  // Paused on the edge: its users get the maintenance page, on purpose but worth seeing from the overview.
  if (status.edge?.paused) out.push('paused')
  // A limit asked for and not enforced is never silent; an OOM kill says why the node went down.
  if (status.limits?.notEnforced.length) out.push('limits not enforced')
  if (status.limits?.oomKills) out.push(`${status.limits.oomKills} OOM kill${status.limits.oomKills === 1 ? '' : 's'}`)
  return out
}

export function releaseLabel(releases: readonly Release[], id: string | null | undefined): string {
  const r = releases.find((x) => x.id === id)
  return r ? `${r.version} (${r.id})` : id ?? 'none'
}

export function healthText(node: Partial<NodeStatus>): string {
  const health = node.health
  if (!health) return 'node check only'
  if (health.ok === null || health.ok === undefined) return 'not checked yet'
  return health.ok ? 'healthy' : `failing (${health.consecutiveFailures})`
}

export function instanceText(i: ProxyInstance): string {
  return `${i.release ?? '-'} · slot ${i.slot} · port ${i.port} · pid ${i.pid ?? '-'}`
}

export function lastDeploymentText(d: Deployment | null, now = Date.now()): string {
  if (!d) return 'none yet'
  return `${d.kind} of ${d.release}: ${stateText(d.state)}, ${ago(d.finishedAt ?? d.createdAt, now)} by ${d.actor ?? 'berth'}`
}

export function uptimeText(node: Partial<NodeStatus>): string {
  return node.uptimeMs === null || node.uptimeMs === undefined ? '-' : duration(node.uptimeMs)
}

/**
 * Where users reach the app: the publicUrl setting, else its first hostname on the edge, else the proxy's
 * listener (a wildcard host replaced by the host the page was opened on). Without any berth cannot know it
 * (the app listens where its env says).
 * `href` is null unless the address is http(s): an href is where a javascript: URL would run.
 */
export function publicUrl(settings: Settings | null, status: AppStatus, pageHost: string): { url: string; from: string; href: string | null } | null {
  let url = settings?.publicUrl ?? null
  let from = 'publicUrl setting'
  // The first hostname on the shared edge is where users go; the app's own listener is often internal then.
  if (!url && status.edge?.urls[0]) {
    url = status.edge.urls[0]
    from = 'proxy.hosts'
  }
  if (!url && status.proxy?.listen) {
    const m = /^(.*):(\d+)$/.exec(status.proxy.listen)
    if (m) {
      const host = m[1] === '0.0.0.0' || m[1] === '[::]' ? (pageHost.includes(':') ? `[${pageHost}]` : pageHost) : m[1]
      url = `http://${host}:${m[2]}/`
      from = 'proxy.listen'
    }
  }
  if (!url) return null
  let parsed: URL | null = null
  try {
    parsed = new URL(url)
  } catch {}
  // berth refuses other schemes; checked here too.
  const href = parsed && (parsed.protocol === 'http:' || parsed.protocol === 'https:') ? parsed.href : null
  return { url, from, href }
}

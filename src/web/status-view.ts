// An app's status as page elements, shared by the overview's cards and the app page: the node, the proxy and
// its instances, what serves users now, the public address and the warning badges.

import { h } from './dom.js'
import { healthText, instanceText, publicUrl, releaseLabel, uptimeText, warnings } from './facts.js'
import { duration, stateText } from './format.js'
import { enforcementText, limitsText, usageText } from './limits-facts.js'
import type { AppData, AppStatus, NodeStatus, Settings } from './schemas.js'

type Fact = readonly [string, Node | string | number]

export function nodeFacts(status: AppStatus): Fact[] {
  const node: Partial<NodeStatus> = status.node ?? {}
  return [
    ['node', h('span', { class: `state ${node.state}` }, node.state ?? 'unknown')],
    ['pid', node.beamPid ?? node.pid ?? '-'],
    ['uptime', uptimeText(node)],
    ['health', healthText(node)],
    ['restarts', node.restarts ?? 0],
  ]
}

/** The proxy's listener and the instances behind it; nothing for an app without the proxy setting. */
export function proxyFacts(status: AppStatus): Fact[] {
  const p = status.proxy
  if (!p) return []
  const facts: (Fact | null)[] = [
    // listen is null for an app only on the shared edge (proxy.hosts without its own listener).
    ['proxy', h('span', { class: 'proxy-listener' }, `${p.listen ?? 'no listener of its own (edge only)'} `, h('span', { class: `state ${p.state}` }, p.state), `, ${p.restarts} restart${p.restarts === 1 ? '' : 's'}`)],
    ['live instance', h('span', { class: 'proxy-live' }, p.live ? instanceText(p.live) : 'none')],
    p.starting ? ['starting instance', h('span', { class: 'proxy-starting' }, instanceText(p.starting))] : null,
    p.draining ? ['draining instance', h('span', { class: 'proxy-draining' }, `${instanceText(p.draining)} · ${duration(p.draining.remainingMs)} of drain left`)] : null,
  ]
  return facts.filter((f): f is Fact => f !== null)
}

/** The limits asked for, how they are enforced (or why not), and usage; nothing for a berth without them. */
export function limitsFacts(status: AppStatus): Fact[] {
  const l = status.limits
  if (!l) return []
  const usage = usageText(l)
  const facts: (Fact | null)[] = [
    ['limits', h('span', { class: 'limits', title: l.hostSupport }, `${limitsText(l.settings)} (${enforcementText(l)})`)],
    ...l.notEnforced.map((n): Fact => [`${n.field} not enforced`, h('span', { class: 'limits-not-enforced bad' }, n.reason)]),
    usage ? ['usage', h('span', { class: 'limits-usage' }, usage)] : null,
    l.oomKills ? ['OOM kills', h('span', { class: 'limits-oom bad' }, String(l.oomKills))] : null,
  ]
  return facts.filter((f): f is Fact => f !== null)
}

/**
 * Which release answers users right now, whatever `current` already says: behind the proxy the live
 * instance's (the old one until the new one is verified), else the node's while it runs.
 */
export function servingNow(a: AppData): HTMLSpanElement {
  const s = a.status
  const d = s.lastDeployment
  const running = d && !d.finishedAt ? h('small', { class: 'serving-change' }, ` (${d.kind} to ${d.release}: ${stateText(d.state)})`) : null
  let text: string
  if (s.proxy) text = s.proxy.live ? `${releaseLabel(a.releases, s.proxy.live.release)} · slot ${s.proxy.live.slot}` : 'nothing: no instance takes traffic'
  else if (s.node?.state === 'running') text = releaseLabel(a.releases, s.node.release)
  else text = s.node?.release && s.node.state === 'starting' ? `nothing yet: ${releaseLabel(a.releases, s.node.release)} is starting` : `nothing: the node is ${s.node?.state ?? 'unknown'}`
  return h('span', { class: 'serving-now' }, text, running)
}

/** The public address as a link when it is http(s), as text otherwise; null when berth cannot know it. */
export function publicAddress(settings: Settings | null, status: AppStatus): HTMLSpanElement | null {
  const p = publicUrl(settings, status, location.hostname)
  if (!p) return null
  if (!p.href) return h('span', { class: 'public-url' }, p.url)
  return h('span', null, h('a', { class: 'public-url', href: p.href, target: '_blank', rel: 'noopener noreferrer' }, p.url), h('small', { class: 'hint' }, ` (${p.from})`))
}

export function warningBadges(status: AppStatus): HTMLSpanElement[] {
  return warnings(status).map((w) => h('span', { class: 'badge warn' }, w))
}

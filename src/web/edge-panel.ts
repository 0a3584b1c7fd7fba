// The app page's "Edge" panel: the app's hostnames on the host's shared edge (links), its state, the Pause
// and Resume buttons (operate scope, confirmed), and the certificates table from the certificates route.

import { api, appPath, ApiError, problemText } from './api.js'
import { h } from './dom.js'
import { certificateRows, edgeStateText, hostLinks, readRetryAfter, tlsText, type CertificateList } from './edge-facts.js'
import type { AppData, EdgePause } from './schemas.js'
import { hooks, may } from './state.js'
import { ask, dl, notice, table } from './ui.js'

/** The certificates, or why there are none to show: a berth without the route (404) says so in one line. */
export type Certificates = CertificateList | { unavailable: string }

export async function loadCertificates(app: string): Promise<Certificates> {
  try {
    return await api<CertificateList>(appPath(app, '/certificates'))
  } catch (err) {
    // 404 with the app known: this berth has no certificates route (it lands in a parallel change).
    if (err instanceof ApiError && err.status === 404 && err.code !== 'APP_NOT_FOUND') return { unavailable: 'certificates: not available' }
    return { unavailable: `certificates: ${problemText(err)}` }
  }
}

/** Only for an app with hostnames on an edge; certificates only matter with TLS on. */
export function edgeSection(data: AppData, certs: Certificates | null): HTMLElement | null {
  const edge = data.status.edge
  if (!edge) return null
  const links = hostLinks(edge).map((l) => h('li', { dataset: { host: l.host } }, l.href ? h('a', { class: 'edge-host', href: l.href, target: '_blank', rel: 'noopener noreferrer' }, l.url) : h('span', { class: 'edge-host' }, l.url)))
  const buttons = may('operate') && edge.routed
    ? h('div', { class: 'actions' }, edge.paused
      ? h('button', { class: 'action resume', onclick: () => confirmResume(data.name) }, 'Resume')
      : h('button', { class: 'action pause danger', onclick: () => confirmPause(data.name) }, 'Pause'))
    : null
  return h('section', { id: 'edge', class: 'panel', dataset: { paused: String(edge.paused), routed: String(edge.routed) } },
    h('h2', null, 'Edge'),
    dl([
      ['hostnames', h('ul', { class: 'edge-hosts' }, links)],
      ['TLS', tlsText(edge)],
      ['state', h('span', { class: `edge-state${edge.paused ? ' bad' : ''}` }, edgeStateText(edge))],
    ]),
    buttons,
    edge.tls === 'off' ? null : certificatesBlock(certs))
}

function certificatesBlock(certs: Certificates | null): HTMLElement {
  if (!certs) return h('p', { class: 'hint edge-certs' }, 'certificates: loading')
  if ('unavailable' in certs) return h('p', { class: 'hint edge-certs' }, certs.unavailable)
  return h('div', { class: 'edge-certs' }, h('h3', null, 'Certificates'), table(['host', 'source', 'state', 'expires', 'issuer', 'last error'], certificateRows(certs.certificates).map((r) => ({
    class: r.bad ? 'bad' : '',
    dataset: { host: r.host },
    cells: [r.host, r.source, r.state, r.expiry, r.issuer, r.lastError],
  }))))
}

async function confirmPause(app: string): Promise<void> {
  const retry = h('input', { id: 'pause-retry-after', type: 'number', min: 1, max: 86400, step: 1, placeholder: '60 (berth\'s default)', inputmode: 'numeric' })
  const ok = await ask(`Pause ${app}?`, [
    h('p', null, 'The edge answers every request for its hostnames with 503, Retry-After and the maintenance page, until it is resumed. The instances keep running; the app\'s own proxy.listen is not paused.'),
    h('p', null, h('label', { for: 'pause-retry-after' }, 'Retry-After (seconds, optional): '), retry),
  ], 'Pause')
  if (!ok) return
  const seconds = readRetryAfter(retry.value)
  if (seconds === 'invalid') return notice(`Not paused: Retry-After must be whole seconds from 1 to 86400, not "${retry.value}".`)
  // Always a JSON object: berth validates the body as one even though it is optional (none answers 400).
  await send(app, 'pause', seconds === null ? {} : { retryAfterSeconds: seconds })
}

async function confirmResume(app: string): Promise<void> {
  const ok = await ask(`Resume ${app}?`, [h('p', null, 'The edge sends requests for its hostnames to its live instance again.')], 'Resume')
  if (ok) await send(app, 'resume', undefined)
}

async function send(app: string, action: 'pause' | 'resume', body: unknown): Promise<void> {
  try {
    const r = await api<EdgePause>(appPath(app, `/${action}`), { method: 'POST', body })
    notice(r.paused ? `${app} is paused (Retry-After ${r.retryAfterSeconds} s).` : `${app} is resumed.`, 'ok')
  } catch (err) {
    return notice(problemText(err))
  }
  // The panel draws from GET /v1/apps/{app}, read again here (the audit event would also bring it).
  await hooks.refreshApp(app, false)
}

// An app's page: its status and actions, releases (with upload), deployments, audit trail, environment,
// settings, logs and console sessions; drawn again after events without losing what the operator opened or typed.

import { actions, confirmDeploy, confirmRollback, stepsList } from './actions.js'
import { api, appPath } from './api.js'
import { $, fill, find, h } from './dom.js'
import { edgeSection, loadCertificates } from './edge-panel.js'
import { envSection } from './env.js'
import { lastDeploymentText, releaseLabel } from './facts.js'
import { ago, bytes, duration, stateText, summary } from './format.js'
import { logsSection, startLogs } from './logs.js'
import { loadApp } from './overview.js'
import { replay } from './replay.js'
import type { AppData, AuditEvent, Deployment, Session } from './schemas.js'
import { settingsSection } from './settings.js'
import { may, onAppPage } from './state.js'
import { limitsFacts, nodeFacts, proxyFacts, publicAddress, servingNow, warningBadges } from './status-view.js'
import { dl, table } from './ui.js'
import { uploadSection } from './upload.js'

/** `keep`: a re-render after an event, which keeps the log, the progress, the replay and half-typed forms. */
export async function renderAppPage(app: string, { keep = false } = {}): Promise<void> {
  const [data, deployments, events, env, sessions] = await Promise.all([
    loadApp(app),
    api<{ deployments: Deployment[] }>(appPath(app, '/deployments')),
    api<{ events: AuditEvent[] }>(appPath(app, '/events?limit=50')),
    api<{ names: string[] }>(appPath(app, '/env')),
    // Sessions and their recordings are console matters: a read-only token does not see them.
    may('console') ? api<{ sessions: Session[] }>(appPath(app, '/sessions')) : null,
  ])
  // Certificates only for an app whose hostnames the edge serves over TLS: after the app, whose view says so.
  const edge = data.status.edge
  const certs = edge && edge.tls !== 'off' ? await loadCertificates(app) : null
  if (!onAppPage(app)) return
  document.title = `${app} · berth`
  const keptLogs = keep ? find('logs-section') : null
  const keptProgress = keep ? find('progress') : null
  const keptReplay = keep ? find('replay') : null
  // A re-render after an event must not fold the deployments the operator opened.
  const opened = new Set(keep ? [...document.querySelectorAll('#deployments li.deployment > details[open]')].map((e) => (e.parentElement as HTMLElement).dataset.deployment) : [])
  fill($('view'),
    keptProgress,
    h('p', null, h('a', { href: '#/' }, '← all apps')),
    h('h1', null, app, warningBadges(data.status)),
    statusPanel(data),
    edgeSection(data, certs),
    releasesPanel(app, data, keep),
    h('section', { id: 'deployments', class: 'panel' }, h('h2', null, 'Deployments'), deployments.deployments.length ? h('ul', { class: 'deployments' }, deployments.deployments.slice(0, 30).map((d) =>
      h('li', { class: `deployment ${d.state}`, dataset: { deployment: d.id } }, h('details', { open: opened.has(d.id) },
        h('summary', null, h('strong', null, d.kind), ` ${d.release} `, h('span', { class: `state ${d.state}` }, stateText(d.state)), ` · ${ago(d.createdAt)} by ${d.actor ?? 'berth'}`, d.finishedAt ? ` · took ${duration(Date.parse(d.finishedAt) - Date.parse(d.createdAt))}` : ''),
        d.reason ? h('p', { class: 'error' }, d.reason) : null,
        d.warnings.length ? h('ul', { class: 'plan-warnings' }, d.warnings.map((w) => h('li', null, w))) : null,
        stepsList(d, false))))) : h('p', { class: 'empty' }, 'No deployments yet.')),
    h('section', { id: 'events', class: 'panel' }, h('h2', null, 'Audit trail'), table(['when', 'who', 'action', 'outcome', 'detail'], events.events.map((e) => ({
      class: e.outcome === 'error' || e.outcome === 'failed' ? 'bad' : '',
      cells: [ago(e.at), e.actor ?? 'berth', e.action, e.outcome, e.detail ? h('code', { title: JSON.stringify(e.detail) }, summary(e.detail)) : ''],
    })))),
    envSection(app, env.names, keep),
    settingsSection(app, data.settings, keep),
    keptLogs ?? logsSection(app),
    sessionsPanel(app, sessions?.sessions ?? null, keptReplay),
  )
  if (!keptLogs) void startLogs(app)
}

function statusPanel(data: AppData): HTMLElement {
  const s = data.status
  const known = new Set(['name', 'current', 'node', 'lastDeployment', 'proxy', 'edge', 'limits'])
  // Fields this page does not know yet (added by a newer berth) are shown as they come, not dropped.
  const extra = Object.entries(s).filter(([k]) => !known.has(k))
  return h('section', { id: 'status', class: 'panel' },
    dl([['current', h('span', { class: 'current-release' }, releaseLabel(data.releases, s.current))], ['serving now', servingNow(data)], ['public address', publicAddress(data.settings, s) ?? 'unknown: set publicUrl (or the proxy)'], ...nodeFacts(s), ...proxyFacts(s), ...limitsFacts(s), ['last deployment', lastDeploymentText(s.lastDeployment)], ...extra.map(([k, v]) => [k, h('code', null, typeof v === 'object' ? JSON.stringify(v) : String(v))] as const)]),
    actions(data))
}

function releasesPanel(app: string, data: AppData, keep: boolean): HTMLElement {
  return h('section', { id: 'releases', class: 'panel' }, h('h2', null, 'Releases'), table(['', 'release', 'version', 'size', 'uploaded', 'by', ''], data.releases.map((r) => ({
    class: r.current ? 'current' : '',
    dataset: { release: r.id },
    cells: [r.current ? h('span', { class: 'badge' }, 'current') : '', h('code', null, r.id), r.version, bytes(r.size), ago(r.uploadedAt), r.uploadedBy ?? '-',
      h('span', { class: 'row-actions' },
        !r.current && may('rollback') && data.status.current ? h('button', { class: 'action rollback-to', onclick: () => confirmRollback(app, r.id) }, 'Roll back to this') : null,
        !r.current && may('deploy') ? h('button', { class: 'action deploy', onclick: () => confirmDeploy(app, r.id) }, 'Deploy') : null)],
  }))), uploadSection(app, keep))
}

function sessionsPanel(app: string, sessions: Session[] | null, keptReplay: HTMLElement | null): HTMLElement {
  return h('section', { id: 'sessions', class: 'panel' }, h('h2', null, 'Console sessions'), !sessions ? h('p', { class: 'hint' }, 'Console sessions need a token with the console scope.') : table(['started', 'who', 'kind', 'release', 'ended', 'output', ''], sessions.slice(0, 30).map((x) => ({
    dataset: { session: x.id },
    cells: [ago(x.startedAt), x.actor ?? '-', x.kind, x.release ?? '-', x.active ? h('span', { class: 'badge' }, 'active') : x.endedAt ? `${ago(x.endedAt)}${x.endReason ? ` (${x.endReason})` : ''}` : '-', bytes(x.bytesOut),
      x.recording && !x.active ? h('button', { class: 'replay', onclick: () => replay(app, x) }, 'Replay') : ''],
  }))), keptReplay)
}

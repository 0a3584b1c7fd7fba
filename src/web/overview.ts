// The apps overview: each app the token may see read together (status, releases, settings) into a card, and
// watched every second while a deployment or operation runs, since what serves may change without an event.

import { actions } from './actions.js'
import { api, appPath } from './api.js'
import { $, fill, h } from './dom.js'
import { lastDeploymentText, releaseLabel, warnings } from './facts.js'
import type { AppData, AppStatus, Release, Settings } from './schemas.js'
import { hooks, state } from './state.js'
import { nodeFacts, proxyFacts, publicAddress, servingNow, warningBadges } from './status-view.js'
import { dl } from './ui.js'

export async function loadApp(name: string): Promise<AppData> {
  const [status, releases, settings] = await Promise.all([api<AppStatus>(appPath(name)), api<{ releases: Release[] }>(appPath(name, '/releases')), api<Settings>(appPath(name, '/settings'))])
  const data = { name, status, releases: releases.releases, settings }
  state.apps.set(name, data)
  watchWhileBusy(name, status)
  return data
}

/**
 * While a deployment or operation runs, what serves changes without an audit event (a slow boot records
 * none): the app is read again every second until it is done, so the card never shows a stale "serving now".
 */
const watching = new Map<string, ReturnType<typeof setTimeout>>()
function watchWhileBusy(app: string, s: AppStatus): void {
  const p = s.proxy
  const busy = (s.lastDeployment && !s.lastDeployment.finishedAt) || s.node?.state === 'starting' || s.node?.state === 'stopping' || p?.starting || p?.draining
  if (!busy || watching.has(app)) return
  watching.set(app, setTimeout(() => {
    watching.delete(app)
    void hooks.refreshApp(app, false)
  }, 1000))
}

export async function renderOverview(): Promise<void> {
  const { apps } = await api<{ apps: { name: string }[] }>('/v1/apps')
  const loaded = await Promise.all(apps.map((a) => loadApp(a.name).catch((err: Error) => ({ name: a.name, error: err }))))
  if (state.route?.name !== 'overview') return
  document.title = 'berth'
  fill($('view'),
    h('h1', null, 'Apps'),
    loaded.length === 0 ? h('p', { class: 'empty' }, 'No apps yet: upload a release (berth deploy FILE --app APP).') : null,
    h('div', { id: 'apps', class: 'cards' }, loaded.map((a) => ('error' in a ? h('article', { class: 'app-card', dataset: { app: a.name } }, h('h2', null, a.name), h('p', { class: 'error' }, a.error.message)) : appCard(a)))),
  )
}

/** After an event or a finished operation: the app's card drawn again, or the overview when a new app appeared. */
export async function refreshCard(app: string | null, fromEvent: boolean): Promise<void> {
  // An event of no app (berth's own) or of an app not shown yet: the whole overview.
  if (app === null || (!state.apps.has(app) && fromEvent)) return renderOverview()
  const card = document.querySelector(`.app-card[data-app="${CSS.escape(app)}"]`)
  if (!card) return
  const data = await loadApp(app).catch(() => null)
  if (data) card.replaceWith(appCard(data))
}

function appCard(a: AppData): HTMLElement {
  const s = a.status
  const earlier = a.releases.filter((r) => !r.current).slice(0, 3)
  return h(
    'article',
    { class: `app-card${warnings(s).length ? ' warn' : ''}`, dataset: { app: a.name } },
    h('h2', null, h('a', { href: `#/apps/${a.name}` }, a.name), warningBadges(s)),
    dl([
      ['current', h('span', { class: 'current-release' }, releaseLabel(a.releases, s.current))],
      ['serving now', servingNow(a)],
      ['earlier', h('span', { class: 'earlier-releases' }, earlier.length ? earlier.map((r) => r.version + ' (' + r.id + ')').join(', ') : 'none')],
      ...nodeFacts(s),
      ...proxyFacts(s),
      ['last deployment', h('span', { class: 'last-deployment' }, lastDeploymentText(s.lastDeployment))],
      ['public address', publicAddress(a.settings, s) ?? '-'],
    ]),
    actions(a),
  )
}

// berth's operator dashboard: sign-in, the apps overview with live updates, an app's page and the actions
// the token's scopes allow. A plain module over berth's own API; the token lives in sessionStorage only.

const TOKEN_KEY = 'berth-token' // shared with the console page, which a tab opened from here inherits
import { $, ago, api, appPath, dl, duration, bytes, fill, h, hooks, may, notice, state, summary, table } from './dashboard-core.js'
import { actions, confirmDeploy, confirmRollback, stepsList } from './dashboard-actions.js'
import { envSection, publicAddress, uploadSection } from './dashboard-manage.js'
import { replay } from './dashboard-replay.js'
import { settingsSection } from './dashboard-settings.js'
const LOG_LINES_KEPT = 500
const POLL_MS = 5000

// ---- sign-in ----

async function signIn(token) {
  state.token = token
  try {
    state.me = await api('/v1/token')
  } catch (err) {
    state.token = null
    state.me = null
    throw err
  }
  sessionStorage.setItem(TOKEN_KEY, token)
  $('me-name').textContent = state.me.name
  $('me-scopes').textContent = state.me.scopes.join(', ')
  $('me-apps').textContent = state.me.apps ? `apps: ${state.me.apps.join(', ')}` : 'every app'
  $('me').hidden = false
  $('signin').hidden = true
  startLive()
  await route()
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY)
  state.token = null
  state.me = null
  state.apps.clear()
  stopLive()
  stopPageWork()
  $('me').hidden = true
  fill($('view'))
  $('token').value = ''
  $('signin').hidden = false
  $('signin-error').textContent = message ?? ''
  if (location.hash && location.hash !== '#/') history.replaceState(null, '', '#/')
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault()
  $('signin-error').textContent = ''
  $('signin-go').disabled = true
  try {
    await signIn($('token').value.trim())
  } catch (err) {
    $('signin-error').textContent = err.status === 401 ? `Sign-in failed: ${err.message}` : `Sign-in failed (${err.code ?? err.status ?? 'network'}): ${err.message}`
  } finally {
    $('signin-go').disabled = false
  }
})
$('signout').addEventListener('click', () => signOut('Signed out.'))

// ---- live updates: the audit event stream, read with fetch (EventSource cannot send the token) ----

function startLive() {
  stopLive()
  const ctl = new AbortController()
  state.stream = ctl
  let backoff = 1000
  const run = async () => {
    while (!ctl.signal.aborted) {
      try {
        const res = await api('/v1/events', { raw: true, signal: ctl.signal })
        live('live', 'live: server-sent events')
        backoff = 1000
        await readEvents(res.body, ctl.signal)
      } catch (err) {
        if (ctl.signal.aborted || err.status === 401) return
      }
      if (ctl.signal.aborted) return
      // Until the stream is back, poll; after reconnecting, read the state again (events may have been missed).
      live('polling', 'polling: the event stream is not available')
      startPolling()
      await new Promise((r) => setTimeout(r, backoff))
      backoff = Math.min(backoff * 2, 30_000)
      stopPolling()
      refreshAll()
    }
  }
  run()
}

async function readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true })
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += value
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const type = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (type === 'audit' && data) onAudit(JSON.parse(data))
      else if (type === 'end' && data && /revoked|expired/.test(JSON.parse(data).reason)) return signOut('The token was revoked or expired; sign in again.')
    }
  }
}

function live(cls, title) {
  const el = $('live')
  el.className = cls
  el.textContent = cls
  el.title = title
}

function stopLive() {
  state.stream?.abort()
  state.stream = null
  stopPolling()
  live('', '')
  $('live').textContent = ''
}

function startPolling() {
  stopPolling()
  state.poll = setInterval(refreshAll, POLL_MS)
}

function stopPolling() {
  if (state.poll) clearInterval(state.poll)
  state.poll = null
}

const pending = new Map()
function onAudit(e) {
  // Bursts (a deployment records several events) become one refresh per app.
  if (pending.has(e.app)) return
  pending.set(e.app, setTimeout(() => {
    pending.delete(e.app)
    refreshApp(e.app, true)
  }, 250))
}

async function refreshAll() {
  if (!state.me) return
  if (state.route?.name === 'overview') return renderOverview()
  if (state.route?.name === 'app') return refreshApp(state.route.app, false)
}

async function refreshApp(app, fromEvent) {
  if (!state.me || !state.route) return
  if (state.route.name === 'overview') {
    if (!state.apps.has(app) && fromEvent) return renderOverview()
    const card = document.querySelector(`.app-card[data-app="${CSS.escape(app)}"]`)
    if (!card) return
    const data = await loadApp(app).catch(() => null)
    if (data) card.replaceWith(appCard(data))
  } else if (state.route.name === 'app' && state.route.app === app) {
    await renderAppPage(app, { keep: true })
  }
}

// ---- routing ----

window.addEventListener('hashchange', () => state.me && route())

function parseRoute() {
  const m = /^#\/apps\/([a-z][a-z0-9_-]{0,63})$/.exec(location.hash)
  return m ? { name: 'app', app: m[1] } : { name: 'overview' }
}

function stopPageWork() {
  state.logs?.abort()
  state.logs = null
  state.progress?.stop()
  state.progress = null
  state.replay?.dispose()
  state.replay = null
}

async function route() {
  stopPageWork()
  state.route = parseRoute()
  notice('')
  try {
    if (state.route.name === 'app') await renderAppPage(state.route.app)
    else await renderOverview()
  } catch (err) {
    if (err.status !== 401) notice(`${err.code ?? 'ERROR'}: ${err.message}`)
  }
}

// ---- overview ----

async function loadApp(name) {
  const [status, releases, settings] = await Promise.all([api(appPath(name)), api(appPath(name, '/releases')), api(appPath(name, '/settings'))])
  const data = { name, status, releases: releases.releases, settings }
  state.apps.set(name, data)
  watchWhileBusy(name, status)
  return data
}

/**
 * While a deployment or operation runs, what serves changes without an audit event (a slow boot records
 * none): the app is read again every second until it is done, so the card never shows a stale "serving now".
 */
const watching = new Map()
function watchWhileBusy(app, s) {
  const p = s.proxy
  const busy = (s.lastDeployment && !s.lastDeployment.finishedAt) || ['starting', 'stopping'].includes(s.node?.state) || p?.starting || p?.draining
  if (!busy || watching.has(app)) return
  watching.set(app, setTimeout(() => {
    watching.delete(app)
    refreshApp(app, false)
  }, 1000))
}

async function renderOverview() {
  const { apps } = await api('/v1/apps')
  const loaded = await Promise.all(apps.map((a) => loadApp(a.name).catch((err) => ({ name: a.name, error: err }))))
  if (state.route?.name !== 'overview') return
  document.title = 'berth'
  fill($('view'),
    h('h1', null, 'Apps'),
    loaded.length === 0 ? h('p', { class: 'empty' }, 'No apps yet: upload a release (berth deploy FILE --app APP).') : null,
    h('div', { id: 'apps', class: 'cards' }, loaded.map((a) => (a.error ? h('article', { class: 'app-card', dataset: { app: a.name } }, h('h2', null, a.name), h('p', { class: 'error' }, a.error.message)) : appCard(a)))),
  )
}

/** What needs a look: an errored or crash-looping node, a failed or rolled-back last deployment. */
function warnings(status) {
  const out = []
  const node = status.node ?? {}
  if (['errored', 'crashed', 'backoff'].includes(node.state)) out.push(`node ${node.state}`)
  if (node.restarts >= 3) out.push(`${node.restarts} restarts`)
  if (node.health && node.health.ok === false) out.push('unhealthy')
  const last = status.lastDeployment
  if (last && (last.state === 'failed' || last.state === 'rolled_back')) out.push(`${last.kind} ${last.state.replace('_', ' ')}`)
  // A proxy that is down means no traffic reaches the app, however healthy its node is.
  if (status.proxy && status.proxy.state !== 'running') out.push(`proxy ${status.proxy.state}`)
  return out
}

function releaseLabel(releases, id) {
  const r = releases.find((x) => x.id === id)
  return r ? `${r.version} (${r.id})` : id ?? 'none'
}

function nodeFacts(status) {
  const node = status.node ?? {}
  const health = node.health ? (node.health.ok === null ? 'not checked yet' : node.health.ok ? 'healthy' : `failing (${node.health.consecutiveFailures})`) : 'node check only'
  return [
    ['node', h('span', { class: `state ${node.state}` }, node.state ?? 'unknown')],
    ['pid', node.beamPid ?? node.pid ?? '-'],
    ['uptime', node.uptimeMs === null || node.uptimeMs === undefined ? '-' : duration(node.uptimeMs)],
    ['health', health],
    ['restarts', node.restarts ?? 0],
  ]
}

function instanceText(i) {
  return `${i.release ?? '-'} · slot ${i.slot} · port ${i.port} · pid ${i.pid ?? '-'}`
}

/** The proxy's listener and the instances behind it; nothing for an app without the proxy setting. */
function proxyFacts(status) {
  const p = status.proxy
  if (!p) return []
  return [
    ['proxy', h('span', { class: 'proxy-listener' }, `${p.listen} `, h('span', { class: `state ${p.state}` }, p.state), `, ${p.restarts} restart${p.restarts === 1 ? '' : 's'}`)],
    ['live instance', h('span', { class: 'proxy-live' }, p.live ? instanceText(p.live) : 'none')],
    p.starting ? ['starting instance', h('span', { class: 'proxy-starting' }, instanceText(p.starting))] : null,
    p.draining ? ['draining instance', h('span', { class: 'proxy-draining' }, `${instanceText(p.draining)} · ${duration(p.draining.remainingMs)} of drain left`)] : null,
  ].filter(Boolean)
}

/**
 * Which release answers users right now, whatever `current` already says: behind the proxy the live
 * instance's (the old one until the new one is verified), else the node's while it runs.
 */
function servingNow(a) {
  const s = a.status
  const d = s.lastDeployment
  const running = d && !d.finishedAt ? h('small', { class: 'serving-change' }, ` (${d.kind} to ${d.release}: ${d.state.replace('_', ' ')})`) : null
  let text
  if (s.proxy) text = s.proxy.live ? `${releaseLabel(a.releases, s.proxy.live.release)} · slot ${s.proxy.live.slot}` : 'nothing: no instance takes traffic'
  else if (s.node?.state === 'running') text = releaseLabel(a.releases, s.node.release)
  else text = s.node?.release && s.node.state === 'starting' ? `nothing yet: ${releaseLabel(a.releases, s.node.release)} is starting` : `nothing: the node is ${s.node?.state ?? 'unknown'}`
  return h('span', { class: 'serving-now' }, text, running)
}

function lastDeploymentText(d) {
  if (!d) return 'none yet'
  return `${d.kind} of ${d.release}: ${d.state.replace('_', ' ')}, ${ago(d.finishedAt ?? d.createdAt)} by ${d.actor ?? 'berth'}`
}

function appCard(a) {
  const s = a.status
  const earlier = a.releases.filter((r) => !r.current).slice(0, 3)
  const warn = warnings(s)
  return h(
    'article',
    { class: `app-card${warn.length ? ' warn' : ''}`, dataset: { app: a.name } },
    h('h2', null, h('a', { href: `#/apps/${a.name}` }, a.name), warn.map((w) => h('span', { class: 'badge warn' }, w))),
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

// ---- the app page ----

async function renderAppPage(app, { keep = false } = {}) {
  const [data, deployments, events, env, sessions] = await Promise.all([
    loadApp(app),
    api(appPath(app, '/deployments')),
    api(appPath(app, '/events?limit=50')),
    api(appPath(app, '/env')),
    // Sessions and their recordings are console matters: a read-only token does not see them.
    may('console') ? api(appPath(app, '/sessions')) : null,
  ])
  if (state.route?.name !== 'app' || state.route.app !== app) return
  document.title = `${app} · berth`
  const s = data.status
  const known = new Set(['name', 'current', 'node', 'lastDeployment', 'proxy'])
  // Fields this page does not know yet (added by a newer berth) are shown as they come, not dropped.
  const extra = Object.entries(s).filter(([k]) => !known.has(k))
  const keptLogs = keep ? $('logs-section') : null
  const keptProgress = keep ? $('progress') : null
  const keptReplay = keep ? $('replay') : null
  // A re-render after an event must not fold the deployments the operator opened.
  const opened = new Set(keep ? [...document.querySelectorAll('#deployments li.deployment > details[open]')].map((e) => e.parentElement.dataset.deployment) : [])
  const warn = warnings(s)
  fill($('view'),
    keptProgress,
    h('p', null, h('a', { href: '#/' }, '← all apps')),
    h('h1', null, app, warn.map((w) => h('span', { class: 'badge warn' }, w))),
    h('section', { id: 'status', class: 'panel' },
      dl([['current', h('span', { class: 'current-release' }, releaseLabel(data.releases, s.current))], ['serving now', servingNow(data)], ['public address', publicAddress(data.settings, s) ?? 'unknown: set publicUrl (or the proxy)'], ...nodeFacts(s), ...proxyFacts(s), ['last deployment', lastDeploymentText(s.lastDeployment)], ...extra.map(([k, v]) => [k, h('code', null, typeof v === 'object' ? JSON.stringify(v) : String(v))])]),
      actions(data)),
    h('section', { id: 'releases', class: 'panel' }, h('h2', null, 'Releases'), table(['', 'release', 'version', 'size', 'uploaded', 'by', ''], data.releases.map((r) => ({
      class: r.current ? 'current' : '',
      dataset: { release: r.id },
      cells: [r.current ? h('span', { class: 'badge' }, 'current') : '', h('code', null, r.id), r.version, bytes(r.size), ago(r.uploadedAt), r.uploadedBy ?? '-',
        h('span', { class: 'row-actions' },
          !r.current && may('rollback') && data.status.current ? h('button', { class: 'action rollback-to', onclick: () => confirmRollback(app, r.id) }, 'Roll back to this') : null,
          !r.current && may('deploy') ? h('button', { class: 'action deploy', onclick: () => confirmDeploy(app, r.id) }, 'Deploy') : null)],
    }))), uploadSection(app, keep)),
    h('section', { id: 'deployments', class: 'panel' }, h('h2', null, 'Deployments'), deployments.deployments.length ? h('ul', { class: 'deployments' }, deployments.deployments.slice(0, 30).map((d) =>
      h('li', { class: `deployment ${d.state}`, dataset: { deployment: d.id } }, h('details', { open: opened.has(d.id) },
        h('summary', null, h('strong', null, d.kind), ` ${d.release} `, h('span', { class: `state ${d.state}` }, d.state.replace('_', ' ')), ` · ${ago(d.createdAt)} by ${d.actor ?? 'berth'}`, d.finishedAt ? ` · took ${duration(Date.parse(d.finishedAt) - Date.parse(d.createdAt))}` : ''),
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
    h('section', { id: 'sessions', class: 'panel' }, h('h2', null, 'Console sessions'), !sessions ? h('p', { class: 'hint' }, 'Console sessions need a token with the console scope.') : table(['started', 'who', 'kind', 'release', 'ended', 'output', ''], sessions.sessions.slice(0, 30).map((x) => ({
      dataset: { session: x.id },
      cells: [ago(x.startedAt), x.actor ?? '-', x.kind, x.release ?? '-', x.active ? h('span', { class: 'badge' }, 'active') : x.endedAt ? `${ago(x.endedAt)}${x.endReason ? ` (${x.endReason})` : ''}` : '-', bytes(x.bytesOut),
        x.recording && !x.active ? h('button', { class: 'replay', onclick: () => replay(app, x) }, 'Replay') : ''],
    }))), keptReplay),
  )
  if (!keptLogs) startLogs(app)
}

// ---- logs ----

function logsSection(app) {
  const source = h('select', { id: 'logs-source', onchange: () => startLogs(app) }, h('option', { value: 'console' }, 'node console'), h('option', { value: 'berth' }, "berth's lines"))
  const follow = h('input', { id: 'logs-follow', type: 'checkbox', checked: true, onchange: () => startLogs(app) })
  return h('section', { id: 'logs-section', class: 'panel' }, h('h2', null, 'Logs'),
    h('div', { class: 'controls' }, h('label', null, 'source ', source), h('label', null, follow, ' follow'), h('span', { id: 'logs-state' })),
    h('pre', { id: 'logs', tabindex: 0 }))
}

async function startLogs(app) {
  state.logs?.abort()
  const ctl = new AbortController()
  state.logs = ctl
  const pre = $('logs')
  pre.textContent = ''
  const source = $('logs-source').value
  const follow = $('logs-follow').checked
  $('logs-state').textContent = follow ? 'following…' : ''
  try {
    // JSON lines: each line's time, and the entries that mark where a boot of the node begins.
    const res = await api(appPath(app, `/logs?lines=200&format=json&source=${source}${follow ? '&follow=true' : ''}`), { raw: true, signal: ctl.signal })
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let partial = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4
      const parts = (partial + value).split('\n')
      partial = parts.pop()
      pre.append(...parts.filter(Boolean).map((l) => logEntry(JSON.parse(l))))
      // Keep the tail only: a followed log may run for hours.
      while (pre.childNodes.length > LOG_LINES_KEPT) pre.firstChild.remove()
      if (atEnd) pre.scrollTop = pre.scrollHeight
    }
    if (state.logs === ctl) $('logs-state').textContent = follow ? 'stream ended' : ''
  } catch (err) {
    if (!ctl.signal.aborted && state.logs === ctl) $('logs-state').textContent = `logs: ${err.message}`
  }
}

/** One log entry: its time (local, full UTC time and how it was found on hover), or a separator for a boot's mark. */
function logEntry(e) {
  const at = new Date(e.at)
  const time = h('time', { datetime: e.at, title: `${e.at} (${e.clock})` }, at.toLocaleTimeString(undefined, { hour12: false }))
  if (e.boot) return h('div', { class: 'log-boot' }, time, ' ', e.line)
  return h('div', { class: 'log-line' }, time, ' ', e.line)
}

// ---- start ----

hooks.signOut = signOut
hooks.refreshApp = refreshApp

const saved = sessionStorage.getItem(TOKEN_KEY)
if (saved) {
  signIn(saved).catch((err) => signOut(err.status === 401 ? 'The saved token is no longer valid; sign in again.' : `Sign-in failed: ${err.message}`))
} else {
  $('signin').hidden = false
}

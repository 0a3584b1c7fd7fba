// berth's operator dashboard: sign-in, the apps overview with live updates, an app's page and the actions
// the token's scopes allow. A plain module over berth's own API; the token lives in sessionStorage only.

const TOKEN_KEY = 'berth-token' // shared with the console page, which a tab opened from here inherits
const SCOPES_FOR = { rollback: 'operate', operate: 'operate', deploy: 'deploy', console: 'console' }
const LOG_LINES_KEPT = 500
const POLL_MS = 5000

const $ = (id) => document.getElementById(id)
const state = { token: null, me: null, apps: new Map(), route: null, stream: null, poll: null, logs: null, progress: null, replay: null }

// ---- small DOM helpers: text goes through textContent only, never markup built from API data ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k === 'class') el.className = v
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

/** replaceChildren that skips null and false (the DOM method would show them as the text "null"). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false))
}

function ago(iso) {
  if (!iso) return '-'
  const ms = Date.now() - Date.parse(iso)
  return ms < 0 ? new Date(iso).toLocaleString() : `${duration(ms)} ago`
}

function duration(ms) {
  if (ms === null || ms === undefined) return '-'
  const s = Math.floor(ms / 1000)
  if (s < 1) return `${ms} ms`
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
}

function bytes(n) {
  if (!n) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`
}

function stepTime(s) {
  return s.endedAt ? duration(Date.parse(s.endedAt) - Date.parse(s.startedAt)) : `${duration(Date.now() - Date.parse(s.startedAt))}…`
}

function notice(text, kind = 'error') {
  const n = $('notice')
  n.textContent = text
  n.className = kind
  n.hidden = !text
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.code ?? null
  }
}

async function api(path, { method = 'GET', body, signal, raw = false } = {}) {
  const headers = { authorization: `Bearer ${state.token}`, accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' })
  if (res.status === 401 && state.me) {
    signOut('The token is no longer valid (revoked or expired); sign in again.')
    throw new ApiError(401, await res.json().catch(() => null))
  }
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null))
  if (raw) return res
  return res.status === 204 ? null : res.json()
}

const may = (what) => !!state.me && (state.me.scopes.includes('admin') || state.me.scopes.includes(SCOPES_FOR[what] ?? what))
const appPath = (app, rest = '') => `/v1/apps/${encodeURIComponent(app)}${rest}`

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
  const m = /^#\/apps\/([a-z][a-z0-9_]{0,63})$/.exec(location.hash)
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
  const [status, releases] = await Promise.all([api(appPath(name)), api(appPath(name, '/releases'))])
  const data = { name, status, releases: releases.releases }
  state.apps.set(name, data)
  return data
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

function lastDeploymentText(d) {
  if (!d) return 'none yet'
  return `${d.kind} of ${d.release}: ${d.state.replace('_', ' ')}, ${ago(d.finishedAt ?? d.createdAt)} by ${d.actor ?? 'berth'}`
}

function dl(pairs) {
  return h('dl', null, pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]))
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
      ['earlier', h('span', { class: 'earlier-releases' }, earlier.length ? earlier.map((r) => r.version + ' (' + r.id + ')').join(', ') : 'none')],
      ...nodeFacts(s),
      ...proxyFacts(s),
      ['last deployment', h('span', { class: 'last-deployment' }, lastDeploymentText(s.lastDeployment))],
    ]),
    actions(a),
  )
}

function actions(a) {
  const name = a.name
  const up = ['running', 'starting'].includes(a.status.node?.state)
  const buttons = []
  if (may('rollback') && a.releases.some((r) => !r.current)) buttons.push(h('button', { class: 'action rollback danger', onclick: () => confirmRollback(name, null) }, 'Roll back'))
  if (may('operate')) {
    if (!up) buttons.push(h('button', { class: 'action start', onclick: () => confirmOperate(name, 'start') }, 'Start'))
    if (up) buttons.push(h('button', { class: 'action restart', onclick: () => confirmOperate(name, 'restart') }, 'Restart'))
    if (up) buttons.push(h('button', { class: 'action stop', onclick: () => confirmOperate(name, 'stop') }, 'Stop'))
  }
  if (may('console')) {
    buttons.push(h('button', { class: 'action console', onclick: () => openConsole(name, 'remote') }, 'Console'))
    buttons.push(h('button', { class: 'action attach', onclick: () => openConsole(name, 'attach') }, 'Attach'))
  }
  return buttons.length ? h('div', { class: 'actions' }, buttons) : null
}

function openConsole(app, kind) {
  // window.open from the same origin (with an opener) copies this tab's sessionStorage, token included,
  // into the new tab: the console arrives signed in without the token ever being in the URL.
  window.open(`/console/${encodeURIComponent(app)}#${kind}`, `berth-console-${app}`)
}

// ---- confirmations and progress ----

function ask(title, body, okLabel) {
  const dialog = $('confirm')
  $('confirm-title').textContent = title
  fill($('confirm-body'), body)
  $('confirm-ok').textContent = okLabel
  $('confirm-ok').disabled = false
  dialog.returnValue = ''
  dialog.showModal()
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }))
}

function planBody(plan, intro) {
  const blocked = plan.blockers.length > 0
  return [
    h('p', null, intro),
    plan.warnings.length ? h('div', { class: 'plan-warnings' }, h('h3', null, 'Warnings'), h('ul', null, plan.warnings.map((w) => h('li', null, w)))) : h('p', { class: 'plan-ok' }, 'No warnings.'),
    blocked ? h('div', { class: 'plan-blockers' }, h('h3', null, 'This would fail now'), h('ul', null, plan.blockers.map((b) => h('li', null, `${b.code}: ${b.message}`)))) : null,
    plan.config.length ? h('p', null, `Config that differs: ${plan.config.map((c) => `${c.file} (${c.change})`).join(', ')}`) : null,
    h('details', null, h('summary', null, 'Steps'), h('ol', null, plan.steps.map((s) => h('li', { class: `plan-step ${s.runs}` }, h('strong', null, s.name), ` (${s.runs}): ${s.detail}`)))),
  ]
}

async function confirmRollback(app, to) {
  const dryRun = (revert) => api(appPath(app, '/rollback?dryRun=true'), { method: 'POST', body: { ...(to ? { to } : {}), ...(revert ? { runRollbackExpr: true } : {}) } })
  let plan
  let settings
  try {
    // Settings only to know whether there is a rollbackExpr to offer; without them the box is not offered.
    ;[plan, settings] = await Promise.all([dryRun(false), api(appPath(app, '/settings')).catch(() => null)])
  } catch (err) {
    return notice(`Cannot roll back ${app}: ${err.message}`)
  }
  const intro = (p, revert) => `From ${p.current ?? 'nothing'} to ${p.release}. ${revert ? 'The rollbackExpr setting runs first, from the release being left.' : 'A rollback runs no migrations.'}`
  const planBox = h('div', { id: 'rollback-plan' }, planBody(plan, intro(plan, false)))
  const revert = settings?.rollbackExpr
    ? h('input', { id: 'rollback-revert', type: 'checkbox', onchange: async () => {
      const ticked = revert.checked
      $('confirm-ok').disabled = true
      try {
        const next = await dryRun(ticked)
        // A later change of the box wins over this answer.
        if (revert.checked !== ticked) return
        // The plan is fetched again rather than edited here, so what is shown is what berth would do.
        plan = next
        fill(planBox, planBody(plan, intro(plan, ticked)))
        $('confirm-ok').disabled = false
      } catch (err) {
        fill(planBox, h('p', { class: 'error' }, `Cannot plan the rollback: ${err.message}`))
      }
    } })
    : null
  const body = [revert ? h('p', null, h('label', null, revert, ' run the rollbackExpr setting first: ', h('code', null, settings.rollbackExpr))) : null, planBox]
  const ok = await ask(`Roll back ${app} to ${plan.version}?`, body, `Roll back to ${plan.version}`)
  if (!ok) return
  // The release the operator confirmed, not whatever "previous" means by the time the request arrives.
  await run(app, () => api(appPath(app, '/rollback'), { method: 'POST', body: { to: plan.release, ...(revert?.checked ? { runRollbackExpr: true } : {}) } }))
}

async function confirmDeploy(app, release) {
  let plan
  try {
    plan = await api(appPath(app, '/deployments?dryRun=true'), { method: 'POST', body: { release } })
  } catch (err) {
    return notice(`Cannot deploy ${release}: ${err.message}`)
  }
  const ok = await ask(`Deploy ${plan.release} to ${app}?`, planBody(plan, `From ${plan.current ?? 'nothing (first deploy)'} to ${plan.release}.`), `Deploy ${plan.version}`)
  if (ok) await run(app, () => api(appPath(app, '/deployments'), { method: 'POST', body: { release: plan.release } }))
}

async function confirmOperate(app, action) {
  const ok = await ask(`${action[0].toUpperCase()}${action.slice(1)} ${app}?`, [h('p', null, action === 'stop' ? 'The node stops and stays stopped until started again.' : `The node of the current release is ${action === 'start' ? 'started' : 'stopped and started again'}.`)], action[0].toUpperCase() + action.slice(1))
  if (ok) await run(app, () => api(appPath(app, `/${action}`), { method: 'POST' }))
}

async function run(app, start) {
  let d
  try {
    d = await start()
  } catch (err) {
    return notice(`${err.code ?? 'ERROR'}: ${err.message}`)
  }
  if (state.route?.name !== 'app' || state.route.app !== app) {
    location.hash = `#/apps/${app}`
    await new Promise((r) => setTimeout(r, 0))
  }
  followDeployment(app, d)
}

/** Shows the deployment's steps as they happen (polling the deployment, which records each step as it starts). */
function followDeployment(app, d) {
  state.progress?.stop()
  const box = $('progress') ?? h('section', { id: 'progress' })
  if (!box.isConnected) $('view').prepend(box)
  let timer = null
  let stopped = false
  const draw = (dep) => {
    const done = !!dep.finishedAt
    box.className = done ? `done ${dep.state}` : 'running'
    box.dataset.state = dep.state
    fill(box,
      h('h2', null, `${dep.kind} ${dep.release}: `, h('span', { class: 'progress-state' }, dep.state.replace('_', ' '))),
      dep.warnings.length ? h('ul', { class: 'plan-warnings' }, dep.warnings.map((w) => h('li', null, w))) : null,
      stepsList(dep, true),
      dep.reason ? h('p', { class: 'error' }, dep.reason) : null,
      done ? h('button', { onclick: () => { box.remove(); state.progress = null } }, 'Dismiss') : null,
    )
  }
  const tick = async () => {
    if (stopped) return
    try {
      const dep = await api(appPath(app, `/deployments/${d.id}`))
      draw(dep)
      if (dep.finishedAt) {
        refreshApp(app, false)
        return
      }
    } catch (err) {
      if (err.status === 401) return
    }
    timer = setTimeout(tick, 400)
  }
  draw(d)
  state.progress = { stop: () => { stopped = true; clearTimeout(timer) }, box }
  tick()
}

function stepsList(dep, open) {
  return h('ol', { class: 'steps' }, dep.steps.map((s) => h('li', { class: `step ${s.state}`, dataset: { step: s.name } },
    h('span', { class: 'step-name' }, s.name), ' ', h('span', { class: 'step-state' }, s.state), ' ', h('span', { class: 'step-time' }, stepTime(s)),
    s.output ? h('details', { open: open && s.state === 'running' ? true : null }, h('summary', null, 'output'), h('pre', null, s.output)) : null)))
}

// ---- the app page ----

async function renderAppPage(app, { keep = false } = {}) {
  const [data, deployments, events, env, settings, sessions] = await Promise.all([
    loadApp(app),
    api(appPath(app, '/deployments')),
    api(appPath(app, '/events?limit=50')),
    api(appPath(app, '/env')),
    api(appPath(app, '/settings')),
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
      dl([['current', h('span', { class: 'current-release' }, releaseLabel(data.releases, s.current))], ...nodeFacts(s), ...proxyFacts(s), ['last deployment', lastDeploymentText(s.lastDeployment)], ...extra.map(([k, v]) => [k, h('code', null, typeof v === 'object' ? JSON.stringify(v) : String(v))])]),
      actions(data)),
    h('section', { id: 'releases', class: 'panel' }, h('h2', null, 'Releases'), table(['', 'release', 'version', 'size', 'uploaded', 'by', ''], data.releases.map((r) => ({
      class: r.current ? 'current' : '',
      dataset: { release: r.id },
      cells: [r.current ? h('span', { class: 'badge' }, 'current') : '', h('code', null, r.id), r.version, bytes(r.size), ago(r.uploadedAt), r.uploadedBy ?? '-',
        h('span', { class: 'row-actions' },
          !r.current && may('rollback') && data.status.current ? h('button', { class: 'action rollback-to', onclick: () => confirmRollback(app, r.id) }, 'Roll back to this') : null,
          !r.current && may('deploy') ? h('button', { class: 'action deploy', onclick: () => confirmDeploy(app, r.id) }, 'Deploy') : null)],
    })))),
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
    h('section', { id: 'env', class: 'panel' }, h('h2', null, 'Environment'), h('p', { class: 'hint' }, 'Names only: berth never shows the values.'), env.names.length ? h('ul', { class: 'env-names' }, env.names.map((n) => h('li', null, h('code', null, n)))) : h('p', { class: 'empty' }, 'No variables.')),
    h('section', { id: 'settings', class: 'panel' }, h('h2', null, 'Settings'), h('pre', null, JSON.stringify(settings, null, 2))),
    keptLogs ?? logsSection(app),
    h('section', { id: 'sessions', class: 'panel' }, h('h2', null, 'Console sessions'), !sessions ? h('p', { class: 'hint' }, 'Console sessions need a token with the console scope.') : table(['started', 'who', 'kind', 'release', 'ended', 'output', ''], sessions.sessions.slice(0, 30).map((x) => ({
      dataset: { session: x.id },
      cells: [ago(x.startedAt), x.actor ?? '-', x.kind, x.release ?? '-', x.active ? h('span', { class: 'badge' }, 'active') : x.endedAt ? `${ago(x.endedAt)}${x.endReason ? ` (${x.endReason})` : ''}` : '-', bytes(x.bytesOut),
        x.recording && !x.active ? h('button', { class: 'replay', onclick: () => replay(app, x) }, 'Replay') : ''],
    }))), keptReplay),
  )
  if (!keptLogs) startLogs(app)
}

/** An event's detail as key=value pairs with long values cut (the whole of it is in the cell's title). */
function summary(detail) {
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v)
      return `${k}=${text.length > 80 ? `${text.slice(0, 77)}...` : text}`
    })
    .join(' ')
}

function table(head, rows) {
  return h('div', { class: 'table' }, h('table', null, h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))),
    h('tbody', null, rows.length ? rows.map((r) => h('tr', { class: r.class || null, dataset: r.dataset }, r.cells.map((c) => h('td', null, c)))) : h('tr', null, h('td', { colspan: head.length, class: 'empty' }, 'none')))))
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
    const res = await api(appPath(app, `/logs?lines=200&source=${source}${follow ? '&follow=true' : ''}`), { raw: true, signal: ctl.signal })
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4
      pre.append(value)
      // Keep the tail only: a followed log may run for hours.
      if (pre.childNodes.length > 200) pre.textContent = pre.textContent.split('\n').slice(-LOG_LINES_KEPT).join('\n')
      if (atEnd) pre.scrollTop = pre.scrollHeight
    }
    if (state.logs === ctl) $('logs-state').textContent = follow ? 'stream ended' : ''
  } catch (err) {
    if (!ctl.signal.aborted && state.logs === ctl) $('logs-state').textContent = `logs: ${err.message}`
  }
}

// ---- recordings ----

async function replay(app, session) {
  state.replay?.dispose()
  let text
  try {
    text = await (await api(appPath(app, `/sessions/${session.id}.cast`), { raw: true })).text()
  } catch (err) {
    return notice(`Cannot replay ${session.id}: ${err.message}`)
  }
  const [header, ...events] = text.trim().split('\n').map((l) => JSON.parse(l))
  const holder = $('replay') ?? h('div', { id: 'replay' })
  if (!holder.isConnected) $('sessions').append(holder)
  const screen = h('div', { class: 'replay-screen' })
  const close = h('button', { onclick: () => { state.replay?.dispose(); state.replay = null } }, 'Close')
  holder.replaceChildren(h('p', null, `Recording of ${session.kind} session ${session.id} by ${session.actor ?? '-'} (${header.width}×${header.height}) `, h('span', { id: 'replay-state' }, 'playing…'), ' ', close), screen)
  const term = new window.Terminal({ cols: header.width || 80, rows: header.height || 24, convertEol: false, disableStdin: true, fontFamily: 'monospace', fontSize: 13 })
  term.open(screen)
  let timer = null
  let i = 0
  let last = 0
  // Real timing, with pauses longer than half a second cut short: a session idle for minutes replays in seconds.
  let disposed = false
  const next = () => {
    if (disposed) return
    while (i < events.length && events[i][1] !== 'o' && events[i][1] !== 'r') i++
    if (i >= events.length) {
      $('replay-state').textContent = 'done'
      return
    }
    const [t, kind, data] = events[i++]
    const wait = Math.min(Math.max(0, t - last), 0.5) * 1000
    last = t
    // A resize ("COLSxROWS") during the session: the output after it was laid out for that size.
    const size = kind === 'r' && /^(\d+)x(\d+)$/.exec(data)
    timer = setTimeout(() => (size ? (term.resize(Number(size[1]), Number(size[2])), next()) : term.write(data, next)), kind === 'r' ? 0 : wait)
  }
  next()
  state.replay = { dispose: () => { disposed = true; clearTimeout(timer); term.dispose(); holder.remove() } }
}

// ---- start ----

const saved = sessionStorage.getItem(TOKEN_KEY)
if (saved) {
  signIn(saved).catch((err) => signOut(err.status === 401 ? 'The saved token is no longer valid; sign in again.' : `Sign-in failed: ${err.message}`))
} else {
  $('signin').hidden = false
}

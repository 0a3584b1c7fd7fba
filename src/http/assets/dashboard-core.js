// What every part of the dashboard shares: the page state, DOM helpers that insert text as text (never markup
// built from API data), time and size formats, berth's API with the token, scope checks and the confirm dialog.

export const SCOPES_FOR = { rollback: 'operate', operate: 'operate', deploy: 'deploy', console: 'console', manage: 'admin' }

export const $ = (id) => document.getElementById(id)
export const state = { token: null, me: null, apps: new Map(), route: null, stream: null, poll: null, logs: null, progress: null, replay: null }
/** What dashboard.js provides to the other modules (set at its start), so that no module imports it back. */
export const hooks = { signOut: () => {}, refreshApp: async () => {} }

// ---- small DOM helpers: text goes through textContent only, never markup built from API data ----

export function h(tag, attrs, ...children) {
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
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false))
}

export function ago(iso) {
  if (!iso) return '-'
  const ms = Date.now() - Date.parse(iso)
  return ms < 0 ? new Date(iso).toLocaleString() : `${duration(ms)} ago`
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '-'
  const s = Math.floor(ms / 1000)
  if (s < 1) return `${ms} ms`
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
}

export function bytes(n) {
  if (!n) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`
}

export function stepTime(s) {
  return s.endedAt ? duration(Date.parse(s.endedAt) - Date.parse(s.startedAt)) : `${duration(Date.now() - Date.parse(s.startedAt))}…`
}

export function notice(text, kind = 'error') {
  const n = $('notice')
  n.textContent = text
  n.className = kind
  n.hidden = !text
}

// ---- the API ----

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.code ?? null
    this.field = body?.field ?? null
  }
}

export async function api(path, { method = 'GET', body, signal, raw = false } = {}) {
  const headers = { authorization: `Bearer ${state.token}`, accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' })
  if (res.status === 401 && state.me) {
    hooks.signOut('The token is no longer valid (revoked or expired); sign in again.')
    throw new ApiError(401, await res.json().catch(() => null))
  }
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null))
  if (raw) return res
  return res.status === 204 ? null : res.json()
}

export const may = (what) => !!state.me && (state.me.scopes.includes('admin') || state.me.scopes.includes(SCOPES_FOR[what] ?? what))
export const appPath = (app, rest = '') => `/v1/apps/${encodeURIComponent(app)}${rest}`

export function dl(pairs) {
  return h('dl', null, pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]))
}

/** An event's detail as key=value pairs with long values cut (the whole of it is in the cell's title). */
export function summary(detail) {
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v)
      return `${k}=${text.length > 80 ? `${text.slice(0, 77)}...` : text}`
    })
    .join(' ')
}

export function table(head, rows) {
  return h('div', { class: 'table' }, h('table', null, h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))),
    h('tbody', null, rows.length ? rows.map((r) => h('tr', { class: r.class || null, dataset: r.dataset }, r.cells.map((c) => h('td', null, c)))) : h('tr', null, h('td', { colspan: head.length, class: 'empty' }, 'none')))))
}

/** The confirm dialog: resolves true when the operator confirms. */
export function ask(title, body, okLabel) {
  const dialog = $('confirm')
  $('confirm-title').textContent = title
  fill($('confirm-body'), body)
  $('confirm-ok').textContent = okLabel
  $('confirm-ok').disabled = false
  dialog.returnValue = ''
  dialog.showModal()
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }))
}

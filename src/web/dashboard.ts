// berth's operator dashboard, the page's entry: sign-in and sign-out, routing between the overview and an
// app's page, and refreshing what an audit event touched. The token lives in this tab's sessionStorage only.

import { api, type ApiError } from './api.js'
import { renderAppPage } from './app-page.js'
import { $, fill } from './dom.js'
import { startLive, stopLive } from './live.js'
import { refreshCard, renderOverview } from './overview.js'
import type { AuditEvent, Me } from './schemas.js'
import { hooks, state, type Route } from './state.js'
import { forgetToken, savedToken, saveToken } from './token.js'
import { notice } from './ui.js'

// ---- sign-in ----

async function signIn(token: string): Promise<void> {
  state.token = token
  try {
    state.me = await api<Me>('/v1/token')
  } catch (err) {
    state.token = null
    state.me = null
    throw err
  }
  saveToken(token)
  $('me-name').textContent = state.me.name
  $('me-scopes').textContent = state.me.scopes.join(', ')
  $('me-apps').textContent = state.me.apps ? `apps: ${state.me.apps.join(', ')}` : 'every app'
  $('me').hidden = false
  $('signin').hidden = true
  startLive({ onAudit, refreshAll, signOut })
  await route()
}

function signOut(message?: string): void {
  forgetToken()
  state.token = null
  state.me = null
  state.apps.clear()
  stopLive()
  stopPageWork()
  $('me').hidden = true
  fill($('view'))
  $<HTMLInputElement>('token').value = ''
  $('signin').hidden = false
  $('signin-error').textContent = message ?? ''
  if (location.hash && location.hash !== '#/') history.replaceState(null, '', '#/')
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault()
  $('signin-error').textContent = ''
  const go = $<HTMLButtonElement>('signin-go')
  go.disabled = true
  try {
    await signIn($<HTMLInputElement>('token').value.trim())
  } catch (err) {
    const e = err as Partial<ApiError>
    $('signin-error').textContent = e.status === 401 ? `Sign-in failed: ${e.message}` : `Sign-in failed (${e.code ?? e.status ?? 'network'}): ${e.message}`
  } finally {
    go.disabled = false
  }
})
$('signout').addEventListener('click', () => signOut('Signed out.'))

// ---- refreshing what changed ----

const pending = new Map<string | null, ReturnType<typeof setTimeout>>()
function onAudit(e: AuditEvent): void {
  const app = e.app
  // Bursts (a deployment records several events) become one refresh per app (null: berth's own, not an app's).
  if (pending.has(app)) return
  pending.set(app, setTimeout(() => {
    pending.delete(app)
    void refreshApp(app, true)
  }, 250))
}

function refreshAll(): void {
  if (!state.me) return
  if (state.route?.name === 'overview') void renderOverview()
  else if (state.route?.name === 'app') void refreshApp(state.route.app, false)
}

async function refreshApp(app: string | null, fromEvent: boolean): Promise<void> {
  if (!state.me || !state.route) return
  if (state.route.name === 'overview') await refreshCard(app, fromEvent)
  else if (app !== null && state.route.app === app) await renderAppPage(app, { keep: true })
}

// ---- routing ----

window.addEventListener('hashchange', () => state.me && route())

function parseRoute(): Route {
  const m = /^#\/apps\/([a-z][a-z0-9_-]{0,63})$/.exec(location.hash)
  return m ? { name: 'app', app: m[1]! } : { name: 'overview' }
}

function stopPageWork(): void {
  state.logs?.abort()
  state.logs = null
  state.progress?.stop()
  state.progress = null
  state.replay?.dispose()
  state.replay = null
}

async function route(): Promise<void> {
  stopPageWork()
  state.route = parseRoute()
  notice('')
  try {
    if (state.route.name === 'app') await renderAppPage(state.route.app)
    else await renderOverview()
  } catch (err) {
    const e = err as Partial<ApiError>
    if (e.status !== 401) notice(`${e.code ?? 'ERROR'}: ${e.message}`)
  }
}

// ---- start ----

hooks.signOut = signOut
hooks.refreshApp = refreshApp

const saved = savedToken()
if (saved) {
  signIn(saved).catch((err: Partial<ApiError>) => signOut(err.status === 401 ? 'The saved token is no longer valid; sign in again.' : `Sign-in failed: ${err.message}`))
} else {
  $('signin').hidden = false
}

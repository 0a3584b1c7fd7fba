// The dashboard's page state (the signed-in token, the route, the work the page has running) and the scope
// checks; the entry module fills in `hooks`, so that no other module imports it back.

import type { AppData, Me } from './schemas.js'

/** The scope each action needs; admin may do all of them. */
export const SCOPES_FOR: Record<string, string> = { rollback: 'operate', operate: 'operate', deploy: 'deploy', console: 'console', manage: 'admin' }

export type Route = { name: 'overview' } | { name: 'app'; app: string }

export const state: {
  token: string | null
  me: Me | null
  apps: Map<string, AppData>
  route: Route | null
  stream: AbortController | null
  poll: ReturnType<typeof setInterval> | null
  logs: AbortController | null
  progress: { stop: () => void; box: HTMLElement } | null
  replay: { dispose: () => void } | null
} = { token: null, me: null, apps: new Map(), route: null, stream: null, poll: null, logs: null, progress: null, replay: null }

/** What dashboard.ts provides to the other modules (set at its start). */
export const hooks: { signOut: (message?: string) => void; refreshApp: (app: string, fromEvent: boolean) => Promise<void> } = {
  signOut: () => {},
  refreshApp: async () => {},
}

export function may(what: string): boolean {
  const me = state.me
  if (!me) return false
  const scopes: readonly string[] = me.scopes
  return scopes.includes('admin') || scopes.includes(SCOPES_FOR[what] ?? what)
}

/** Whether the page still shows this app (a late answer must not draw over another page). */
export function onAppPage(app: string): boolean {
  return state.route?.name === 'app' && state.route.app === app
}

// Webhooks: matching audit events become deliveries (stored first, so a restart loses none), sent as JSON
// signed with HMAC-SHA256 in X-Berth-Signature, retried with exponential backoff, history kept per hook.
// Callers limited to some apps (`apps`, null: every app) see and manage only the hooks of those apps.

import crypto from 'node:crypto'
import type { Logger } from 'pino'
import { checkNotBerth, type SocketAddress } from '../apps/addresses.js'
import { checkUrlChars } from '../apps/text.js'
import { problem } from '../errors.js'
import { APP_NAME } from '../paths.js'
import { now, type Database } from '../store/db.js'
import type { EventStore } from '../store/events.js'

export interface Webhook {
  id: string
  app: string | null
  url: string
  events: string[]
  createdAt: string
}

export interface Delivery {
  id: string
  webhookId: string
  event: string
  state: 'pending' | 'delivered' | 'failed'
  attempts: number
  lastStatus: number | null
  lastError: string | null
  createdAt: string
  deliveredAt: string | null
}

/** Events a hook gets when it names none: deployments and node state changes. */
export const DEFAULT_EVENTS = ['deploy', 'rollback', 'start', 'stop', 'restart', 'node.']
const MAX_ATTEMPTS = 6
const TIMEOUT_MS = 10_000

function visible(h: Webhook, apps: readonly string[] | null): boolean {
  return apps === null || (h.app !== null && apps.includes(h.app))
}

export function sign(secret: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`
}

export class Webhooks {
  private timer: NodeJS.Timeout | null = null
  private sending = false

  private readonly unsubscribe: () => void

  constructor(
    private readonly db: Database,
    private readonly events: EventStore,
    private readonly log: Logger,
    private readonly backoffMs = 1000,
  ) {
    this.unsubscribe = events.subscribe((e) => this.enqueue(e.app, e.action, { app: e.app, at: e.at, action: e.action, outcome: e.outcome, detail: e.detail }))
  }

  /** `berth`: berth's own listener, which no hook may target (its deliveries would arrive at berth unauthenticated). */
  create(input: { app?: string | null; url: string; events?: string[] }, actor: string | null, apps: readonly string[] | null = null, berth: SocketAddress | null = null): { webhook: Webhook; secret: string } {
    checkUrlChars(String(input.url), 'Webhook url')
    let u: URL
    try {
      u = new URL(input.url)
    } catch {
      throw problem('VALIDATION_FAILED', `Webhook url "${String(input.url).slice(0, 100)}" is not a URL.`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw problem('VALIDATION_FAILED', 'Webhook urls must be http:// or https://.')
    checkNotBerth(u.toString(), 'Webhook url', berth)
    if (input.app && !APP_NAME.test(input.app)) throw problem('INVALID_APP_NAME', `App name "${input.app}" is not valid.`)
    // A hook for every app would carry other apps' events to someone who may not see them.
    if (apps !== null && !input.app) throw problem('FORBIDDEN_APP', `This token is limited to ${apps.join(', ')}; give the webhook an "app" among them (a hook for every app needs an unlimited token).`)
    if (apps !== null && !apps.includes(input.app!)) throw problem('FORBIDDEN_APP', `This token is limited to ${apps.join(', ')} and may not add webhooks for "${input.app}".`)
    const events = input.events && input.events.length > 0 ? input.events : DEFAULT_EVENTS
    const webhook: Webhook = { id: crypto.randomBytes(6).toString('hex'), app: input.app ?? null, url: u.toString(), events, createdAt: now() }
    const secret = crypto.randomBytes(24).toString('base64url')
    this.db.prepare('INSERT INTO webhooks (id, app, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(webhook.id, webhook.app, webhook.url, secret, events.join(','), webhook.createdAt)
    this.events.record({ app: webhook.app, actor, action: 'webhook.create', outcome: 'ok', detail: { id: webhook.id, url: webhook.url } })
    return { webhook, secret }
  }

  /** The hooks visible with `apps`: all of them for null, else only hooks of those apps (not every-app hooks). */
  list(apps: readonly string[] | null = null): Webhook[] {
    return this.all().filter((h) => visible(h, apps))
  }

  /** The hook, or null when there is none or it is not visible with `apps` (so a limited token learns nothing). */
  get(id: string, apps: readonly string[] | null = null): Webhook | null {
    return this.all().find((h) => h.id === id && visible(h, apps)) ?? null
  }

  private all(): Webhook[] {
    return (this.db.prepare('SELECT * FROM webhooks ORDER BY created_at').all() as Record<string, string | null>[]).map((r) => ({
      id: r.id!,
      app: r.app,
      url: r.url!,
      events: r.events!.split(','),
      createdAt: r.created_at!,
    }))
  }

  delete(id: string, apps: readonly string[] | null = null): boolean {
    if (!this.get(id, apps)) return false
    return this.db.prepare('DELETE FROM webhooks WHERE id = ?').run(id).changes > 0
  }

  deliveries(webhookId: string, limit = 100): Delivery[] {
    return (this.db.prepare('SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY seq DESC LIMIT ?').all(webhookId, limit) as Record<string, unknown>[]).map((r) => ({
      id: r.id as string,
      webhookId: r.webhook_id as string,
      event: r.event as string,
      state: r.state as Delivery['state'],
      attempts: r.attempts as number,
      lastStatus: r.last_status as number | null,
      lastError: r.last_error as string | null,
      createdAt: r.created_at as string,
      deliveredAt: r.delivered_at as string | null,
    }))
  }

  private enqueue(app: string, action: string, payload: Record<string, unknown>): void {
    const hooks = this.all().filter((h) => (h.app === null || h.app === app) && h.events.some((e) => action === e || (e.endsWith('.') && action.startsWith(e))))
    if (hooks.length === 0) return
    const insert = this.db.prepare('INSERT INTO webhook_deliveries (id, webhook_id, event, payload, state, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    for (const h of hooks) {
      const id = crypto.randomBytes(8).toString('hex')
      insert.run(id, h.id, action, JSON.stringify({ id, event: action, ...payload }), 'pending', Date.now(), now())
    }
    this.kick(0)
  }

  /** Starts the delivery loop (also picks up deliveries a previous agent left pending). */
  start(): void {
    this.kick(0)
  }

  close(): void {
    this.unsubscribe()
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  private kick(delay: number): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => void this.sendDue(), delay)
    this.timer.unref()
  }

  private async sendDue(): Promise<void> {
    this.timer = null
    if (this.sending) return
    this.sending = true
    try {
      const due = this.db.prepare(`SELECT d.*, w.url, w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.state = 'pending' AND d.next_at <= ? ORDER BY d.seq LIMIT 50`).all(Date.now()) as Record<string, unknown>[]
      await Promise.all(due.map((d) => this.attempt(d)))
    } finally {
      this.sending = false
      const next = this.db.prepare(`SELECT min(next_at) AS t FROM webhook_deliveries WHERE state = 'pending'`).get() as { t: number | null }
      if (next.t !== null && !this.timer) this.kick(Math.max(0, next.t - Date.now()))
    }
  }

  private async attempt(d: Record<string, unknown>): Promise<void> {
    const body = d.payload as string
    const attempts = (d.attempts as number) + 1
    let status: number | null = null
    let error: string | null = null
    try {
      const res = await fetch(d.url as string, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', 'user-agent': 'berth-webhooks', 'x-berth-event': d.event as string, 'x-berth-delivery': d.id as string, 'x-berth-signature': sign(d.secret as string, body) },
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: 'manual',
      })
      await res.body?.cancel()
      status = res.status
      if (status < 200 || status >= 300) error = `HTTP ${status}`
    } catch (err) {
      error = (err as Error).message
    }
    if (!error) {
      this.db.prepare(`UPDATE webhook_deliveries SET state = 'delivered', attempts = ?, last_status = ?, last_error = NULL, delivered_at = ? WHERE id = ?`).run(attempts, status, now(), d.id)
      return
    }
    const giveUp = attempts >= MAX_ATTEMPTS
    const next = Date.now() + this.backoffMs * 2 ** (attempts - 1)
    this.db.prepare('UPDATE webhook_deliveries SET state = ?, attempts = ?, last_status = ?, last_error = ?, next_at = ? WHERE id = ?').run(giveUp ? 'failed' : 'pending', attempts, status, error, next, d.id)
    this.log.warn({ webhook: d.webhook_id, delivery: d.id, attempts, error }, giveUp ? 'webhook delivery failed for good' : 'webhook delivery failed; will retry')
  }
}

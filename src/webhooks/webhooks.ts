// Webhooks: matching audit events become deliveries (stored first, so a restart loses none), sent as JSON
// signed with HMAC-SHA256 in X-Berth-Signature, retried with exponential backoff, history kept per hook.
// Callers limited to some apps (`apps`, null: every app) see and manage only the hooks of those apps.
// Each hook has its own lane (one delivery in flight at a time) and each app at most `maxPerApp` hooks, so
// a hook whose target never answers delays only its own deliveries, never another hook's or another app's.

import crypto from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type { Logger } from 'pino'
import { checkNotBerth, type SocketAddress } from '../apps/addresses.js'
import { checkUrlChars } from '../apps/text.js'
import { problem } from '../errors.js'
import { APP_NAME } from '../paths.js'
import { now, type Database } from '../store/db.js'
import type { EventStore } from '../store/events.js'
import { deliveryId, webhookId } from '../store/ids.js'
import { FailureLog, FAILURE_LOG_INTERVAL_MS } from './failure-log.js'
import { redactUrl } from './redact.js'
import { checkedLookup, DeliveryError, literalHost, privateKind, TargetRefused } from './targets.js'

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
// certificate.: a failed renewal must reach someone while the old certificate still serves.
export const DEFAULT_EVENTS = ['deploy', 'rollback', 'start', 'stop', 'restart', 'node.', 'certificate.']
const MAX_ATTEMPTS = 6

export interface WebhookOptions {
  /** First retry delay, doubling. */
  backoffMs: number
  /** One attempt, from connecting to the answer's status line; then it is abandoned. */
  timeoutMs: number
  /** Hooks per app (and hooks for every app); more are refused with TOO_MANY_WEBHOOKS. */
  maxPerApp: number
  /** Deliver to loopback, link-local and private addresses too (BERTH_WEBHOOK_ALLOW_PRIVATE). */
  allowPrivate: boolean
  /** Between two warnings about the same failing hook. */
  failureLogIntervalMs?: number
}

export const DEFAULT_WEBHOOK_OPTIONS: WebhookOptions = { backoffMs: 1000, timeoutMs: 10_000, maxPerApp: 20, allowPrivate: false }

function visible(h: Webhook, apps: readonly string[] | null): boolean {
  return apps === null || (h.app !== null && apps.includes(h.app))
}

export function sign(secret: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`
}

interface Attempt {
  status: number | null
  error: string | null
  /** Not worth retrying: the target is refused by policy. */
  final: boolean
}

export class Webhooks {
  private timer: NodeJS.Timeout | null = null
  private closed = false
  /** Hooks with a delivery in flight: each hook sends one at a time, in order. */
  private readonly busy = new Set<string>()
  private readonly failures: FailureLog
  private readonly opts: WebhookOptions

  private readonly unsubscribe: () => void

  constructor(
    private readonly db: Database,
    private readonly events: EventStore,
    private readonly log: Logger,
    opts: Partial<WebhookOptions> = {},
  ) {
    this.opts = { ...DEFAULT_WEBHOOK_OPTIONS, ...opts }
    this.failures = new FailureLog(log, this.opts.failureLogIntervalMs ?? FAILURE_LOG_INTERVAL_MS)
    this.unsubscribe = events.subscribe((e) => this.enqueue(e.app, e.action, { app: e.app, at: e.at, action: e.action, outcome: e.outcome, detail: e.detail }))
  }

  /** `berth`: berth's own listener, which no hook may target (its deliveries would arrive at berth unauthenticated). */
  create(input: { app?: string | null; url: string; events?: string[] }, actor: string | null, apps: readonly string[] | null = null, berth: SocketAddress | null = null): { webhook: Webhook; secret: string } {
    checkUrlChars(String(input.url), 'Webhook url')
    let u: URL
    try {
      u = new URL(input.url)
    } catch {
      throw problem('VALIDATION_FAILED', `Webhook url "${redactUrl(String(input.url)).slice(0, 100)}" is not a URL.`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw problem('VALIDATION_FAILED', 'Webhook urls must be http:// or https://.')
    checkNotBerth(u.toString(), 'Webhook url', berth)
    if (input.app && !APP_NAME.test(input.app)) throw problem('INVALID_APP_NAME', `App name "${input.app}" is not valid.`)
    // A hook for every app would carry other apps' events to someone who may not see them.
    if (apps !== null && !input.app) throw problem('FORBIDDEN_APP', `This token is limited to ${apps.join(', ')}; give the webhook an "app" among them (a hook for every app needs an unlimited token).`)
    if (apps !== null && !apps.includes(input.app!)) throw problem('FORBIDDEN_APP', `This token is limited to ${apps.join(', ')} and may not add webhooks for "${input.app}".`)
    // A literal address is judged now; a name is judged at each delivery, after it is resolved.
    const literal = literalHost(u)
    const kind = literal && !this.opts.allowPrivate ? privateKind(literal) : null
    if (kind) throw problem('WEBHOOK_TARGET_PRIVATE', `${literal} is a ${kind} address: berth delivers webhooks to public addresses only, unless the operator sets BERTH_WEBHOOK_ALLOW_PRIVATE=1.`)
    const app = input.app ?? null
    const count = (this.db.prepare('SELECT count(*) AS n FROM webhooks WHERE app IS ?').get(app) as { n: number }).n
    if (count >= this.opts.maxPerApp) {
      throw problem('TOO_MANY_WEBHOOKS', `${app === null ? 'There are' : `"${app}" has`} ${count} webhooks${app === null ? ' for every app' : ''}, the most allowed (BERTH_MAX_WEBHOOKS_PER_APP); delete one first.`, { limit: this.opts.maxPerApp })
    }
    const events = input.events && input.events.length > 0 ? input.events : DEFAULT_EVENTS
    const webhook: Webhook = { id: webhookId(), app, url: u.toString(), events, createdAt: now() }
    const secret = crypto.randomBytes(24).toString('base64url')
    this.db.prepare('INSERT INTO webhooks (id, app, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(webhook.id, webhook.app, webhook.url, secret, events.join(','), webhook.createdAt)
    // The audit trail is readable with the read scope: credentials and tokens in the URL stay out of it.
    this.events.record({ app: webhook.app, actor, action: 'webhook.create', outcome: 'ok', detail: { id: webhook.id, url: redactUrl(webhook.url) } })
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
    this.failures.forget(id)
    return this.db.prepare('DELETE FROM webhooks WHERE id = ?').run(id).changes > 0
  }

  /**
   * The delivery history, newest first. `limited` (an app-limited token): while private targets are allowed,
   * a status or an error could tell what answers inside the network (a port scanner), so both are hidden.
   */
  deliveries(webhookId: string, limit = 100, limited = false): Delivery[] {
    const hide = limited && this.opts.allowPrivate
    return (this.db.prepare('SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY seq DESC LIMIT ?').all(webhookId, limit) as Record<string, unknown>[]).map((r) => ({
      id: r.id as string,
      webhookId: r.webhook_id as string,
      event: r.event as string,
      state: r.state as Delivery['state'],
      attempts: r.attempts as number,
      lastStatus: hide ? null : (r.last_status as number | null),
      lastError: hide && r.last_error !== null ? 'not shown to app-limited tokens while BERTH_WEBHOOK_ALLOW_PRIVATE is on' : (r.last_error as string | null),
      createdAt: r.created_at as string,
      deliveredAt: r.delivered_at as string | null,
    }))
  }

  private enqueue(app: string, action: string, payload: Record<string, unknown>): void {
    const hooks = this.all().filter((h) => (h.app === null || h.app === app) && h.events.some((e) => action === e || (e.endsWith('.') && action.startsWith(e))))
    if (hooks.length === 0) return
    const insert = this.db.prepare('INSERT INTO webhook_deliveries (id, webhook_id, event, payload, state, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    for (const h of hooks) {
      const id = deliveryId()
      insert.run(id, h.id, action, JSON.stringify({ id, event: action, ...payload }), 'pending', Date.now(), now())
    }
    this.pump()
  }

  /** Starts the delivery loop (also picks up deliveries a previous agent left pending). */
  start(): void {
    this.pump()
  }

  close(): void {
    this.closed = true
    this.unsubscribe()
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  /**
   * Starts, for every hook not already sending, its oldest due delivery; then waits for the next one due of
   * an idle hook. A busy hook pumps again when its attempt ends.
   */
  private pump(): void {
    if (this.closed) return
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const t = Date.now()
    const due = this.db
      .prepare(`SELECT d.*, w.url, w.secret FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.seq IN (SELECT min(seq) FROM webhook_deliveries WHERE state = 'pending' AND next_at <= ? GROUP BY webhook_id)`)
      .all(t) as Record<string, unknown>[]
    for (const d of due) {
      const hook = d.webhook_id as string
      if (this.busy.has(hook)) continue
      this.busy.add(hook)
      void this.attempt(d)
        .catch((err: unknown) => this.log.error({ err, webhook: hook }, 'a webhook delivery could not be recorded'))
        .finally(() => {
          this.busy.delete(hook)
          this.pump()
        })
    }
    const next = this.db.prepare(`SELECT min(next_at) AS t FROM webhook_deliveries WHERE state = 'pending' AND webhook_id NOT IN (SELECT value FROM json_each(?))`).get(JSON.stringify([...this.busy])) as { t: number | null }
    if (next.t !== null) {
      this.timer = setTimeout(() => this.pump(), Math.max(next.t - Date.now(), 0))
      this.timer.unref()
    }
  }

  private async attempt(d: Record<string, unknown>): Promise<void> {
    const attempts = (d.attempts as number) + 1
    const { status, error, final } = await this.send(d)
    if (this.closed) return
    if (!error) {
      this.db.prepare(`UPDATE webhook_deliveries SET state = 'delivered', attempts = ?, last_status = ?, last_error = NULL, delivered_at = ? WHERE id = ?`).run(attempts, status, now(), d.id)
      this.failures.delivered(d.webhook_id as string)
      return
    }
    const giveUp = final || attempts >= MAX_ATTEMPTS
    const next = Date.now() + this.opts.backoffMs * 2 ** (attempts - 1)
    this.db.prepare('UPDATE webhook_deliveries SET state = ?, attempts = ?, last_status = ?, last_error = ?, next_at = ? WHERE id = ?').run(giveUp ? 'failed' : 'pending', attempts, status, error, next, d.id)
    this.failures.failed(d.webhook_id as string, { delivery: d.id as string, attempts, error, final: giveUp })
  }

  /** One POST: follows no redirect, reads no body, gives up after timeoutMs, connects only to checked addresses. */
  private send(d: Record<string, unknown>): Promise<Attempt> {
    const body = d.payload as string
    let u: URL
    try {
      u = new URL(d.url as string)
    } catch {
      return Promise.resolve({ status: null, error: 'the stored url is not a URL', final: true })
    }
    const literal = literalHost(u)
    const kind = literal && !this.opts.allowPrivate ? privateKind(literal) : null
    if (kind) return Promise.resolve({ status: null, error: new TargetRefused(kind).message, final: true })
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'berth-webhooks', 'x-berth-event': d.event as string, 'x-berth-delivery': d.id as string, 'x-berth-signature': sign(d.secret as string, body) }
    return new Promise((resolve) => {
      let settled = false
      const settle = (a: Attempt) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(a)
      }
      const transport = u.protocol === 'https:' ? https : http
      // No keep-alive agent: an idle socket per hook would outlive the attempt; a fresh connection is checked again.
      const req = transport.request(u, { method: 'POST', headers, agent: false, lookup: checkedLookup(this.opts.allowPrivate) }, (res) => {
        const status = res.statusCode ?? 0
        res.destroy()
        req.destroy()
        settle({ status, error: status >= 200 && status < 300 ? null : `HTTP ${status}`, final: false })
      })
      const timer = setTimeout(() => req.destroy(new DeliveryError(`no answer within ${this.opts.timeoutMs} ms`, 'ETIMEDOUT')), this.opts.timeoutMs)
      req.on('error', (err) => settle({ status: null, error: err.message, final: err instanceof TargetRefused }))
      req.end(body)
    })
  }
}

// Prometheus metrics, derived from berth's audit events (so the domain knows nothing of prom-client) plus
// gauges read at scrape time: deployments by outcome and duration, step durations, node restarts, app state,
// console sessions, upload bytes and failures, edge certificate renewals and expiry, the edge's requests per
// app (edge-metrics.ts), and the process metrics of prom-client. A token limited to some apps gets only those
// apps' series and the agent's own process metrics, none summed over every app.
// prom-client is loaded after berth listens (it is a tenth of a start); events until then wait in a queue.

import type * as PromTypes from 'prom-client'
import type { Services } from '../services.js'
import type { RecordedEvent } from '../store/events.js'
import { EDGE_ACROSS_APPS, registerEdgeMetrics } from './edge-metrics.js'

export interface Metrics {
  /** The exposition text and its content type; `apps` (null: every app) keeps only series labelled with those apps. */
  render(apps: readonly string[] | null): Promise<{ contentType: string; text: string }>
  /** Loads prom-client now (berth calls it once listening); render() also does, if it comes first. */
  load(): Promise<void>
}

/** prom-client's module namespace, as the loader brings it. */
type Client = typeof import('prom-client')

/** Events counted before prom-client is in; far more than the moments between listening and loading bring. */
const QUEUE_MAX = 10_000

/** Series summed over every app, which a token limited to some apps may not see either. */
const ACROSS_APPS = new Set(['berth_deployment_step_duration_seconds', 'berth_uploads_in_flight', EDGE_ACROSS_APPS])

/**
 * The metrics, subscribed to the audit events from the start. `loadClient` brings prom-client (a failure is
 * the caller's problem to answer; the next render tries again, and the queued events are kept until then).
 */
export function createMetrics(services: Services, loadClient: () => Promise<Client>): Metrics {
  let live: { registry: PromTypes.Registry; count(e: RecordedEvent): void } | null = null
  let queue: RecordedEvent[] = []
  services.events.subscribe((e) => {
    if (live) return live.count(e)
    if (queue.length < QUEUE_MAX) queue.push(e)
  })
  let loading: Promise<void> | null = null
  const load = () =>
    (loading ??= loadClient().then(
      (client) => {
        live = build(client, services)
        for (const e of queue) live.count(e)
        queue = []
      },
      (err: unknown) => {
        loading = null
        throw err
      },
    ))
  return {
    load,
    async render(apps) {
      await load()
      const text = await live!.registry.metrics()
      return { contentType: live!.registry.contentType, text: apps === null ? text : onlyApps(text, apps) }
    },
  }
}

function build(client: Client, services: Services): { registry: PromTypes.Registry; count(e: RecordedEvent): void } {
  const registry = new client.Registry()
  client.collectDefaultMetrics({ register: registry, prefix: 'berth_' })
  const deployments = new client.Counter({ name: 'berth_deployments_total', help: 'Deployments, rollbacks and operations by outcome', labelNames: ['app', 'kind', 'outcome'], registers: [registry] })
  const deploymentSeconds = new client.Histogram({ name: 'berth_deployment_duration_seconds', help: 'Time from request to final state', labelNames: ['app', 'kind'], buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600], registers: [registry] })
  const stepSeconds = new client.Histogram({ name: 'berth_deployment_step_duration_seconds', help: 'Duration of each deployment step', labelNames: ['step'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300], registers: [registry] })
  const restarts = new client.Counter({ name: 'berth_node_restarts_total', help: 'Nodes restarted by the crash policy', labelNames: ['app'], registers: [registry] })
  const exits = new client.Counter({ name: 'berth_node_unexpected_exits_total', help: 'Nodes that died while they should have been running', labelNames: ['app'], registers: [registry] })
  const uploadBytes = new client.Counter({ name: 'berth_upload_bytes_total', help: 'Bytes of accepted uploads', labelNames: ['app'], registers: [registry] })
  const uploads = new client.Counter({ name: 'berth_uploads_total', help: 'Uploads by outcome (the code for refusals)', labelNames: ['app', 'outcome'], registers: [registry] })
  const renewals = new client.Counter({ name: 'berth_edge_certificate_renewals_total', help: 'ACME renewals of edge certificates by outcome (ok, failed)', labelNames: ['app', 'outcome'], registers: [registry] })

  const count = (e: RecordedEvent) => {
    const d = e.detail ?? {}
    switch (e.action) {
      case 'deploy':
      case 'rollback':
      case 'start':
      case 'stop':
      case 'restart':
        deployments.inc({ app: e.app, kind: e.action, outcome: e.outcome })
        if (typeof d.durationMs === 'number') deploymentSeconds.observe({ app: e.app, kind: e.action }, d.durationMs / 1000)
        for (const s of (d.steps as { name: string; ms: number }[] | undefined) ?? []) stepSeconds.observe({ step: s.name }, s.ms / 1000)
        break
      case 'node.restart':
        restarts.inc({ app: e.app })
        break
      case 'node.exit':
        exits.inc({ app: e.app })
        break
      case 'certificate.renew':
        renewals.inc({ app: e.app, outcome: e.outcome })
        break
      case 'release.upload':
        uploads.inc({ app: e.app, outcome: e.outcome === 'ok' ? 'ok' : String(d.code ?? 'error') })
        if (e.outcome === 'ok' && typeof d.size === 'number') uploadBytes.inc({ app: e.app }, d.size)
        break
    }
  }

  const states = ['stopped', 'starting', 'running', 'stopping', 'crashed', 'backoff', 'errored'] as const
  new client.Gauge({
    name: 'berth_app_state',
    help: 'The node state of each app (1 for the current state)',
    labelNames: ['app', 'state'],
    registers: [registry],
    collect() {
      this.reset()
      for (const { name } of services.releases.apps()) {
        const now = services.supervisor.state(name)
        for (const s of states) this.set({ app: name, state: s }, s === now ? 1 : 0)
      }
    },
  })
  new client.Gauge({
    name: 'berth_console_sessions_active',
    help: 'Open console sessions',
    labelNames: ['app'],
    registers: [registry],
    collect() {
      this.reset()
      for (const { name } of services.releases.apps()) this.set({ app: name }, services.sessions.active(name))
    },
  })
  new client.Gauge({
    name: 'berth_edge_certificate_expiry_seconds',
    help: 'Seconds until each edge certificate expires (negative: expired and still served)',
    labelNames: ['app', 'host'],
    registers: [registry],
    collect() {
      this.reset()
      const now = Date.now()
      for (const r of services.certificates.rows()) if (r.notAfter) this.set({ app: r.app, host: r.host }, Math.round((Date.parse(r.notAfter) - now) / 1000))
    },
  })
  new client.Gauge({
    name: 'berth_uploads_in_flight',
    help: 'Uploads being received',
    registers: [registry],
    collect() {
      this.set(services.intake.inFlight)
    },
  })
  if (services.accessLog) registerEdgeMetrics(client, registry, services.accessLog)
  return { registry, count }
}

/** Drops the families in ACROSS_APPS and every sample labelled with an app outside `apps`. */
function onlyApps(text: string, apps: readonly string[]): string {
  const out: string[] = []
  let family = ''
  for (const line of text.split('\n')) {
    const head = /^# (?:HELP|TYPE) (\S+)/.exec(line)
    if (head) family = head[1]!
    if (ACROSS_APPS.has(family)) continue
    // App names match APP_NAME ([a-z0-9_-]), so the label value needs no unescaping.
    const app = head ? undefined : /[{,]app="([^"]*)"/.exec(line)?.[1]
    if (app !== undefined && !apps.includes(app)) continue
    out.push(line)
  }
  return out.join('\n')
}

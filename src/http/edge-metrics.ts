// The edge's request metrics in prom-client's terms: requests by status class, the latency histogram per app
// and the access lines dropped, all read from the access log's own counters at scrape time (none per request).

import type * as PromTypes from 'prom-client'
import { DURATION_BUCKETS, STATUS_CLASSES, type AccessLog } from '../edge/access-log.js'

type Client = typeof import('prom-client')

/** The drop counter sums every app's lines: a token limited to some apps does not see it (metrics.ts). */
export const EDGE_ACROSS_APPS = 'berth_edge_access_lines_dropped_total'

export function registerEdgeMetrics(client: Client, registry: PromTypes.Registry, access: AccessLog): void {
  new client.Counter({
    name: 'berth_edge_requests_total',
    help: 'Requests through the edge per app, by status class (none: the client left before an answer)',
    labelNames: ['app', 'code'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [app, s] of access.requestStats()) {
        STATUS_CLASSES.forEach((code, i) => {
          if (s.codes[i]) this.inc({ app, code }, s.codes[i])
        })
      }
    },
  })
  latencyHistogram(client, registry, access)
  new client.Counter({
    name: EDGE_ACROSS_APPS,
    help: 'Edge access lines not filed, by reason (kernel: the socket buffer was full)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [reason, n] of Object.entries(access.droppedLines())) this.inc({ reason }, n)
    },
  })
}

/**
 * berth_edge_request_duration_seconds{app}: a prom-client Histogram whose values are the access log's
 * bucket counts at scrape time. Observing each request through prom-client instead would hash its labels
 * per request, on the path that receives every line the edge sends.
 */
function latencyHistogram(client: Client, registry: PromTypes.Registry, access: AccessLog): void {
  const name = 'berth_edge_request_duration_seconds'
  const help = 'Time from accepting a request to its end at the edge (haproxy %Ta), per app'
  const histogram = new client.Histogram({ name, help, labelNames: ['app'], buckets: [...DURATION_BUCKETS], registers: [registry] })
  const render = async () => {
    const values: { metricName: string; labels: { app: string; le?: number | string }; value: number }[] = []
    for (const [app, s] of access.requestStats()) {
      let cumulative = 0
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i]!
        values.push({ metricName: `${name}_bucket`, labels: { app, le }, value: cumulative })
      })
      values.push({ metricName: `${name}_bucket`, labels: { app, le: '+Inf' }, value: s.count })
      values.push({ metricName: `${name}_sum`, labels: { app }, value: s.sumSeconds })
      values.push({ metricName: `${name}_count`, labels: { app }, value: s.count })
    }
    return { name, help, type: 'histogram', aggregator: 'sum', values }
  }
  // Never observed: prom-client renders the text through getForPromString and JSON through get, and both
  // answer the access log's counts.
  Object.assign(histogram, { get: render, getForPromString: render })
}

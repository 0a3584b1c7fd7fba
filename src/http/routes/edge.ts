// Routes of the shared edge: an app's pause (503 with Retry-After and its maintenance page) and resume, and
// the edge's own status. The edge itself lives in src/edge; certificates have their own routes.

import type { FastifyInstance } from 'fastify'
import { problem } from '../../errors.js'
import { writeMaintenancePage } from '../../edge/fallback.js'
import { requireApp } from '../../releases/lookup.js'
import type { Services } from '../../services.js'
import type { RouteContext } from '../context.js'
import { actor } from '../reply.js'

const DEFAULT_RETRY_AFTER_S = 60

function edgeOf(services: Services) {
  if (!services.edge) throw problem('EDGE_NOT_CONFIGURED', 'This host runs no edge: set BERTH_EDGE_HTTP (and BERTH_EDGE_HTTPS) and restart berth.')
  return services.edge
}

export default async function edgeRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services } = ctx
  ctx.route(app, 'pauseApp', async (request) => {
    const name = request.params.app
    requireApp(services.releases, name)
    const edge = edgeOf(services)
    if (!edge.serves(name)) throw problem('APP_NOT_ON_EDGE', `App "${name}" has no hostnames on the edge yet: set proxy.hosts and deploy it first.`)
    const retryAfterSeconds = request.body?.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_S
    if (request.body?.page !== undefined) writeMaintenancePage(services.paths, name, request.body.page)
    await edge.pause(name, retryAfterSeconds, actor(request))
    return { app: name, paused: true, retryAfterSeconds }
  })
  ctx.route(app, 'resumeApp', async (request) => {
    const name = request.params.app
    requireApp(services.releases, name)
    await edgeOf(services).resume(name, actor(request))
    return { app: name, paused: false, retryAfterSeconds: null }
  })
  ctx.route(app, 'getEdge', async (request) => {
    if (!services.edge) return { configured: false }
    // A token limited to some apps sees the edge itself and those apps only, not the others' hostnames.
    const allowed = request.token!.apps
    const visible = [...services.edge.routedApps()].filter(([name]) => allowed === null || allowed.includes(name))
    const { apps: _all, ...status } = services.edge.status()
    const apps = visible.map(([name, a]) => ({ app: name, hosts: a.hosts, tls: a.tls, paused: services.edge!.pausedFor(name) !== null }))
    return { configured: true, ...status, apps }
  })
}

// Routes about the agent itself: liveness and the API document.

import type { FastifyInstance } from 'fastify'
import type { RouteContext } from '../app.js'

export const VERSION = '0.1.0'

export default async function metaRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services, api } = ctx
  ctx.route(app, 'healthz', async () => {
    services.db.prepare('SELECT 1').get()
    return { status: 'ok', version: VERSION }
  })
  ctx.route(app, 'getOpenApi', async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(api.text))
}

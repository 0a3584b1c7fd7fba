// Routes for webhooks (admin): create (the signing secret is shown once), list, delete, delivery history.
// The deliveries and their audit live in src/webhooks. An app-limited token works only with hooks of its
// apps; the hooks of others answer 404 as if absent.

import type { FastifyInstance } from 'fastify'
import { listenerOf } from '../../apps/addresses.js'
import { problem } from '../../errors.js'
import type { RouteContext } from '../context.js'
import { actor } from '../reply.js'

export default async function webhookRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { webhooks } = ctx.services
  ctx.route(app, 'createWebhook', async (request, reply) => {
    const { webhook, secret } = webhooks.create(request.body, actor(request), request.token!.apps, listenerOf(app.server))
    reply.code(201)
    return { ...webhook, secret }
  })
  ctx.route(app, 'listWebhooks', async (request) => ({ webhooks: webhooks.list(request.token!.apps) }))
  ctx.route(app, 'deleteWebhook', async (request, reply) => {
    const { id } = request.params
    if (!webhooks.delete(id, request.token!.apps)) throw problem('WEBHOOK_NOT_FOUND', `There is no webhook "${id}".`)
    return reply.code(204).send()
  })
  ctx.route(app, 'listDeliveries', async (request) => {
    const { id } = request.params
    if (!webhooks.get(id, request.token!.apps)) throw problem('WEBHOOK_NOT_FOUND', `There is no webhook "${id}".`)
    return { deliveries: webhooks.deliveries(id, 100, request.token!.apps !== null) }
  })
}

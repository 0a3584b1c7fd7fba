// Routes for webhooks (admin): create (the signing secret is shown once), list, delete, delivery history.
// An app-limited token works only with hooks of its apps; the hooks of others answer 404 as if absent.

import type { FastifyInstance } from 'fastify'
import { problem } from '../../errors.js'
import type { RouteContext } from '../app.js'

export default async function webhookRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { webhooks } = ctx.services
  ctx.route(app, 'createWebhook', async (request, reply) => {
    const body = request.body as { url: string; app?: string | null; events?: string[] }
    const { webhook, secret } = webhooks.create(body, request.token!.apps)
    ctx.services.events.record({ app: webhook.app, actor: request.token?.name, action: 'webhook.create', outcome: 'ok', detail: { id: webhook.id, url: webhook.url } })
    reply.code(201)
    return { ...webhook, secret }
  })
  ctx.route(app, 'listWebhooks', async (request) => ({ webhooks: webhooks.list(request.token!.apps) }))
  ctx.route(app, 'deleteWebhook', async (request, reply) => {
    const { id } = request.params as { id: string }
    if (!webhooks.delete(id, request.token!.apps)) throw problem('WEBHOOK_NOT_FOUND', `There is no webhook "${id}".`)
    return reply.code(204).send()
  })
  ctx.route(app, 'listDeliveries', async (request) => {
    const { id } = request.params as { id: string }
    if (!webhooks.get(id, request.token!.apps)) throw problem('WEBHOOK_NOT_FOUND', `There is no webhook "${id}".`)
    return { deliveries: webhooks.deliveries(id) }
  })
}

// Routes for webhooks (admin): create (the signing secret is shown once), list, delete, delivery history.

import type { FastifyInstance } from 'fastify'
import { problem } from '../../errors.js'
import type { RouteContext } from '../app.js'

export default async function webhookRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { webhooks } = ctx.services
  ctx.route(app, 'createWebhook', async (request, reply) => {
    const body = request.body as { url: string; app?: string | null; events?: string[] }
    const { webhook, secret } = webhooks.create(body)
    ctx.services.events.record({ app: webhook.app, actor: request.token?.name, action: 'webhook.create', outcome: 'ok', detail: { id: webhook.id, url: webhook.url } })
    reply.code(201)
    return { ...webhook, secret }
  })
  ctx.route(app, 'listWebhooks', async () => ({ webhooks: webhooks.list() }))
  ctx.route(app, 'deleteWebhook', async (request, reply) => {
    const { id } = request.params as { id: string }
    if (!webhooks.delete(id)) throw problem('WEBHOOK_NOT_FOUND', `There is no webhook "${id}".`)
    return reply.code(204).send()
  })
  ctx.route(app, 'listDeliveries', async (request) => {
    const { id } = request.params as { id: string }
    if (!webhooks.list().some((w) => w.id === id)) throw problem('WEBHOOK_NOT_FOUND', `There is no webhook "${id}".`)
    return { deliveries: webhooks.deliveries(id) }
  })
}

// Routes about the agent itself: liveness, metrics, the API document and its rendered reference (/docs).

import type { FastifyInstance } from 'fastify'
import type { RouteContext } from '../context.js'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { createMetrics } from '../metrics.js'

export const VERSION = '0.1.0'

export default async function metaRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services, api } = ctx
  const metrics = createMetrics(services)
  ctx.route(app, 'getMetrics', async (request, reply) => reply.type(metrics.contentType).send(await metrics.render(request.token!.apps)))

  // The API reference rendered from openapi.yaml by swagger-ui, from its own package: no CDN, no validator.
  await app.register(swagger, { mode: 'static', specification: { document: api.doc as never } })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { validatorUrl: null, deepLinking: true },
    // Our own policy instead of the plugin's (which allows https: fonts/styles and the public validator);
    // swagger-ui sets inline styles at run time, hence 'unsafe-inline' for styles only.
    staticCSP: "default-src 'self'; base-uri 'none'; font-src 'self' data:; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'; connect-src 'self'",
    // The plugin's own routes carry the static assets of the page; /docs itself is documented in openapi.yaml.
  })
  ctx.route(app, 'healthz', async () => {
    services.db.prepare('SELECT 1').get()
    return { status: 'ok', version: VERSION }
  })
  ctx.route(app, 'getOpenApi', async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(api.text))
}

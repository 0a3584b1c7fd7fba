// Routes about the agent itself: the front page (/: the operator dashboard for browsers, pointers as JSON
// otherwise), liveness, metrics, the API document and its rendered reference (/docs).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { RouteContext } from '../context.js'
import { createMetrics } from '../metrics.js'
import { pageHtml, sendPage } from '../pages.js'

export const VERSION = '0.1.0'

/** berth's mark: a berth (a boat's place at the quay) drawn as a "b" over water; favicon of the pages. */
const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f3a5f"/><path d="M10 6v16h7a5 5 0 0 0 0-10h-4" fill="none" stroke="#fff" stroke-width="3"/><path d="M5 27c3-2 5-2 8 0s5 2 8 0 5-2 6 0" fill="none" stroke="#7fb3e0" stroke-width="2"/></svg>`

/** What / answers a client that does not ask for HTML: no app names, nothing that needs a token to know. */
export const FRONT = {
  name: 'berth',
  version: VERSION,
  docs: '/docs',
  openapi: '/openapi.yaml',
  api: '/v1/apps',
  console: '/console/{app}',
  health: '/healthz',
}

export default async function metaRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services, api } = ctx
  const metrics = createMetrics(services, ctx.load.promClient)
  // Not before listening: start-to-listening does not pay for it. A failure here is logged by the loader,
  // and the next /metrics tries again and answers the problem.
  app.addHook('onListen', (done) => {
    setImmediate(() => void metrics.load().catch(() => {}))
    done()
  })
  ctx.route(app, 'getMetrics', async (request, reply) => {
    const { contentType, text } = await metrics.render(request.token!.apps)
    return reply.type(contentType).send(text)
  })

  // The API reference: swagger-ui in an instance of its own, loaded on the first request for it (docs.ts).
  let docs: Promise<FastifyInstance> | null = null
  app.addHook('onClose', async () => (await docs?.catch(() => null))?.close())
  const reference = async (request: FastifyRequest, reply: FastifyReply) => {
    docs ??= ctx.load.docs().then((m) => m.docsApp(api.doc, ICON)).catch((err) => {
      docs = null
      throw err
    })
    const inner = await docs
    // Its answer, streamed by its own routes (the page, its assets, their 404s), on this request's socket.
    reply.hijack()
    inner.routing(request.raw, reply.raw)
  }
  ctx.route(app, 'docs', reference)
  // The page's scripts and styles and swagger-ui's copy of this document; they belong to the documented page.
  app.get('/docs/*', reference)
  const icon = `data:image/svg+xml;base64,${Buffer.from(ICON).toString('base64')}`
  ctx.route(app, 'getRoot', async (request, reply) => {
    // A browser asks for HTML first; curl and scripts get pointers as JSON.
    const html = /text\/html/.test(request.headers.accept ?? '')
    reply.header('vary', 'accept')
    if (!html) return FRONT
    return sendPage(reply, pageHtml('dashboard').replaceAll('{{ICON}}', icon).replace('{{VERSION}}', VERSION))
  })
  ctx.route(app, 'healthz', async () => {
    services.db.prepare('SELECT 1').get()
    const { mode, reason } = services.launcher.state
    return { status: 'ok', version: VERSION, details: { isolation: { mode, reason } } }
  })
  ctx.route(app, 'getOpenApi', async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(api.text))
}

// The rendered API reference (/docs): swagger-ui and its assets in an inner Fastify instance of their own,
// which app.ts loads on the first request for /docs, so that a daemon nobody reads the reference of never loads it.

import Fastify, { type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { errorHandler, notFoundHandler } from './problem.js'
import { lazyCompilers } from './schema-compilers.js'

/** swagger-ui over `document`, under /docs, ready: the outer app hands it the raw requests for /docs and /docs/*. */
export async function docsApp(document: Record<string, unknown>, icon: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, schemaController: { compilersFactory: lazyCompilers() } })
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(notFoundHandler)
  // The API reference rendered from openapi.yaml by swagger-ui, from its own package: no CDN, no validator.
  await app.register(swagger, { mode: 'static', specification: { document: document as never } })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // BaseLayout: the reference alone, without swagger-ui's top bar (its logo and the "Explore" box that
    // loads any other URL's document into berth's page).
    uiConfig: { validatorUrl: null, deepLinking: true, layout: 'BaseLayout' },
    theme: { title: 'berth API reference', favicon: [{ filename: 'berth.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: Buffer.from(icon) }] },
    // Our own policy instead of the plugin's (which allows https: fonts/styles and the public validator);
    // swagger-ui sets inline styles at run time, hence 'unsafe-inline' for styles only.
    staticCSP: "default-src 'self'; base-uri 'none'; font-src 'self' data:; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'; connect-src 'self'",
  })
  await app.ready()
  return app
}

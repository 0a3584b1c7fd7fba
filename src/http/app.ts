// The Fastify application as a plugin-style builder that never listens (server.ts does): error handling,
// authentication from openapi.yaml, and the route modules. Routes stay thin; the domain lives in services.

import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type RouteHandlerMethod } from 'fastify'
import websocket from '@fastify/websocket'
import { problem } from '../errors.js'
import type { Services } from '../services.js'
import { authHook, FailureLimiter } from './auth.js'
import { headerLimits } from './header-limits.js'
import { StreamLimiter } from './streams.js'
import type { Loaders, RouteContext, RouteExtra } from './context.js'
import { loadApiDocument } from './openapi.js'
import { errorHandler, notFoundHandler } from './problem.js'
import { lazyCompilers } from './schema-compilers.js'
import appRoutes from './routes/apps.js'
import certificateRoutes from './routes/certificates.js'
import consoleRoutes from './routes/console.js'
import dashboardRoutes from './routes/dashboard.js'
import deploymentRoutes from './routes/deployments.js'
import metaRoutes from './routes/meta.js'
import releaseRoutes from './routes/releases.js'
import webhookRoutes from './routes/webhooks.js'
import edgeRoutes from './routes/edge.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    operationId?: string
  }
  interface FastifyInstance {
    berthRoutes: { method: string; url: string }[]
    /** Compiles every route schema not compiled yet (they compile on first use); answers how many. */
    berthCompileSchemas(): number
    /** Long-lived answers open now, and their limits (http/streams.ts). */
    berthStreams: StreamLimiter
  }
}

/** What routes load on first use; a test passes its own to see a failing load answered as a problem. */
export const LOADERS: Loaders = {
  docs: () => import('./docs.js'),
  promClient: () => import('prom-client'),
}

export async function buildApp(services: Services, options: FastifyServerOptions = {}, loaders: Loaders = LOADERS): Promise<FastifyInstance> {
  const compilers = lazyCompilers()
  const app = Fastify({
    logger: false,
    // Uploads stream for minutes; their limits are intake's. server.ts sets a backstop above the longest.
    requestTimeout: 0,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    logController: new RequestLog(),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array' } },
    schemaController: { compilersFactory: compilers },
    ...options,
  })
  app.decorate('berthCompileSchemas', compilers.compileAll)
  app.decorateRequest('token', null)
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(notFoundHandler)

  // Every route as Fastify registered it, so a test can hold it against openapi.yaml.
  const routes: { method: string; url: string }[] = []
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) routes.push({ method: m, url: r.url })
  })
  app.decorate('berthRoutes', routes)

  const api = loadApiDocument()
  const limiter = new FailureLimiter(services.config.authFailuresPerMinute)
  const streams = new StreamLimiter(services.config.http)
  app.decorate('berthStreams', streams)
  // Before every route's own onRequest (authentication): an oversized request is refused unread.
  app.addHook('onRequest', headerLimits)
  // Terminal frames are small; 1 MiB bounds what one message can make berth buffer.
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } })
  const register = (instance: FastifyInstance, operationId: string, handler: unknown, extra: RouteExtra & { websocket?: boolean } = {}) => {
    const op = api.operations.get(operationId)
    if (!op) throw problem('API_DOCUMENT_INVALID', `route ${operationId} is not described in openapi.yaml`)
    instance.route({
      method: op.method as 'GET',
      url: op.url,
      schema: op.schema,
      config: { operationId },
      ...extra,
      onRequest: extra.onRequest ?? (op.scope ? authHook(services.tokens, limiter, op.scope) : undefined),
      handler: handler as RouteHandlerMethod,
    })
  }
  const ctx: RouteContext = {
    load: loadOnce(loaders, services.log),
    limiter,
    streams,
    services,
    api,
    route: (instance, operationId, handler, extra) => register(instance, operationId, handler, extra),
    socketRoute: (instance, operationId, handler, extra) => register(instance, operationId, handler, { ...extra, websocket: true }),
  }
  await app.register(metaRoutes, ctx)
  await app.register(appRoutes, ctx)
  await app.register(releaseRoutes, ctx)
  await app.register(deploymentRoutes, ctx)
  await app.register(consoleRoutes, ctx)
  await app.register(webhookRoutes, ctx)
  await app.register(edgeRoutes, ctx)
  await app.register(certificateRoutes, ctx)
  await app.register(dashboardRoutes, ctx)
  return app
}

/**
 * Each loader run once and kept; one that fails is retried by the next request, which meanwhile gets a
 * MODULE_LOAD_FAILED problem (the cause is logged) instead of an unhandled rejection.
 */
function loadOnce(loaders: Loaders, log: Services['log']): Loaders {
  const wrap = <T>(what: string, load: () => Promise<T>) => {
    let loading: Promise<T> | null = null
    return () =>
      (loading ??= load().catch((err: unknown) => {
        loading = null
        log.error({ err, module: what }, 'a module berth loads on first use failed to load')
        throw problem('MODULE_LOAD_FAILED', `berth could not load its code for ${what} (${(err as NodeJS.ErrnoException)?.code ?? 'error'}); its installation is incomplete or damaged: reinstall it (npm ci && npm run build) and restart berth.`, {}, err)
      }))
  }
  return { docs: wrap('/docs', loaders.docs), promClient: wrap('/metrics', loaders.promClient) }
}

const MUTATIONS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * One line per answered request instead of Fastify's two at info: at info for what changes something (an
 * operator's audit trail on stdout), at debug for reads, which monitoring repeats all day (/healthz,
 * /metrics, status polls) and which at info cost /healthz half its throughput. The query string is left
 * out: nothing secret belongs there, but a client that put something there anyway must not find it in the
 * journal. Headers and bodies are never logged. Fastify's other lines (stream and serializer errors) stay.
 */
class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    // At info a read logs nothing, so it builds nothing either.
    if (!error && !MUTATIONS.has(request.method) && (reply.log as { isLevelEnabled?(level: string): boolean }).isLevelEnabled?.('debug') === false) return
    const fields = { method: request.method, url: request.url.split('?')[0], statusCode: reply.statusCode, responseTime: Math.round(reply.elapsedTime * 10) / 10, remoteAddress: request.ip }
    if (error) reply.log.error({ ...fields, err: error }, 'request errored')
    else reply.log[MUTATIONS.has(request.method) ? 'info' : 'debug'](fields, 'request completed')
  }
}

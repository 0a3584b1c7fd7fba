// Console routes: the remote/attach websockets (auth by header or first frame, Origin checked), rpc, the
// session list and recordings, and the web terminal page with its assets. The sessions live in src/sessions.

import fs from 'node:fs'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { problem } from '../../errors.js'
import { requireApp } from '../../releases/lookup.js'
import { authorize } from '../auth.js'
import type { Config } from '../../config.js'
import type { RouteContext } from '../context.js'
import { originAllowed, ownOrigins } from '../origins.js'
import { actor } from '../reply.js'
import { serveTerminal } from '../terminal-socket.js'
import { asset as findAsset, pageHtml, sendPage } from '../pages.js'

/**
 * Cross-site websocket hijacking guard: a browser always sends Origin, and it must be berth's own (or allowed).
 * Clients without Origin (curl, the CLI) are not browsers and must authenticate anyway.
 */
export function checkOrigin(request: FastifyRequest, consoles: Config['consoles']): void {
  const origin = request.headers.origin
  if (!origin) return
  const socket = request.raw.socket as import('node:net').Socket & { encrypted?: boolean }
  const own = consoles.publicOrigins.length > 0 ? consoles.publicOrigins : ownOrigins({ address: socket.localAddress ?? '', port: socket.localPort ?? 0 }, socket.encrypted === true)
  if (originAllowed(origin, own, consoles.allowedOrigins)) return
  throw problem('ORIGIN_NOT_ALLOWED', `Pages from ${origin.slice(0, 100)} may not open consoles on this berth; open the console from ${own[0] ?? 'berth'}/console/APP, or name the page's origin in BERTH_PUBLIC_URL (berth's own address) or BERTH_ALLOWED_ORIGINS.`)
}

export default async function consoleRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services, limiter } = ctx
  const { config, releases, sessions } = services

  for (const kind of ['remote', 'attach'] as const) {
    const operation = kind === 'remote' ? 'remoteConsole' : 'attachConsole'
    ctx.socketRoute(
      app,
      operation,
      (socket, request) => {
        const { app: name } = request.params
        serveTerminal(socket, {
          token: request.token,
          authorize: (token) => authorize(services.tokens, limiter, { ip: request.ip, headers: { authorization: `Bearer ${token}` }, app: name }, 'console'),
          open: async (token, size, sink) => {
            requireApp(releases, name)
            // A console holds its connection like a log follow does: one of the token's and the app's stream slots.
            const release = ctx.streams.acquire(token, name)
            socket.once('close', release)
            if (socket.readyState !== socket.OPEN) release()
            try {
              return await (kind === 'remote' ? sessions.openRemote(name, token, size, sink) : sessions.openAttach(name, token, size, sink))
            } catch (err) {
              release()
              throw err
            }
          },
          logError: (err) => request.log.error({ err }, 'console session failed to start'),
        })
      },
      {
        onRequest: async (request: FastifyRequest) => {
          checkOrigin(request, config.consoles)
          // With a header (CLI, scripts) the token is checked before the upgrade; browsers send it as a frame.
          if (request.headers.authorization) {
            request.token = authorize(services.tokens, limiter, { ip: request.ip, headers: request.headers, app: (request.params as { app: string }).app }, 'console')
          }
        },
      },
    )
  }

  ctx.route(app, 'rpc', async (request) => {
    const { app: name } = request.params
    requireApp(releases, name)
    const r = await services.rpc.run(name, request.body.expr, request.body.timeoutMs ?? 30_000, actor(request))
    return { code: r.code, error: r.error, output: r.output, timedOut: r.timedOut, ms: r.ms }
  })

  ctx.route(app, 'listSessions', async (request) => {
    requireApp(releases, request.params.app)
    return { sessions: sessions.list(request.params.app) }
  })

  ctx.route(app, 'getRecording', async (request, reply: FastifyReply) => {
    const { app: name, id } = request.params
    requireApp(releases, name)
    const info = sessions.get(name, id)
    if (!info) throw problem('SESSION_NOT_FOUND', `App "${name}" has no console session "${id}".`)
    const file = sessions.recordingPath(name, id)
    if (!file || !fs.existsSync(file)) throw problem('RECORDING_GONE', `The recording of session ${id} was removed by retention (BERTH_KEEP_RECORDINGS).`)
    reply.type('application/x-asciicast').header('content-disposition', `attachment; filename="${name}-${id}.cast"`)
    return reply.send(fs.createReadStream(file))
  })

  ctx.route(app, 'consolePage', async (_request, reply) => {
    return sendPage(reply, pageHtml('console'))
  })

  ctx.route(app, 'consoleAsset', async (request, reply) => {
    const asset = findAsset(request.params.name)
    if (!asset) throw problem('ROUTE_NOT_FOUND', 'No such asset.')
    reply.type(asset.type).header('cache-control', 'public, max-age=3600').header('x-content-type-options', 'nosniff')
    return reply.send(fs.createReadStream(asset.file))
  })
}

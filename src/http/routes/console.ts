// Console routes: the remote/attach websockets (auth by header or first frame, Origin checked), rpc, the
// session list and recordings, and the web terminal page with its assets. The sessions live in src/sessions.

import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { authorize, type FailureLimiter } from '../auth.js'
import { BerthError, isBerthError, problem } from '../../errors.js'
import { currentReleaseId } from '../../intake/cleanup.js'
import type { Session } from '../../sessions/manager.js'
import type { TokenInfo } from '../../auth/tokens.js'
import type { RouteContext } from '../app.js'
import type { Config } from '../../config.js'
import { originAllowed, ownOrigins } from '../origins.js'
import { requireApp } from './deployments.js'

type AppParams = { app: string }

const ASSETS_DIR = fileURLToPath(new URL('../../../../src/http/assets/', import.meta.url))
const MODULES = fileURLToPath(new URL('../../../../node_modules/', import.meta.url))
/** The only files /assets serves: a fixed map, so no client-supplied name ever reaches the filesystem. */
const ASSETS: Record<string, { file: string; type: string }> = {
  'xterm.js': { file: path.join(MODULES, '@xterm/xterm/lib/xterm.js'), type: 'text/javascript; charset=utf-8' },
  'xterm.css': { file: path.join(MODULES, '@xterm/xterm/css/xterm.css'), type: 'text/css; charset=utf-8' },
  'addon-fit.js': { file: path.join(MODULES, '@xterm/addon-fit/lib/addon-fit.js'), type: 'text/javascript; charset=utf-8' },
  'console.js': { file: path.join(ASSETS_DIR, 'console.js'), type: 'text/javascript; charset=utf-8' },
  'console.css': { file: path.join(ASSETS_DIR, 'console.css'), type: 'text/css; charset=utf-8' },
}

/**
 * Scripts and sockets from berth itself only, no framing by other sites. Styles also allow inline: xterm.js
 * writes its theme and cell metrics into <style> elements at run time (styles cannot run code).
 */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const AUTH_FRAME_MS = 5000

/** Close codes: 4000 + the HTTP status the same refusal would have had, so clients can tell them apart. */
function closeWith(socket: WebSocket, err: BerthError): void {
  if (socket.readyState !== socket.OPEN) return
  socket.send(JSON.stringify({ type: 'error', code: err.code, status: err.status, detail: err.message }))
  // A close reason is limited to 123 bytes; the full sentence went in the error frame above.
  socket.close(4000 + err.status, Buffer.from(err.message).subarray(0, 120).toString())
}

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

export default async function consoleRoutes(app: FastifyInstance, ctx: RouteContext & { limiter: FailureLimiter }): Promise<void> {
  const { services, limiter } = ctx
  const { config } = services

  for (const kind of ['remote', 'attach'] as const) {
    ctx.route(
      app,
      kind === 'remote' ? 'remoteConsole' : 'attachConsole',
      async function terminal(this: unknown, socket: WebSocket, request: FastifyRequest) {
        const { app: name } = request.params as AppParams
        let session: Session | null = null
        let closed = false
        let size = { cols: 80, rows: 24 }
        let starting = false
        const open = async (token: TokenInfo) => {
          starting = true
          try {
            requireApp(services, name)
            const sink = {
              write: (d: Buffer) => socket.readyState === socket.OPEN && socket.send(d, { binary: true }),
              bufferedAmount: () => socket.bufferedAmount,
              exit: (code: number | null, reason: string, ended?: BerthError) => {
                // The token was revoked or expired: 4401 and the reason, like a refused token.
                if (ended) return closeWith(socket, ended)
                if (socket.readyState !== socket.OPEN) return
                socket.send(JSON.stringify({ type: 'exit', code, reason }))
                socket.close(1000, reason.slice(0, 120))
              },
            }
            const s = kind === 'remote' ? await services.sessions.openRemote(name, token, size, sink) : await services.sessions.openAttach(name, token, size, sink)
            session = s
            if (closed) await s.close('client closed')
          } catch (err) {
            closeWith(socket, isBerthError(err) ? err : problem('INTERNAL', 'The session could not be started; see the berth log.'))
            if (!isBerthError(err)) request.log.error({ err }, 'console session failed to start')
          }
        }
        // Bytes the socket could not send yet: the sink reports them, and the terminal resumes on drain.
        const raw = (socket as unknown as { _socket?: import('node:net').Socket })._socket
        raw?.on('drain', () => session?.drained())
        socket.on('close', () => {
          closed = true
          void session?.close('client closed')
        })
        let authTimer: NodeJS.Timeout | null = null
        if (request.token) void open(request.token)
        else {
          authTimer = setTimeout(() => closeWith(socket, problem('UNAUTHORIZED', 'Send {"type":"auth","token":"..."} as the first frame within 5 seconds.')), AUTH_FRAME_MS)
        }
        socket.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary) {
            session?.input(data)
            return
          }
          let msg: { type?: string; token?: string; cols?: number; rows?: number }
          try {
            msg = JSON.parse(data.toString('utf8')) as typeof msg
          } catch {
            return closeWith(socket, problem('VALIDATION_FAILED', 'Text frames must be JSON control messages: auth or resize.'))
          }
          if (msg.type === 'auth') {
            if (authTimer) clearTimeout(authTimer)
            authTimer = null
            if (session || starting) return
            try {
              const token = authorize(services.tokens, limiter, { ip: request.ip, headers: { authorization: `Bearer ${msg.token ?? ''}` }, app: name }, 'console')
              void open(token)
            } catch (err) {
              closeWith(socket, err as BerthError)
            }
          } else if (msg.type === 'resize') {
            const next = { cols: Number(msg.cols), rows: Number(msg.rows) }
            try {
              if (session) session.resize(next.cols, next.rows)
              else if (Number.isInteger(next.cols) && Number.isInteger(next.rows) && next.cols > 0 && next.rows > 0 && next.cols <= 1000 && next.rows <= 1000) size = next
            } catch (err) {
              closeWith(socket, err as BerthError)
            }
          }
        })
      } as never,
      {
        websocket: true,
        onRequest: async (request: FastifyRequest) => {
          checkOrigin(request, config.consoles)
          // With a header (CLI, scripts) the token is checked before the upgrade; browsers send it as a frame.
          if (request.headers.authorization) {
            request.token = authorize(services.tokens, limiter, { ip: request.ip, headers: request.headers, app: (request.params as AppParams).app }, 'console')
          }
        },
      },
    )
  }

  ctx.route(app, 'rpc', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    const body = request.body as { expr: string; timeoutMs?: number }
    const current = await currentReleaseId(services.paths, name)
    if (!current || !services.supervisor.isUp(name)) throw problem('NODE_NOT_RUNNING', `The node of "${name}" is not running; start it (POST /v1/apps/${name}/start) first.`)
    const settings = services.apps.settings(name)
    const r = await services.supervisor.command(name, current, settings.commands.rpc, [body.expr], body.timeoutMs ?? 30_000)
    // The expression is an operator action and goes to the audit trail (truncated); its output does not.
    services.events.record({ app: name, actor: request.token?.name, action: 'rpc', outcome: r.code === 0 ? 'ok' : 'error', detail: { expr: body.expr.slice(0, 500), code: r.code, timedOut: r.timedOut } })
    return { code: r.code, output: r.output, timedOut: r.timedOut, ms: r.ms }
  })

  ctx.route(app, 'listSessions', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    return { sessions: services.sessions.list(name) }
  })

  ctx.route(app, 'getRecording', async (request, reply: FastifyReply) => {
    const { app: name, id } = request.params as AppParams & { id: string }
    requireApp(services, name)
    const info = services.sessions.get(name, id)
    if (!info) throw problem('SESSION_NOT_FOUND', `App "${name}" has no console session "${id}".`)
    const file = services.sessions.recordingPath(name, id)
    if (!file || !fs.existsSync(file)) throw problem('RECORDING_GONE', `The recording of session ${id} was removed by retention (BERTH_KEEP_RECORDINGS).`)
    reply.type('application/x-asciicast').header('content-disposition', `attachment; filename="${name}-${id}.cast"`)
    return reply.send(fs.createReadStream(file))
  })

  ctx.route(app, 'consolePage', async (_request, reply) => {
    reply.type('text/html; charset=utf-8').header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer').header('cache-control', 'no-store')
    return reply.send(fs.createReadStream(path.join(ASSETS_DIR, 'console.html')))
  })

  ctx.route(app, 'consoleAsset', async (request, reply) => {
    const asset = ASSETS[(request.params as { name: string }).name]
    if (!asset) throw problem('ROUTE_NOT_FOUND', 'No such asset.')
    reply.type(asset.type).header('cache-control', 'public, max-age=3600').header('x-content-type-options', 'nosniff')
    return reply.send(fs.createReadStream(asset.file))
  })
}

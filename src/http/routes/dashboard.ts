// Routes the operator dashboard needs beyond the app routes: the token's own view of itself, and the audit
// events of the apps it may see as a server-sent event stream (bounded per client, ended with the token).

import type { FastifyInstance } from 'fastify'
import { allowsApp, hasScope } from '../../auth/tokens.js'
import { problem } from '../../errors.js'
import { withoutConsoleDetail, type RecordedEvent } from '../../store/events.js'
import type { RouteContext } from '../context.js'

/** A comment line this often keeps proxies and browsers from closing a quiet stream. */
export const KEEPALIVE_MS = 15_000
/** What may wait for one slow client before it is dropped: a reader that stopped must not grow berth's heap. */
export const MAX_BUFFERED_BYTES = 1024 * 1024

export default async function dashboardRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services } = ctx
  // Streams never end by themselves: closing berth ends them first, or it would wait out its grace period.
  const streams = new Set<() => void>()
  app.addHook('preClose', (done) => {
    for (const end of [...streams]) end()
    done()
  })

  ctx.route(app, 'whoami', async (request) => {
    const t = request.token!
    return { id: t.id, name: t.name, scopes: t.scopes, apps: t.apps, createdAt: t.createdAt, lastUsedAt: t.lastUsedAt, expiresAt: t.expiresAt }
  })

  ctx.route(app, 'streamEvents', async (request, reply) => {
    const token = request.token!
    const only = request.query.app
    if (only !== undefined && !allowsApp(token, only)) {
      throw problem('FORBIDDEN_APP', `Token "${token.name}" is limited to ${token.apps!.join(', ')} and may not see "${only}".`)
    }
    let finish = (_type: 'end' | 'overflow', _reason: string) => {}
    // A stream slot of the token's (and of the app's, for ?app=): 429 TOO_MANY_STREAMS when they are taken.
    const release = ctx.streams.acquire(token, only ?? null)
    let unhold: () => void
    try {
      // Throws UNAUTHORIZED (answered as a problem) when the token was revoked since it was checked.
      unhold = services.tokenWatch.hold(token, (end) => finish('end', end.reason))
    } catch (err) {
      release()
      throw err
    }
    const res = reply.hijack().raw
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-accel-buffering': 'no' })
    res.write(': berth audit events\n\n')

    let done = false
    const mayConsole = hasScope(token, 'console')
    const send = (text: string) => {
      if (done) return
      if (res.writableLength > MAX_BUFFERED_BYTES) return finish('overflow', `more than ${MAX_BUFFERED_BYTES} bytes waited for this client; reconnect and read the state again`)
      res.write(text)
    }
    const listener = (e: RecordedEvent) => {
      if (!allowsApp(token, e.app) || (only !== undefined && e.app !== only)) return
      const { line: _line, ...event } = e
      send(`event: audit\ndata: ${JSON.stringify(mayConsole ? event : withoutConsoleDetail(event))}\n\n`)
    }
    const unsubscribe = services.events.subscribe(listener)
    const keepalive = setInterval(() => send(': keepalive\n\n'), KEEPALIVE_MS)
    const onShutdown = () => finish('end', 'berth is shutting down')
    services.shutdown.signal.addEventListener('abort', onShutdown, { once: true })
    streams.add(onShutdown)
    const cleanup = () => {
      done = true
      release()
      streams.delete(onShutdown)
      clearInterval(keepalive)
      unsubscribe()
      unhold()
      services.shutdown.signal.removeEventListener('abort', onShutdown)
    }
    finish = (type, reason) => {
      if (done) return
      cleanup()
      res.end(`event: ${type}\ndata: ${JSON.stringify({ reason })}\n\n`)
      // A client that does not read would keep the socket (and the unsent bytes) forever.
      setTimeout(() => res.destroy(), 5000).unref()
    }
    res.on('close', cleanup)
  })
}

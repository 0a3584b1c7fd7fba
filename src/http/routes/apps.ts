// Routes about apps as a whole: list, status, settings, environment (names only on the way out), audit events.

import type { FastifyInstance } from 'fastify'
import { allowsApp } from '../../auth/tokens.js'
import { validateEnv } from '../../deploy/settings.js'
import { currentReleaseId } from '../../intake/cleanup.js'
import { APP_NAME } from '../../paths.js'
import { problem } from '../../errors.js'
import type { RouteContext } from '../app.js'
import { answer, requireApp } from './deployments.js'
import { follow, tail, type LogSource } from '../../supervision/logs.js'

type AppParams = { app: string }

export default async function appRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services } = ctx
  const { releases } = services
  ctx.route(app, 'listApps', async (request) => ({
    apps: releases.apps().filter((a) => allowsApp(request.token!, a.name)),
  }))

  ctx.route(app, 'getApp', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    const node = services.supervisor.status(name)
    const last = services.deployments.list(name, 20).find((d) => d.kind === 'deploy' || d.kind === 'rollback') ?? null
    return {
      name,
      current: await currentReleaseId(services.paths, name),
      node: { ...node, health: services.policy.healthOf(name) },
      lastDeployment: last,
    }
  })

  ctx.route(app, 'getSettings', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    return services.apps.settings(name)
  })

  ctx.route(app, 'putSettings', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    const patch = request.body as Record<string, unknown>
    const settings = services.apps.saveSettings(name, patch)
    services.events.record({ app: name, actor: request.token?.name, action: 'settings.update', outcome: 'ok', detail: { changed: Object.keys(patch) } })
    return settings
  })

  ctx.route(app, 'getEnv', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    return { names: Object.keys(services.apps.env(name)).sort() }
  })

  ctx.route(app, 'putEnv', async (request, reply) => {
    const { app: name } = request.params as AppParams
    if (!APP_NAME.test(name)) throw problem('INVALID_APP_NAME', `App name "${name}" must match ${APP_NAME.source}.`)
    const env = validateEnv(request.body)
    services.releases.ensureApp(name)
    services.apps.setEnv(name, env)
    // Names only: values are secrets and never reach the audit trail or the logs.
    services.events.record({ app: name, actor: request.token?.name, action: 'env.replace', outcome: 'ok', detail: { names: Object.keys(env).sort() } })
    if ((request.query as { restart?: boolean }).restart && services.supervisor.isUp(name)) {
      const d = await services.deployer.operate(name, 'restart', request.token?.name ?? null)
      await answer(services, request, reply, d, true)
      if (reply.sent) return reply
    }
    return { names: Object.keys(env).sort() }
  })

  ctx.route(app, 'getLogs', async (request, reply) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    const q = request.query as { lines?: number; follow?: boolean; source?: LogSource }
    const dir = services.paths.log(name)
    const source = q.source ?? 'console'
    const head = tail(dir, source, q.lines ?? 100)
    reply.type('text/plain; charset=utf-8')
    if (!q.follow) return head.length ? `${head.join('\n')}\n` : ''
    // A stream that outlives node restarts (it follows the files, not the process) until the client leaves,
    // berth shuts down, or the token is revoked or expires.
    const gone = new AbortController()
    const unhold = services.tokenWatch.hold(request.token!, () => gone.abort())
    request.raw.on('close', () => gone.abort())
    services.shutdown.signal.addEventListener('abort', () => gone.abort(), { once: true })
    gone.signal.addEventListener('abort', unhold, { once: true })
    const stream = follow(dir, source, gone.signal)
    if (head.length) stream.unshift(Buffer.from(`${head.join('\n')}\n`))
    reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff')
    // Headers go out at once, so a client can tell "waiting for lines" from "server hung".
    reply.raw.once('pipe', () => reply.raw.flushHeaders())
    return reply.send(stream)
  })

  ctx.route(app, 'listEvents', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    return { events: services.events.list(name, (request.query as { limit?: number }).limit ?? 100) }
  })
}

// Routes about apps as a whole: list, status, settings, environment (names only on the way out), audit events.

import type { FastifyInstance } from 'fastify'
import { allowsApp } from '../../auth/tokens.js'
import { validateEnv } from '../../deploy/settings.js'
import { currentReleaseId } from '../../intake/cleanup.js'
import { APP_NAME } from '../../paths.js'
import { problem } from '../../errors.js'
import type { RouteContext } from '../app.js'
import { answer, requireApp } from './deployments.js'

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
      node,
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

  ctx.route(app, 'listEvents', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    return { events: services.events.list(name, (request.query as { limit?: number }).limit ?? 100) }
  })
}

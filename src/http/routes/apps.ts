// Routes about apps as a whole.

import type { FastifyInstance } from 'fastify'
import { allowsApp } from '../../auth/tokens.js'
import type { RouteContext } from '../app.js'

export default async function appRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { releases } = ctx.services
  ctx.route(app, 'listApps', async (request) => ({
    apps: releases.apps().filter((a) => allowsApp(request.token!, a.name)),
  }))
}

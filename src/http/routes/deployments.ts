// Routes for deployments, rollbacks and operating the node: validate, call the deployer, answer (see reply.ts
// for ?wait=true). The state machine itself is in src/deploy, the dry run's plan in src/deploy/plan.ts.

import type { FastifyInstance } from 'fastify'
import { planDeploy, planRollback } from '../../deploy/plan.js'
import { problem } from '../../errors.js'
import { requireApp, resolveRelease } from '../../releases/lookup.js'
import type { RouteContext } from '../context.js'
import { actor, answerDeployment } from '../reply.js'

export default async function deploymentRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services } = ctx
  const { releases, deployer, deployments } = services

  ctx.route(app, 'createDeployment', async (request, reply) => {
    const { app: name } = request.params
    requireApp(releases, name)
    const { migrate, rollout } = request.body
    const release = resolveRelease(releases, name, request.body.release)
    if (request.query.dryRun) return planDeploy(services, name, release, { migrate })
    const d = await deployer.deploy(name, release, actor(request), { migrate, rollout })
    return answerDeployment(services, request, reply, d, request.query.wait)
  })

  ctx.route(app, 'listDeployments', async (request) => {
    requireApp(releases, request.params.app)
    return { deployments: deployments.list(request.params.app, 50, request.query.rollout) }
  })

  ctx.route(app, 'getDeployment', async (request) => {
    const { app: name, id } = request.params
    requireApp(releases, name)
    const d = deployments.get(name, id)
    if (!d) throw problem('DEPLOYMENT_NOT_FOUND', `App "${name}" has no deployment "${id}".`)
    return d
  })

  ctx.route(app, 'rollback', async (request, reply) => {
    const { app: name } = request.params
    requireApp(releases, name)
    const body = request.body ?? {}
    const to = body.to ? resolveRelease(releases, name, body.to) : null
    if (request.query.dryRun) return planRollback(services, name, to, { runRollbackExpr: body.runRollbackExpr })
    const d = await deployer.rollback(name, to, actor(request), { runRollbackExpr: body.runRollbackExpr, rollout: body.rollout })
    return answerDeployment(services, request, reply, d, request.query.wait)
  })

  for (const action of ['start', 'stop', 'restart'] as const) {
    ctx.route(app, `${action}App`, async (request, reply) => {
      const { app: name } = request.params
      requireApp(releases, name)
      const d = await deployer.operate(name, action, actor(request))
      return answerDeployment(services, request, reply, d, request.query.wait)
    })
  }
}

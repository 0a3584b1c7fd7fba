// Routes for deployments, rollbacks and operating the node. ?wait=true answers when the work has finished;
// a finished deployment that did not succeed is a 422 problem carrying the deployment, so curl --fail fails CI.

import type { FastifyInstance, FastifyReply } from 'fastify'
import { problem } from '../../errors.js'
import type { Deployment } from '../../store/deployments.js'
import type { Services } from '../../services.js'
import type { RouteContext } from '../app.js'
import { resolveRelease } from './releases.js'
import { sendProblem } from '../problem.js'
import type { FastifyRequest } from 'fastify'

type AppParams = { app: string }
type Wait = { wait?: boolean }

export function requireApp(services: Services, app: string): void {
  if (!services.releases.appExists(app)) throw problem('APP_NOT_FOUND', `There is no app "${app}"; an app is created by its first upload (or PUT /v1/apps/${app}/env).`)
}

/** Answers 202 with the started deployment, or waits for it and answers with its outcome. */
export async function answer(services: Services, request: FastifyRequest, reply: FastifyReply, d: Deployment, wait: boolean | undefined): Promise<unknown> {
  if (!wait) {
    reply.code(202).header('location', `/v1/apps/${d.app}/deployments/${d.id}`)
    return d
  }
  const done = (await services.deployer.finished(d.id)) ?? services.deployments.get(d.app, d.id)!
  if (done.state === 'succeeded') return done
  const code = done.state === 'rolled_back' ? 'DEPLOYMENT_ROLLED_BACK' : 'DEPLOYMENT_FAILED'
  return sendProblem(request, reply, problem(code, `${done.kind} ${done.id} of ${done.app} ended ${done.state}: ${done.reason}`, { deployment: done }))
}

export default async function deploymentRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services } = ctx

  ctx.route(app, 'createDeployment', async (request, reply) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    const body = request.body as { release: string }
    const release = resolveRelease(services, name, body.release)
    const d = await services.deployer.deploy(name, release, request.token?.name ?? null)
    return answer(services, request, reply, d, (request.query as Wait).wait)
  })

  ctx.route(app, 'listDeployments', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    return { deployments: services.deployments.list(name) }
  })

  ctx.route(app, 'getDeployment', async (request) => {
    const { app: name, id } = request.params as AppParams & { id: string }
    requireApp(services, name)
    const d = services.deployments.get(name, id)
    if (!d) throw problem('DEPLOYMENT_NOT_FOUND', `App "${name}" has no deployment "${id}".`)
    return d
  })

  ctx.route(app, 'rollback', async (request, reply) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    const body = (request.body ?? {}) as { to?: string; runRollbackExpr?: boolean }
    const to = body.to ? resolveRelease(services, name, body.to) : null
    const d = await services.deployer.rollback(name, to, request.token?.name ?? null, { runRollbackExpr: body.runRollbackExpr })
    return answer(services, request, reply, d, (request.query as Wait).wait)
  })

  for (const action of ['start', 'stop', 'restart'] as const) {
    ctx.route(app, `${action}App`, async (request, reply) => {
      const { app: name } = request.params as AppParams
      requireApp(services, name)
      const d = await services.deployer.operate(name, action, request.token?.name ?? null)
      return answer(services, request, reply, d, (request.query as Wait).wait)
    })
  }
}

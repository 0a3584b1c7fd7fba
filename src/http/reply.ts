// Reply helpers that routes share: how a deployment is answered (202 now, or its outcome with ?wait=true,
// where a failure is a 422 problem carrying the deployment so that curl --fail fails CI), and release views.

import type { FastifyReply, FastifyRequest } from 'fastify'
import { problem } from '../errors.js'
import type { Services } from '../services.js'
import type { Deployment } from '../store/deployments.js'
import type { Release } from '../store/releases.js'
import { sendProblem } from './problem.js'

/** Answers 202 with the started deployment, or waits for it and answers with its outcome. */
export async function answerDeployment(services: Services, request: FastifyRequest, reply: FastifyReply, d: Deployment, wait: boolean | undefined): Promise<unknown> {
  if (!wait) {
    reply.code(202).header('location', `/v1/apps/${d.app}/deployments/${d.id}`)
    return d
  }
  const done = (await services.deployer.finished(d.id)) ?? services.deployments.get(d.app, d.id)!
  if (done.state === 'succeeded') return done
  const code = done.state === 'rolled_back' ? 'DEPLOYMENT_ROLLED_BACK' : 'DEPLOYMENT_FAILED'
  return sendProblem(request, reply, problem(code, `${done.kind} ${done.id} of ${done.app} ended ${done.state}: ${done.reason}`, { deployment: done }))
}

export function releaseView(r: Release, currentId: string | null) {
  return { ...r, current: r.id === currentId }
}

/** The token's name, as the actor of what the request does. */
export function actor(request: FastifyRequest): string | null {
  return request.token?.name ?? null
}

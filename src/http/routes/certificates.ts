// Routes for the certificates the edge serves an app's hostnames with: the list (with hostnames that have
// none yet), installing a custom one, and removing it. Checks and storage live in src/edge/certs.ts.

import type { FastifyInstance } from 'fastify'
import { requireApp } from '../../releases/lookup.js'
import type { RouteContext } from '../context.js'
import { actor } from '../reply.js'

/** A PEM chain of a few certificates and a key are a few KiB; this leaves room for long RSA chains, nothing more. */
const BODY_LIMIT = 128 * 1024

export default async function certificateRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { certificates, releases } = ctx.services

  ctx.route(app, 'listCertificates', async (request) => {
    requireApp(releases, request.params.app)
    return { certificates: certificates.list(request.params.app) }
  })

  ctx.route(
    app,
    'putCertificate',
    async (request) => {
      const { app: name, host } = request.params
      requireApp(releases, name)
      return certificates.putCustom(name, host.toLowerCase(), request.body.cert, request.body.key, actor(request))
    },
    { bodyLimit: BODY_LIMIT },
  )

  ctx.route(app, 'deleteCertificate', async (request, reply) => {
    const { app: name, host } = request.params
    requireApp(releases, name)
    await certificates.deleteCustom(name, host.toLowerCase(), actor(request))
    return reply.code(204).send()
  })
}

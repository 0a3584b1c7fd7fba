// Routes for releases: upload (raw or multipart body), list, show, delete. The work is in intake/.

import multipart from '@fastify/multipart'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { problem } from '../../errors.js'
import { deleteRelease } from '../../intake/cleanup.js'
import { expectedSha256 } from '../../intake/digest.js'
import { currentReleaseId, currentReleaseIdSync } from '../../releases/current.js'
import { requireApp, resolveRelease } from '../../releases/lookup.js'
import type { Services } from '../../services.js'
import type { RouteContext, RouteTypes } from '../context.js'
import { actor, answerDeployment, releaseView } from '../reply.js'

type UploadRequest = FastifyRequest<RouteTypes<'uploadRelease'>> | FastifyRequest<RouteTypes<'uploadReleasePut'>>

async function upload(services: Services, request: UploadRequest) {
  const multipartBody = request.isMultipart()
  const sha256 = expectedSha256(request.query.sha256, request.headers['content-digest'] as string | undefined, multipartBody)
  let body: AsyncIterable<Buffer>
  if (multipartBody) {
    const file = await request.file({ limits: { fileSize: services.config.limits.maxUploadBytes, files: 1, fields: 16, parts: 32 } })
    if (!file || file.fieldname !== 'release') {
      file?.file.resume()
      throw problem('MULTIPART_NO_FILE', 'The multipart form has no file field named "release"; send -F release=@app.tar.gz.')
    }
    body = (async function* () {
      for await (const chunk of file.file) yield chunk as Buffer
      if (file.file.truncated) throw problem('MULTIPART_TRUNCATED', 'The multipart file was cut at BERTH_MAX_UPLOAD_BYTES.')
    })()
  } else {
    body = request.raw
  }
  const length = request.headers['content-length']
  // An upload lasts as long as its body takes to arrive; a token revoked or expired meanwhile ends it.
  const revoked = new AbortController()
  const unhold = services.tokenWatch.hold(request.token!, (end) => revoked.abort(end.problem))
  try {
    return await services.intake.upload({
      app: request.params.app,
      body,
      sha256,
      declaredLength: !multipartBody && length ? Number(length) : null,
      actor: actor(request),
      holder: request.token!.id,
      signal: AbortSignal.any([services.shutdown.signal, revoked.signal]),
    })
  } finally {
    unhold()
  }
}

export default async function releaseRoutes(app: FastifyInstance, ctx: RouteContext): Promise<void> {
  const { services } = ctx

  // Upload routes live in their own context: any content type but multipart is the raw tarball.
  await app.register(async (scoped) => {
    scoped.removeAllContentTypeParsers()
    await scoped.register(multipart, { limits: { fileSize: services.config.limits.maxUploadBytes } })
    scoped.addContentTypeParser('*', (_request, _payload, done) => done(null))
    const handler = async (request: UploadRequest, reply: FastifyReply) => {
      let result
      try {
        result = await upload(services, request)
      } catch (err) {
        // The client may still be sending a refused body; closing is cheaper than reading it to the end.
        reply.header('connection', 'close')
        throw err
      }
      const { release, created } = result
      if (created) reply.code(201).header('location', `/v1/apps/${release.app}/releases/${release.id}`)
      if (request.query.deploy) {
        // ?deploy=true: the answer is the release with its finished deployment (a failed one is a 422 problem).
        const d = await services.deployer.deploy(release.app, release, actor(request), { migrate: request.query.migrate, rollout: request.query.rollout })
        const done = await answerDeployment(services, request, reply, d, true)
        if (reply.sent) return reply
        return { ...releaseView(release, await currentReleaseId(services.paths, release.app)), deployment: done }
      }
      return releaseView(release, await currentReleaseId(services.paths, release.app))
    }
    ctx.route(scoped, 'uploadRelease', handler)
    ctx.route(scoped, 'uploadReleasePut', handler)
  })

  ctx.route(app, 'listReleases', async (request) => {
    const { app: name } = request.params
    requireApp(services.releases, name)
    const current = currentReleaseIdSync(services.paths, name)
    return { releases: services.releases.list(name).map((r) => releaseView(r, current)) }
  })

  ctx.route(app, 'getRelease', async (request) => {
    const { app: name, id } = request.params
    requireApp(services.releases, name)
    return releaseView(resolveRelease(services.releases, name, id), currentReleaseIdSync(services.paths, name))
  })

  ctx.route(app, 'deleteRelease', async (request) => {
    const { app: name, id } = request.params
    requireApp(services.releases, name)
    const release = resolveRelease(services.releases, name, id)
    const deleted = await deleteRelease(services, name, release.id, actor(request))
    return releaseView(deleted, null)
  })
}

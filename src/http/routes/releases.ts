// Routes for releases: upload (raw or multipart body), list, show, delete. The work is in intake/.

import multipart from '@fastify/multipart'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { currentReleaseId, deleteRelease } from '../../intake/cleanup.js'
import { expectedSha256 } from '../../intake/digest.js'
import { problem } from '../../errors.js'
import type { Release } from '../../store/releases.js'
import type { Services } from '../../services.js'
import type { RouteContext } from '../app.js'
import { RELEASE_ID } from '../../paths.js'
import { answer } from './deployments.js'

type AppParams = { app: string }
type ReleaseParams = { app: string; id: string }

export function releaseView(r: Release, currentId: string | null) {
  return { ...r, current: r.id === currentId }
}

/** Finds a release by id, or by a bare version when exactly one release has it. */
export function resolveRelease(services: Services, app: string, ref: string): Release {
  const byId = RELEASE_ID.test(ref) ? services.releases.get(app, ref) : null
  if (byId) return byId
  const byVersion = services.releases.byVersion(app, ref)
  if (byVersion.length === 1) return byVersion[0]!
  if (byVersion.length > 1) {
    throw problem('RELEASE_AMBIGUOUS_VERSION', `Version "${ref}" names ${byVersion.length} releases of "${app}" (${byVersion.map((r) => r.id).join(', ')}); use a release id.`)
  }
  throw problem('RELEASE_NOT_FOUND', `App "${app}" has no release "${ref}"; list them with GET /v1/apps/${app}/releases.`)
}

function requireApp(services: Services, app: string): void {
  if (!services.releases.appExists(app)) throw problem('APP_NOT_FOUND', `There is no app "${app}"; an app is created by its first upload.`)
}

async function upload(services: Services, request: FastifyRequest<{ Params: AppParams; Querystring: { sha256?: string } }>) {
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
      actor: request.token?.name ?? null,
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
    const handler = async (request: FastifyRequest, reply: import('fastify').FastifyReply) => {
      const req = request as FastifyRequest<{ Params: AppParams; Querystring: { sha256?: string } }>
      let result
      try {
        result = await upload(services, req)
      } catch (err) {
        // The client may still be sending a refused body; closing is cheaper than reading it to the end.
        reply.header('connection', 'close')
        throw err
      }
      const { release, created } = result
      if (created) reply.code(201).header('location', `/v1/apps/${release.app}/releases/${release.id}`)
      if ((req.query as { deploy?: boolean }).deploy) {
        // ?deploy=true: the answer is the release with its finished deployment (a failed one is a 422 problem).
        const d = await services.deployer.deploy(release.app, release, request.token?.name ?? null)
        const done = await answer(services, request, reply, d, true)
        if (reply.sent) return reply
        return { ...releaseView(release, await currentReleaseId(services.paths, release.app)), deployment: done }
      }
      return releaseView(release, await currentReleaseId(services.paths, release.app))
    }
    ctx.route(scoped, 'uploadRelease', handler)
    ctx.route(scoped, 'uploadReleasePut', handler)
  })

  ctx.route(app, 'listReleases', async (request) => {
    const { app: name } = request.params as AppParams
    requireApp(services, name)
    const current = await currentReleaseId(services.paths, name)
    return { releases: services.releases.list(name).map((r) => releaseView(r, current)) }
  })

  ctx.route(app, 'getRelease', async (request) => {
    const { app: name, id } = request.params as ReleaseParams
    requireApp(services, name)
    return releaseView(resolveRelease(services, name, id), await currentReleaseId(services.paths, name))
  })

  ctx.route(app, 'deleteRelease', async (request) => {
    const { app: name, id } = request.params as ReleaseParams
    requireApp(services, name)
    const release = resolveRelease(services, name, id)
    const deleted = await deleteRelease(services, name, release.id, request.token?.name ?? null)
    return releaseView(deleted, null)
  })
}

// Release intake: takes an upload stream, hashes and unpacks it in one pass into uploads/, checks it is a
// release of the right app, and moves it into apps/APP/releases/ID. Nothing half-done is ever listed.

import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import type { Limits } from '../config.js'
import { BerthError, fromFsError, isBerthError, problem } from '../errors.js'
import { abortable, exists, fsyncDir, removeTree } from '../fsutil.js'
import { APP_NAME, type Paths } from '../paths.js'
import type { EventStore } from '../store/events.js'
import { releaseId } from '../store/ids.js'
import type { Release, ReleaseKind, ReleaseStore } from '../store/releases.js'
import { inspectRelease } from './inspect.js'
import { addMetadata, METADATA_FILE, writeMetadata } from './metadata.js'
import { UploadPace } from './pace.js'
import { UploadSlots } from './slots.js'
import { SafeUnpacker } from './unpack.js'

export interface IntakeDeps {
  paths: Paths
  releases: ReleaseStore
  events: EventStore
  limits: Limits
  log: Logger
  /** The release name `app` takes (its releaseName setting, else the app's own name); default: the app's name. */
  releaseNameOf?: (app: string) => string
}

export interface UploadRequest {
  app: string
  body: AsyncIterable<Buffer>
  /** Expected sha256 (lowercase hex) from ?sha256= or Content-Digest. */
  sha256?: string | null
  /** Content-Length when the client sent one; refused early when over the limit. */
  declaredLength?: number | null
  actor?: string | null
  /** Who holds the upload's slot (the token's id): one token may hold only so many at once. */
  holder?: string | null
  /** Aborts the upload (graceful shutdown, client gone); a BerthError reason is what the uploader is told. */
  signal?: AbortSignal
}

export interface UploadResult {
  release: Release
  created: boolean
}

export class Intake {
  private readonly slots: UploadSlots
  /** Serialises the final move+insert per app so that two uploads of the same bytes end as one release. */
  private readonly finishing = new Map<string, Promise<unknown>>()

  constructor(private readonly deps: IntakeDeps) {
    this.slots = new UploadSlots(deps.limits)
  }

  get inFlight(): number {
    return this.slots.inUse
  }

  async upload(req: UploadRequest): Promise<UploadResult> {
    const { limits, log } = this.deps
    if (!APP_NAME.test(req.app)) throw problem('INVALID_APP_NAME', `App name "${req.app.slice(0, 80)}" must match ${APP_NAME.source} (the OTP application name).`)
    if (req.declaredLength != null && req.declaredLength > limits.maxUploadBytes) {
      throw problem('UPLOAD_TOO_LARGE', `The upload is ${req.declaredLength} bytes; the limit is ${limits.maxUploadBytes} (BERTH_MAX_UPLOAD_BYTES).`, { limit: limits.maxUploadBytes })
    }
    const release = this.slots.take(req.app, req.holder ?? null)
    const started = Date.now()
    let staging: string | null = null
    try {
      await fs.mkdir(this.deps.paths.uploads, { recursive: true, mode: 0o700 })
      await this.checkSpace(req.declaredLength ?? null)
      staging = await fs.mkdtemp(path.join(this.deps.paths.uploads, `${req.app}-`))
      const { sha256, size, stats } = await this.receive(req, staging)
      if (req.sha256 && req.sha256 !== sha256) {
        throw problem('CHECKSUM_MISMATCH', `The upload's sha256 is ${sha256} but ${req.sha256} was expected; the file was damaged in transit or the wrong file was sent.`, { expected: req.sha256, actual: sha256 })
      }
      const identity = await inspectRelease(path.join(staging, 'tree'), req.app, this.deps.releaseNameOf?.(req.app) ?? req.app)
      // Links were checked against the release root the unpacker chose; a release from any other root is refused.
      if (identity.root !== path.join(staging, 'tree', stats.releaseRoot)) {
        throw problem('RELEASE_INVALID', `The release directory "${path.relative(path.join(staging, 'tree'), identity.root)}" is not the one its links were checked against; upload the tarball \`mix release\` writes.`)
      }
      const result = await this.finish(req, identity.root, { sha256, size, version: identity.version, kind: identity.kind, unpackedBytes: stats.bytes, files: stats.files })
      log.info({ app: req.app, release: result.release.id, created: result.created, bytes: size, unpackedBytes: stats.bytes, files: stats.files, ms: Date.now() - started }, result.created ? 'release stored' : 'release already present')
      return result
    } catch (err) {
      const e = fromFsError(err)
      log.warn({ app: req.app, code: isBerthError(e) ? e.code : undefined, err: isBerthError(e) ? undefined : e, ms: Date.now() - started }, 'upload refused')
      // Clean up first: on a full disk the audit row itself needs the space the staging tree holds.
      if (staging) await removeTree(staging).catch((rmErr) => log.error({ err: rmErr, staging }, 'could not remove staging directory'))
      staging = null
      try {
        this.deps.events.record({ app: req.app, actor: req.actor, action: 'release.upload', outcome: 'error', detail: { code: isBerthError(e) ? e.code : 'INTERNAL' } })
      } catch (auditErr) {
        log.error({ err: auditErr }, 'could not record the refused upload')
      }
      throw e
    } finally {
      release()
      if (staging) await removeTree(staging).catch((err) => log.error({ err, staging }, 'could not remove staging directory'))
    }
  }

  /**
   * Refuses early when the disk cannot hold the release: a release unpacks to ~2-4x its tarball, so 4x the
   * declared size (or 64 MiB for a body of unknown length) plus a 64 MiB margin must be free.
   */
  private async checkSpace(declared: number | null): Promise<void> {
    const st = await fs.statfs(this.deps.paths.uploads)
    const free = st.bavail * st.bsize
    const need = (declared === null ? 64 * 1024 * 1024 : declared * 4) + 64 * 1024 * 1024
    if (free < need) {
      throw problem('INSUFFICIENT_STORAGE', `The data directory has ${Math.floor(free / 1048576)} MiB free; this upload needs about ${Math.ceil(need / 1048576)} MiB to unpack. Free space (or delete old releases) and upload again.`, { free, needed: need })
    }
  }

  /** Streams the body through the hash and the unpacker, with size, idle, pace and abort limits. */
  private async receive(req: UploadRequest, staging: string) {
    const { limits } = this.deps
    const hash = crypto.createHash('sha256')
    const unpacker = new SafeUnpacker(path.join(staging, 'tree'), limits)
    await fs.mkdir(path.join(staging, 'tree'))
    const iterator = req.body[Symbol.asyncIterator]()
    let size = 0
    let timer: NodeJS.Timeout | undefined
    // One controller for every reason to stop (idle, shutdown); waits end on it without leaking per chunk.
    const halt = new AbortController()
    const stop = (err: BerthError) => halt.abort(err)
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => stop(problem('UPLOAD_TIMEOUT', `No data arrived for ${limits.uploadIdleMs} ms; the upload was abandoned. Check the network and upload again.`)), limits.uploadIdleMs)
    }
    // The signal's reason says why when it is one of ours (the uploader's token was revoked); else shutdown.
    const onAbort = () => stop(isBerthError(req.signal?.reason) ? req.signal.reason : problem('SHUTTING_DOWN', 'berth is shutting down and abandoned this upload; upload again once it is back.'))
    req.signal?.addEventListener('abort', onAbort, { once: true })
    if (req.signal?.aborted) onAbort()
    const pace = new UploadPace(limits, stop)
    try {
      arm()
      for (;;) {
        const next = await abortable(iterator.next(), halt.signal)
        if (next.done) break
        const chunk = next.value
        arm()
        pace.add(chunk.length)
        size += chunk.length
        if (size > limits.maxUploadBytes) {
          throw problem('UPLOAD_TOO_LARGE', `The upload passed ${limits.maxUploadBytes} bytes (BERTH_MAX_UPLOAD_BYTES) and was refused.`, { limit: limits.maxUploadBytes })
        }
        hash.update(chunk)
        await abortable(unpacker.write(chunk), halt.signal)
      }
      // The body is in: what remains (the unpacker's end) is berth's work, not the client's pace.
      clearTimeout(timer)
      pace.end()
      if (size === 0) throw problem('UPLOAD_EMPTY', 'The upload has no bytes; send the release tarball as the request body (curl -T app.tar.gz or --data-binary @app.tar.gz).')
      const stats = await abortable(unpacker.end(), halt.signal)
      return { sha256: hash.digest('hex'), size, stats }
    } catch (err) {
      await unpacker.destroy(err as Error)
      // The rest of the body is not read: the route answers with Connection: close, which ends it.
      throw mapStreamError(err)
    } finally {
      clearTimeout(timer)
      pace.end()
      req.signal?.removeEventListener('abort', onAbort)
    }
  }

  private async finish(req: UploadRequest, root: string, meta: { sha256: string; size: number; version: string; kind: ReleaseKind; unpackedBytes: number; files: number }): Promise<UploadResult> {
    const prev = this.finishing.get(req.app) ?? Promise.resolve()
    const job = prev.catch(() => {}).then(() => this.moveIntoPlace(req, root, meta))
    this.finishing.set(req.app, job)
    try {
      return await job
    } finally {
      if (this.finishing.get(req.app) === job) this.finishing.delete(req.app)
    }
  }

  private async moveIntoPlace(req: UploadRequest, root: string, meta: { sha256: string; size: number; version: string; kind: ReleaseKind; unpackedBytes: number; files: number }): Promise<UploadResult> {
    const { paths, releases, events, log } = this.deps
    const existing = releases.bySha(req.app, meta.sha256)
    if (existing) return { release: existing, created: false }

    const id = releaseId(meta.version, meta.sha256)
    const dest = paths.release(req.app, id)
    const recorded = releases.get(req.app, id)
    if (recorded) {
      // Re-imported from a directory without metadata, so only the id's 12 hex digits of its checksum were
      // known: these bytes are that release. Complete its record (and its directory's) instead of replacing it.
      if (recorded.sha256.length === 64) throw problem('INTERNAL', `Release ${id} already exists with another sha256 (${recorded.sha256}); two different tarballs share the id's 48 bits of checksum. Rebuild the release (any change gives it another id) and upload again.`)
      releases.setChecksum(req.app, id, meta.sha256, meta.size)
      const release = releases.get(req.app, id)!
      await addMetadata(dest, release).catch((err) => log.warn({ app: req.app, release: id, err }, `could not add ${METADATA_FILE}`))
      return { release, created: false }
    }
    const releasesDir = paths.releases(req.app)
    // A new app's directory is born closed (0750, berth's group): with isolation it opens to the app's own user
    // only (isolation/app-dirs.ts), never to every local user meanwhile.
    await fs.mkdir(paths.app(req.app), { recursive: true, mode: 0o750 })
    await fs.mkdir(releasesDir, { recursive: true, mode: 0o755 })
    if (await exists(dest)) {
      // A directory of this name with no row is one the catalogue rebuild could not read as a release. It may
      // still be someone's: keep it under another name rather than delete it.
      const aside = `${dest}.unrecorded-${Date.now()}`
      await fs.rename(dest, aside)
      log.warn({ app: req.app, release: id, kept: aside }, 'a directory with this release id but no record was in the way: moved it aside')
    }
    const release: Release = {
      id,
      app: req.app,
      version: meta.version,
      sha256: meta.sha256,
      size: meta.size,
      unpackedBytes: meta.unpackedBytes,
      files: meta.files,
      uploadedAt: new Date().toISOString(),
      uploadedBy: req.actor ?? null,
      kind: meta.kind,
    }
    // The tree describes itself before it gets its name: a directory under releases/ is always complete.
    await writeMetadata(root, release)
    // The directories below root were made read-only by the unpacker.
    await fs.rename(root, dest)
    await fs.chmod(dest, 0o555)
    await fsyncDir(releasesDir)
    releases.insert(release)
    events.record({ app: req.app, actor: req.actor, action: 'release.upload', outcome: 'ok', detail: { release: id, sha256: meta.sha256, size: meta.size, kind: meta.kind } })
    return { release, created: true }
  }
}

function mapStreamError(err: unknown): unknown {
  if (isBerthError(err)) return err
  const code = (err as NodeJS.ErrnoException | null)?.code
  if (code === 'FST_REQ_FILE_TOO_LARGE') return problem('UPLOAD_TOO_LARGE', 'The multipart file passed BERTH_MAX_UPLOAD_BYTES and was refused.')
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as Error)?.message === 'aborted') {
    return problem('UPLOAD_INCOMPLETE', 'The connection closed before the upload finished; upload again.')
  }
  return fromFsError(err)
}

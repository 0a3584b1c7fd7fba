// Owns the upload slots: at most so many uploads at once in all, and fewer for one app or one token, so
// that slow uploads of one app (or one token) never take every slot (issue 23, D4).

import type { Limits } from '../config.js'
import { problem } from '../errors.js'

export class UploadSlots {
  private total = 0
  private readonly byApp = new Map<string, number>()
  private readonly byHolder = new Map<string, number>()

  constructor(private readonly limits: Pick<Limits, 'maxConcurrentUploads' | 'maxUploadsPerApp' | 'maxUploadsPerToken'>) {}

  get inUse(): number {
    return this.total
  }

  /**
   * Takes a slot for an upload to `app` by `holder` (a token id; null when none is known), or throws the
   * problem naming the limit that is reached. Returns the release.
   */
  take(app: string, holder: string | null): () => void {
    const { maxConcurrentUploads, maxUploadsPerApp, maxUploadsPerToken } = this.limits
    const h = holder === null ? 0 : (this.byHolder.get(holder) ?? 0)
    if (holder !== null && h >= maxUploadsPerToken) {
      throw problem('TOO_MANY_UPLOADS_FOR_TOKEN', `This token already has ${h} uploads in progress (BERTH_MAX_UPLOADS_PER_TOKEN); wait for one to finish.`, { limit: maxUploadsPerToken, retryAfter: 5 })
    }
    const a = this.byApp.get(app) ?? 0
    if (a >= maxUploadsPerApp) {
      throw problem('TOO_MANY_UPLOADS_FOR_APP', `App "${app}" already has ${a} uploads in progress (BERTH_MAX_UPLOADS_PER_APP); wait for one to finish.`, { limit: maxUploadsPerApp, retryAfter: 5 })
    }
    if (this.total >= maxConcurrentUploads) {
      throw problem('TOO_MANY_UPLOADS', `${this.total} uploads are in progress (BERTH_MAX_CONCURRENT_UPLOADS); retry in a few seconds.`, { retryAfter: 5 })
    }
    this.total++
    this.byApp.set(app, a + 1)
    if (holder !== null) this.byHolder.set(holder, h + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.total--
      dec(this.byApp, app)
      if (holder !== null) dec(this.byHolder, holder)
    }
  }
}

function dec(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1
  if (n <= 0) map.delete(key)
  else map.set(key, n)
}

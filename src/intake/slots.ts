// Owns counted slots: a total and two keyed counts (per token, per app), each with its limit, and a release
// that is safe to call twice. Upload slots (issue 23, D4) are one use; http/streams.ts counts long-lived answers with it.

import type { Limits } from '../config.js'
import { problem } from '../errors.js'

/** One keyed count: `key` null when the slot counts for nobody there; `refuse` builds the error at the limit. */
export interface KeyedLimit {
  key: string | null
  max: number
  refuse: (held: number) => Error
}

export class Slots {
  private total = 0
  private readonly first = new Map<string, number>()
  private readonly second = new Map<string, number>()

  get held(): number {
    return this.total
  }

  /**
   * Takes a slot, checking the first key's limit, then the second's, then the total (the order picks the
   * error a client sees when several are reached), or throws that limit's error. Returns the release.
   */
  take(first: KeyedLimit, second: KeyedLimit, total: { max: number; refuse: (held: number) => Error }): () => void {
    const a = first.key === null ? 0 : (this.first.get(first.key) ?? 0)
    if (first.key !== null && a >= first.max) throw first.refuse(a)
    const b = second.key === null ? 0 : (this.second.get(second.key) ?? 0)
    if (second.key !== null && b >= second.max) throw second.refuse(b)
    if (this.total >= total.max) throw total.refuse(this.total)
    this.total++
    if (first.key !== null) this.first.set(first.key, a + 1)
    if (second.key !== null) this.second.set(second.key, b + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.total--
      if (first.key !== null) dec(this.first, first.key)
      if (second.key !== null) dec(this.second, second.key)
    }
  }
}

function dec(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1
  if (n <= 0) map.delete(key)
  else map.set(key, n)
}

/** At most so many uploads at once in all, and fewer for one app or one token, so that slow uploads of one app (or one token) never take every slot. */
export class UploadSlots {
  private readonly slots = new Slots()

  constructor(private readonly limits: Pick<Limits, 'maxConcurrentUploads' | 'maxUploadsPerApp' | 'maxUploadsPerToken'>) {}

  get inUse(): number {
    return this.slots.held
  }

  /**
   * Takes a slot for an upload to `app` by `holder` (a token id; null when none is known), or throws the
   * problem naming the limit that is reached. Returns the release.
   */
  take(app: string, holder: string | null): () => void {
    const { maxConcurrentUploads, maxUploadsPerApp, maxUploadsPerToken } = this.limits
    return this.slots.take(
      { key: holder, max: maxUploadsPerToken, refuse: (h) => problem('TOO_MANY_UPLOADS_FOR_TOKEN', `This token already has ${h} uploads in progress (BERTH_MAX_UPLOADS_PER_TOKEN); wait for one to finish.`, { limit: maxUploadsPerToken, retryAfter: 5 }) },
      { key: app, max: maxUploadsPerApp, refuse: (a) => problem('TOO_MANY_UPLOADS_FOR_APP', `App "${app}" already has ${a} uploads in progress (BERTH_MAX_UPLOADS_PER_APP); wait for one to finish.`, { limit: maxUploadsPerApp, retryAfter: 5 }) },
      { max: maxConcurrentUploads, refuse: (n) => problem('TOO_MANY_UPLOADS', `${n} uploads are in progress (BERTH_MAX_CONCURRENT_UPLOADS); retry in a few seconds.`, { retryAfter: 5 }) },
    )
  }
}

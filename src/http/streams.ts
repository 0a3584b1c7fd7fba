// Owns the count of long-lived answers: log follows, audit event streams and console websockets. At most so
// many in all (fewer than the connection cap, the rest being the reserve for other clients and /healthz),
// per token and per app, so that one token cannot hold every connection (issue 23, D2).

import type { HttpLimits } from '../config.js'
import type { TokenInfo } from '../auth/tokens.js'
import { problem } from '../errors.js'

/** What a refused client is told to wait: streams end when their clients leave, not on a schedule. */
const RETRY_AFTER_S = 5

export class StreamLimiter {
  private total = 0
  private readonly byToken = new Map<string, number>()
  private readonly byApp = new Map<string, number>()

  constructor(private readonly limits: Pick<HttpLimits, 'maxStreams' | 'maxStreamsPerToken' | 'maxStreamsPerApp'>) {}

  get open(): number {
    return this.total
  }

  /**
   * Takes a slot for a stream opened with `token` on `app` (null: one that spans apps), or throws
   * TOO_MANY_STREAMS naming the limit. Returns the release, safe to call more than once.
   */
  acquire(token: TokenInfo, app: string | null): () => void {
    const { maxStreams, maxStreamsPerToken, maxStreamsPerApp } = this.limits
    const t = this.byToken.get(token.id) ?? 0
    if (t >= maxStreamsPerToken) {
      throw problem('TOO_MANY_STREAMS', `Token "${token.name}" already has ${t} streams open (log follows, event streams, consoles; BERTH_MAX_STREAMS_PER_TOKEN); close one and retry.`, { limit: maxStreamsPerToken, retryAfter: RETRY_AFTER_S })
    }
    const a = app === null ? 0 : (this.byApp.get(app) ?? 0)
    if (app !== null && a >= maxStreamsPerApp) {
      throw problem('TOO_MANY_STREAMS', `App "${app}" already has ${a} streams open (BERTH_MAX_STREAMS_PER_APP); close one and retry.`, { limit: maxStreamsPerApp, retryAfter: RETRY_AFTER_S })
    }
    if (this.total >= maxStreams) {
      throw problem('TOO_MANY_STREAMS', `berth already has ${this.total} streams open (BERTH_MAX_STREAMS); retry in a few seconds.`, { limit: maxStreams, retryAfter: RETRY_AFTER_S })
    }
    this.total++
    this.byToken.set(token.id, t + 1)
    if (app !== null) this.byApp.set(app, a + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.total--
      dec(this.byToken, token.id)
      if (app !== null) dec(this.byApp, app)
    }
  }
}

function dec(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1
  if (n <= 0) map.delete(key)
  else map.set(key, n)
}

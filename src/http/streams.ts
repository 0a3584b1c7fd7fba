// Owns the count of long-lived answers: log follows, audit event streams and console websockets. At most so
// many in all (fewer than the connection cap, the rest being the reserve for other clients and /healthz),
// per token and per app, so that one token cannot hold every connection (issue 23, D2).

import type { HttpLimits } from '../config.js'
import type { TokenInfo } from '../auth/tokens.js'
import { problem } from '../errors.js'
import { Slots } from '../intake/slots.js'

/** What a refused client is told to wait: streams end when their clients leave, not on a schedule. */
const RETRY_AFTER_S = 5

export class StreamLimiter {
  // The counting is the upload slots' own (intake/slots.ts): only the limits and the words differ.
  private readonly slots = new Slots()

  constructor(private readonly limits: Pick<HttpLimits, 'maxStreams' | 'maxStreamsPerToken' | 'maxStreamsPerApp'>) {}

  get open(): number {
    return this.slots.held
  }

  /**
   * Takes a slot for a stream opened with `token` on `app` (null: one that spans apps), or throws
   * TOO_MANY_STREAMS naming the limit. Returns the release, safe to call more than once.
   */
  acquire(token: TokenInfo, app: string | null): () => void {
    const { maxStreams, maxStreamsPerToken, maxStreamsPerApp } = this.limits
    return this.slots.take(
      { key: token.id, max: maxStreamsPerToken, refuse: (t) => problem('TOO_MANY_STREAMS', `Token "${token.name}" already has ${t} streams open (log follows, event streams, consoles; BERTH_MAX_STREAMS_PER_TOKEN); close one and retry.`, { limit: maxStreamsPerToken, retryAfter: RETRY_AFTER_S }) },
      { key: app, max: maxStreamsPerApp, refuse: (a) => problem('TOO_MANY_STREAMS', `App "${app}" already has ${a} streams open (BERTH_MAX_STREAMS_PER_APP); close one and retry.`, { limit: maxStreamsPerApp, retryAfter: RETRY_AFTER_S }) },
      { max: maxStreams, refuse: (n) => problem('TOO_MANY_STREAMS', `berth already has ${n} streams open (BERTH_MAX_STREAMS); retry in a few seconds.`, { limit: maxStreams, retryAfter: RETRY_AFTER_S }) },
    )
  }
}

// What each token holds open (console sessions, log streams, uploads) and the end of it: when the token is
// revoked (`berth token revoke` deletes its row from another process) or expires, every hold is ended at once.

import type { Logger } from 'pino'
import { tokenEnded, type TokenEnd, type TokenInfo, type TokenStore } from './tokens.js'

/**
 * How often held tokens are looked up. The CLI revokes in another process, so polling is the only way to
 * hear of it; one indexed SELECT of the held ids costs microseconds, and only runs while something is held.
 */
export const TOKEN_POLL_MS = 250

interface Held {
  token: TokenInfo
  ends: Set<(end: TokenEnd) => void>
}

export class TokenWatch {
  private readonly held = new Map<string, Held>()
  private timer: NodeJS.Timeout | null = null
  private closed = false

  constructor(
    private readonly tokens: TokenStore,
    private readonly log: Logger,
    private readonly pollMs = TOKEN_POLL_MS,
  ) {}

  /**
   * Registers something long-lived opened with `token`: `end` is called once if the token is revoked or
   * expires while it is held. Throws the UNAUTHORIZED problem at once when the token already is (it may
   * have been revoked since the request was authenticated). Returns the release, safe to call twice.
   */
  hold(token: TokenInfo, end: (end: TokenEnd) => void): () => void {
    const why = this.invalid(token, this.tokens.present([token.id]), Date.now())
    if (why) throw tokenEnded(token, why).problem
    let h = this.held.get(token.id)
    if (!h) {
      h = { token, ends: new Set() }
      this.held.set(token.id, h)
    }
    // A wrapper per hold, so the same callback given twice is two holds.
    const entry = (e: TokenEnd) => end(e)
    h.ends.add(entry)
    this.arm()
    return () => {
      const cur = this.held.get(token.id)
      if (!cur?.ends.delete(entry)) return
      if (cur.ends.size === 0) this.held.delete(token.id)
    }
  }

  /** Number of things held open, across tokens. */
  get size(): number {
    let n = 0
    for (const h of this.held.values()) n += h.ends.size
    return n
  }

  /** One look at the held tokens; ends what is held by those no longer valid. Returns how many holds ended. */
  check(at = Date.now()): number {
    if (this.held.size === 0) return 0
    const present = this.tokens.present([...this.held.keys()])
    let ended = 0
    for (const [id, h] of [...this.held]) {
      const why = this.invalid(h.token, present, at)
      if (!why) continue
      this.held.delete(id)
      const end = tokenEnded(h.token, why)
      this.log.info({ token: h.token.name, reason: end.reason, holds: h.ends.size }, 'closing what the token had open')
      for (const fn of h.ends) {
        ended++
        try {
          fn(end)
        } catch (err) {
          this.log.error({ token: h.token.name, err }, 'could not end something a token held open')
        }
      }
    }
    return ended
  }

  close(): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  private invalid(token: TokenInfo, present: Map<string, string | null>, at: number): 'revoked' | 'expired' | null {
    if (!present.has(token.id)) return 'revoked'
    const expiresAt = present.get(token.id)
    return expiresAt && Date.parse(expiresAt) <= at ? 'expired' : null
  }

  private arm(): void {
    if (this.timer || this.closed) return
    this.timer = setInterval(() => {
      try {
        this.check()
      } catch (err) {
        // The database may be closing under a shutdown; the next tick (if any) tries again.
        this.log.warn({ err }, 'could not check held tokens')
      }
      if (this.held.size === 0 && this.timer) {
        clearInterval(this.timer)
        this.timer = null
      }
    }, this.pollMs)
    this.timer.unref()
  }
}

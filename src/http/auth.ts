// Authentication and authorisation of HTTP requests: bearer token, scope from openapi.yaml, app limits,
// and a per-address limit on failed attempts. Runs before the body is read, so refused uploads cost nothing.

import type { FastifyReply, FastifyRequest } from 'fastify'
import { allowsApp, hasScope, type Scope, type TokenInfo, type TokenStore } from '../auth/tokens.js'
import { problem } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    token: TokenInfo | null
  }
}

/**
 * Fixed-window counter of failed authentications per client address. It only ever answers for failures:
 * a request with a valid token is never looked up here, so no other client's failures (all of loopback is
 * one address, berth's own outbound checks included) can shut a valid token out.
 */
export class FailureLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>()

  constructor(
    private readonly max = 30,
    private readonly windowMs = 60_000,
  ) {}

  /** Counts a failure; answers the seconds to wait when the address is past its budget, else 0. */
  fail(addr: string, at = Date.now()): number {
    let w = this.windows.get(addr)
    if (!w || at - w.start >= this.windowMs) {
      w = { start: at, count: 0 }
      this.windows.set(addr, w)
    }
    w.count++
    if (this.windows.size > 10_000) {
      for (const [k, v] of this.windows) if (at - v.start >= this.windowMs) this.windows.delete(k)
    }
    return w.count > this.max ? Math.max(1, Math.ceil((w.start + this.windowMs - at) / 1000)) : 0
  }
}

export function bearer(header: string | undefined): string | null {
  if (!header) return null
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return m ? m[1]! : null
}

/**
 * Resolves the caller or throws the problem to send; used for HTTP routes and websocket upgrades alike.
 * The token is checked first, the limiter consulted only when it fails: a valid token always passes (issue
 * 23, D1: berth's own unauthenticated health checks of itself once shut the admin out of loopback). Every
 * request pays the same check (one sha256, a constant-time compare), blocked address or not, so the answer's
 * timing tells nothing; a guesser past the budget gets 429 for every wrong guess, and with 256 random bits
 * per secret, guessing one is hopeless at any rate the listener can serve.
 */
export function authorize(tokens: TokenStore, limiter: FailureLimiter, req: { ip: string; headers: Record<string, unknown>; app?: string }, scope: Scope): TokenInfo {
  const presented = bearer(req.headers.authorization as string | undefined)
  let token: TokenInfo
  try {
    if (!presented) throw problem('UNAUTHORIZED', 'Send a token: Authorization: Bearer TOKEN (create one with `berth token create`).')
    token = tokens.verify(presented)
  } catch (err) {
    const wait = limiter.fail(req.ip)
    if (wait > 0) throw problem('AUTH_RATE_LIMITED', `Too many failed authentication attempts from ${req.ip}; wait ${wait} s. Requests with a valid token are not affected.`, { retryAfter: wait })
    throw err
  }
  if (!hasScope(token, scope)) {
    throw problem('FORBIDDEN_SCOPE', `Token "${token.name}" lacks the "${scope}" scope needed here; it has ${token.scopes.join(', ')}.`, { scope })
  }
  if (req.app !== undefined && !allowsApp(token, req.app)) {
    throw problem('FORBIDDEN_APP', `Token "${token.name}" is limited to ${token.apps!.join(', ')} and may not act on "${req.app}".`)
  }
  return token
}

/**
 * Callback style rather than async: a promise per request costs a turn of the microtask queue, and without
 * it the route's handler starts in the same synchronous run, sharing store/db.ts generation()'s one read of
 * data_version with the token check.
 */
export function authHook(tokens: TokenStore, limiter: FailureLimiter, scope: Scope) {
  return function onRequest(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
    const app = (request.params as { app?: string } | undefined)?.app
    try {
      request.token = authorize(tokens, limiter, { ip: request.ip, headers: request.headers, app }, scope)
    } catch (err) {
      done(err as Error)
      return
    }
    done()
  }
}

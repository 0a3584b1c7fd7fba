// berth's API as the dashboard calls it: the token as a bearer header, problems as ApiError (status, code,
// field), and a 401 of a signed-in page as the end of its sign-in.

import { hooks, state } from './state.js'

export { appPath } from './paths.js'

export class ApiError extends Error {
  readonly status: number
  readonly code: string | null
  readonly field: string | null
  constructor(status: number, body: { detail?: string; code?: string; field?: string } | null) {
    super(body?.detail ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.code ?? null
    this.field = body?.field ?? null
  }
}

/** What a failed call says on the page: "CODE: detail". */
export function problemText(err: unknown): string {
  const e = err as Partial<ApiError>
  return `${e.code ?? 'ERROR'}: ${e.message}`
}

interface CallOptions {
  method?: string
  body?: unknown
  signal?: AbortSignal
}

async function send(path: string, { method = 'GET', body, signal }: CallOptions): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${state.token}`, accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: signal ?? null, cache: 'no-store' })
  if (res.status === 401 && state.me) {
    hooks.signOut('The token is no longer valid (revoked or expired); sign in again.')
    throw new ApiError(401, await res.json().catch(() => null))
  }
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null))
  return res
}

/** A call answered with JSON (null for 204); T is what the caller expects the document to say. */
export async function api<T = unknown>(path: string, opts: CallOptions = {}): Promise<T> {
  const res = await send(path, opts)
  return (res.status === 204 ? null : await res.json()) as T
}

/** A call whose answer is read as a stream or as text (logs, events, recordings). */
export function apiRaw(path: string, opts: CallOptions = {}): Promise<Response> {
  return send(path, opts)
}

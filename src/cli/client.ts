// The HTTP client of the `berth` operator commands: JSON requests, a streamed upload with progress, and
// streamed text (logs). Every failure becomes an ApiError carrying the server's problem code and detail,
// so commands print one sentence and scripts can match on the code.

import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { Transform } from 'node:stream'
import { safeText, safeTree } from './safe-text.js'

export const DEFAULT_URL = 'http://127.0.0.1:4100'

/** What the server refused (status and code from its problem body), or why it could not be reached (status null). */
export class ApiError extends Error {
  override name = 'ApiError'
  constructor(
    readonly status: number | null,
    readonly code: string,
    readonly detail: string,
    readonly body: Record<string, unknown> | null = null,
  ) {
    super(`${detail} (${code})`)
  }
}

export interface UploadProgress {
  sent: number
  total: number
  elapsedMs: number
}

export interface UploadResult<T> {
  status: number
  body: T
  /** Until the last byte was handed to the socket. */
  sentMs: number
  /** Until the answer: includes the server's last checks and moving the release into place. */
  elapsedMs: number
}

// JSON answers come quickly (deployments are followed by polling, never with ?wait=true), so a minute of
// silence means something is wrong; an upload's answer waits for the server to finish unpacking.
const REQUEST_IDLE_MS = 60_000
const UPLOAD_IDLE_MS = 120_000
/** The largest JSON answer read; a larger one is abandoned while it streams (ANSWER_TOO_LARGE). */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024

export interface ClientOptions {
  /**
   * Silence allowed while waiting for an answer, and the time a JSON answer's body may take once its headers
   * came (a server that sends headers and then nothing, or a byte a minute, fails with TIMEOUT).
   */
  timeoutMs?: number
  maxAnswerBytes?: number
  /** PEM certificates to trust instead of the system's (--cacert, BERTH_CA_FILE): a berth with its own certificate. */
  ca?: Buffer
}

export class BerthClient {
  readonly baseUrl: string
  readonly #token: string
  readonly #timeoutMs: number | null
  readonly #maxAnswerBytes: number
  readonly #ca: Buffer | undefined

  constructor(baseUrl: string, token: string, opts: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.#token = token
    this.#timeoutMs = opts.timeoutMs ?? null
    this.#maxAnswerBytes = opts.maxAnswerBytes ?? MAX_ANSWER_BYTES
    this.#ca = opts.ca
  }

  /** One JSON request; resolves with the parsed answer of a 2xx, throws ApiError otherwise. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body))
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' }
    if (payload) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = payload.length
    }
    const timeout = this.#timeoutMs ?? REQUEST_IDLE_MS
    const res = await this.#send(method, path, headers, timeout, (req) => req.end(payload ?? undefined))
    return (await this.#readJson(res, timeout)) as T
  }

  /**
   * Streams a file as the raw request body with its Content-Length; `onProgress` sees the bytes handed to
   * the socket (backpressure keeps that within a buffer of what the server has received).
   */
  async upload<T = unknown>(path: string, file: string, onProgress: (p: UploadProgress) => void): Promise<UploadResult<T>> {
    const total = (await fs.promises.stat(file)).size
    const started = Date.now()
    let sent = 0
    let sentMs = 0
    const source = fs.createReadStream(file)
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        sent += chunk.length
        if (sent >= total) sentMs = Date.now() - started
        onProgress({ sent, total, elapsedMs: Date.now() - started })
        done(null, chunk)
      },
    })
    const headers = { 'content-type': 'application/octet-stream', 'content-length': total, accept: 'application/json' }
    const timeout = this.#timeoutMs ?? UPLOAD_IDLE_MS
    const res = await this.#send('POST', path, headers, timeout, (req) => {
      source.on('error', (err) => req.destroy(err))
      source.pipe(counter).pipe(req)
    })
    // A refusal (wrong app, not a tarball) may come before the whole body was sent: stop reading the file.
    source.destroy()
    const body = (await this.#readJson(res, timeout)) as T
    const elapsedMs = Date.now() - started
    return { status: res.statusCode!, body, sentMs: sentMs || elapsedMs, elapsedMs }
  }

  /** A non-JSON answer as a stream (logs, possibly followed; recordings); a refusal throws ApiError before anything is read. */
  async stream(path: string, accept = 'text/plain'): Promise<http.IncomingMessage> {
    const res = await this.#send('GET', path, { accept }, 0, (req) => req.end())
    if ((res.statusCode ?? 0) >= 400) await this.#readJson(res, this.#timeoutMs ?? REQUEST_IDLE_MS)
    // A followed log may be silent for hours: no time limit once the answer has begun.
    res.socket?.setTimeout(0)
    return res
  }

  #readJson(res: http.IncomingMessage, timeoutMs: number): Promise<unknown> {
    return readJsonBounded(this.baseUrl, res, timeoutMs, this.#maxAnswerBytes)
  }

  #send(method: string, path: string, headers: http.OutgoingHttpHeaders, idleMs: number, write: (req: http.ClientRequest) => void): Promise<http.IncomingMessage> {
    const url = new URL(this.baseUrl + path)
    const transport = url.protocol === 'https:' ? https : http
    return new Promise((resolve, reject) => {
      const auth = this.#token ? { authorization: `Bearer ${this.#token}` } : {}
      const req = transport.request(url, { method, headers: { ...headers, ...auth, 'user-agent': 'berth-cli' }, ...(this.#ca ? { ca: this.#ca } : {}) })
      let answered = false
      req.on('response', (res) => {
        answered = true
        // From here the reader's own limit applies (readJsonBounded's, or none for a followed stream). Left on,
        // this idle timer raced it: firing first, it reset the socket and a silent body read as ECONNRESET.
        if (idleMs > 0) req.setTimeout(0)
        resolve(res)
      })
      req.on('error', (err: NodeJS.ErrnoException) => {
        // Writing the rest of a refused upload fails once the server has answered and closed: the answer counts.
        if (answered) return
        reject(connectionError(this.baseUrl, err))
      })
      if (idleMs > 0) {
        req.setTimeout(idleMs, () => req.destroy(new ApiError(null, 'TIMEOUT', `berth at ${this.baseUrl} did not answer for ${idleMs / 1000} s`)))
      }
      write(req)
    })
  }
}

function connectionError(base: string, err: NodeJS.ErrnoException): ApiError {
  if (err instanceof ApiError) return err
  if (err.code === 'ECONNREFUSED') return new ApiError(null, 'CONNECTION_REFUSED', `Nothing answers at ${base}; is berth running there (set --url or BERTH_URL)?`)
  if (err.code && CERT_ERRORS.has(err.code)) {
    return new ApiError(null, err.code, `Cannot talk to berth at ${base}: its TLS certificate is not trusted (${err.message}). For a berth with a self-signed certificate or a private CA, pass --cacert FILE (or set BERTH_CA_FILE) with that certificate or CA in PEM.`)
  }
  return new ApiError(null, err.code ?? 'CONNECTION_FAILED', `Cannot talk to berth at ${base}: ${err.message}`)
}

// Node's codes for a certificate it could not verify (not a name mismatch, which --cacert does not cure).
const CERT_ERRORS = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED'])

/**
 * Reads a JSON answer within `timeoutMs` and the size cap, and makes every string of it safe to print (a
 * hostile or broken server's escape sequences and CI workflow commands never reach the terminal raw).
 */
async function readJsonBounded(base: string, res: http.IncomingMessage, timeoutMs: number, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  const timer = setTimeout(() => res.destroy(new ApiError(null, 'TIMEOUT', `berth at ${base} sent the headers of its answer but not the rest within ${timeoutMs / 1000} s`)), timeoutMs)
  try {
    for await (const c of res) {
      size += (c as Buffer).length
      if (size > maxBytes) {
        res.destroy()
        throw new ApiError(res.statusCode ?? null, 'ANSWER_TOO_LARGE', `berth at ${base} answered with more than ${maxBytes} bytes; the answer was abandoned`)
      }
      chunks.push(c as Buffer)
    }
  } catch (err) {
    if (err instanceof ApiError) throw err
    // The request's idle timeout ended it: say so, not the reset the body saw.
    const cause = (res as { req?: http.ClientRequest }).req?.errored
    if (cause instanceof ApiError) throw cause
    throw new ApiError(null, (err as NodeJS.ErrnoException).code ?? 'CONNECTION_FAILED', `the answer of berth at ${base} broke off: ${(err as Error).message}`)
  } finally {
    clearTimeout(timer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  let parsed: unknown = null
  try {
    parsed = text ? JSON.parse(text) : null
  } catch {
    parsed = undefined
  }
  const status = res.statusCode ?? 0
  if (status >= 200 && status < 300) {
    if (parsed === undefined) throw new ApiError(status, 'INVALID_RESPONSE', `berth answered ${status} with a body that is not JSON`)
    return safeTree(parsed)
  }
  const p = parsed as { code?: unknown; detail?: unknown } | null | undefined
  if (p && typeof p.code === 'string' && typeof p.detail === 'string') throw new ApiError(status, safeText(p.code), safeText(p.detail), safeTree(p) as Record<string, unknown>)
  throw new ApiError(status, `HTTP_${status}`, safeText(`berth answered ${status} ${res.statusMessage ?? ''}`.trim()))
}

/** Server, token and CA file from the flags, else BERTH_URL / BERTH_TOKEN / BERTH_CA_FILE. The caller reports a missing token. */
export function connection(values: { url?: string; token?: string; cacert?: string }, env: NodeJS.ProcessEnv): { url: string; token: string | undefined; caFile: string | undefined } {
  return { url: values.url ?? env.BERTH_URL ?? DEFAULT_URL, token: values.token ?? env.BERTH_TOKEN, caFile: values.cacert ?? (env.BERTH_CA_FILE || undefined) }
}

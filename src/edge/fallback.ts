// berth's own answers on the edge, served on a unix socket only the edge's haproxy connects to: ACME HTTP-01
// challenges, the maintenance page of a paused app (503, Retry-After), and the 404 page for unknown hosts.

import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import type { Logger } from 'pino'
import { problem } from '../errors.js'
import { replaceFileSync } from '../fsutil.js'
import { APP_NAME, type Paths } from '../paths.js'
import type { Challenges } from './challenges.js'

export interface FallbackDeps {
  paths: Paths
  log: Logger
  challenges: Challenges
  socket: string
  /** Retry-After of a paused app, or null when it is not paused. */
  pausedFor: (app: string) => number | null
}

/** The most an operator's maintenance page may weigh (it is read at each request of a paused app). */
export const MAX_PAGE_BYTES = 256 * 1024

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(title: string, text: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:15vh auto;padding:0 1em;color:#222}h1{font-size:1.4em}</style></head><body><h1>${esc(title)}</h1><p>${esc(text)}</p></body></html>\n`
}

/** Where a paused app's own maintenance page lives (PUT with the pause, kept for the next one). */
export function maintenancePageFile(paths: Paths, app: string): string {
  return path.join(paths.app(app), 'maintenance.html')
}

/** Keeps an operator's maintenance page for the app's pauses (this one and later ones). */
export function writeMaintenancePage(paths: Paths, app: string, html: string): void {
  if (Buffer.byteLength(html) > MAX_PAGE_BYTES) throw problem('VALIDATION_FAILED', `The maintenance page is larger than ${MAX_PAGE_BYTES} bytes.`, { field: 'page' })
  replaceFileSync(maintenancePageFile(paths, app), html, 0o640)
}

export class Fallback {
  private server: http.Server | null = null

  constructor(private readonly deps: FallbackDeps) {}

  async start(): Promise<void> {
    fs.mkdirSync(path.dirname(this.deps.socket), { recursive: true, mode: 0o700 })
    fs.rmSync(this.deps.socket, { force: true })
    const server = http.createServer((req, res) => this.answer(req, res))
    server.keepAliveTimeout = 30_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.deps.socket, () => resolve())
    })
    fs.chmodSync(this.deps.socket, 0o600)
    this.server = server
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume()
    const url = req.url ?? '/'
    const challenge = /^\/\.well-known\/acme-challenge\/([^/?#]+)$/.exec(url.split('?')[0]!)
    if (challenge) {
      const answer = this.deps.challenges.get(challenge[1]!)
      res.writeHead(answer ? 200 : 404, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
      res.end(answer ?? 'no such challenge\n')
      return
    }
    // Set by the edge only (it deletes any the client sent); the socket is reachable by berth's user alone.
    const app = String(req.headers['x-berth-edge-app'] ?? '')
    const retryAfter = APP_NAME.test(app) ? this.deps.pausedFor(app) : null
    const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-berth-edge': app && retryAfter !== null ? 'paused' : 'no-app' }
    if (retryAfter !== null) {
      res.writeHead(503, { ...headers, 'retry-after': String(retryAfter) })
      res.end(req.method === 'HEAD' ? undefined : this.maintenancePage(app))
      return
    }
    const host = String(req.headers.host ?? '').slice(0, 255)
    res.writeHead(404, headers)
    res.end(req.method === 'HEAD' ? undefined : page('Not found', `No app on this server answers to ${host || 'this address'}.`))
  }

  private maintenancePage(app: string): string | Buffer {
    try {
      return fs.readFileSync(maintenancePageFile(this.deps.paths, app))
    } catch {
      return page('Down for maintenance', 'This site is being updated and will be back shortly.')
    }
  }

  async close(): Promise<void> {
    const s = this.server
    this.server = null
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }
}

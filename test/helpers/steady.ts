// A steady client for the zero-downtime tests: one request after another on one keep-alive connection, a
// few ms apart, every answer kept, so a test can count failed requests across deploys and restarts.

import http from 'node:http'
import https from 'node:https'

export interface Sample {
  at: number
  ok: boolean
  body: string
}

/** Through the edge: the Host header (and SNI) to send, and for HTTPS the CA to trust. */
export interface SteadyOptions {
  host?: string
  tls?: { ca?: Buffer | string; rejectUnauthorized?: boolean }
}

/** One request after another on one keep-alive connection to the proxy, a few ms apart, until stopped. */
export function steadyClient(port: number, opts: SteadyOptions = {}): { samples: Sample[]; stop(): Promise<void> } {
  const agent = opts.tls ? new https.Agent({ keepAlive: true, maxSockets: 1, ...opts.tls, servername: opts.host }) : new http.Agent({ keepAlive: true, maxSockets: 1 })
  const get = opts.tls ? https.get : http.get
  const samples: Sample[] = []
  let running = true
  const once = () =>
    new Promise<Sample>((resolve) => {
      const at = Date.now()
      const req = get({ host: '127.0.0.1', port, path: '/', agent, timeout: 5000, ...(opts.host ? { headers: { host: opts.host } } : {}) }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => resolve({ at, ok: res.statusCode === 200, body: res.statusCode === 200 ? body.trim() : `HTTP ${res.statusCode} ${body.trim()}` }))
        res.on('error', (err) => resolve({ at, ok: false, body: err.message }))
      })
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', (err) => resolve({ at, ok: false, body: err.message }))
    })
  const loop = (async () => {
    while (running) {
      samples.push(await once())
      await new Promise((r) => setTimeout(r, 5))
    }
  })()
  return {
    samples,
    stop: async () => {
      running = false
      await loop
      agent.destroy()
    },
  }
}

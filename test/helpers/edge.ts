// Requests through the shared edge as a browser sends them: to 127.0.0.1 with the Host header (and, over
// HTTPS, the SNI) of a hostname, as `curl --resolve` does.

import http from 'node:http'
import https from 'node:https'
import type { TLSSocket } from 'node:tls'

export interface EdgeAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  /** The certificate the edge showed (HTTPS only): its subject CN and SANs. */
  peer?: { subject: string; altNames: string; issuer: string; serial: string }
}

export function edgeGet(port: number, host: string, pathname = '/', opts: { tls?: { ca?: Buffer | string }; method?: string; headers?: Record<string, string> } = {}): Promise<EdgeAnswer> {
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', port, path: pathname, method: opts.method ?? 'GET', headers: { host, ...opts.headers }, agent: false as const, timeout: 10_000 }
    const onRes = (res: http.IncomingMessage) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => {
        const sock = res.socket as TLSSocket
        const cert = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : null
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          ...(cert && cert.subject ? { peer: { subject: String(cert.subject.CN ?? ''), altNames: cert.subjectaltname ?? '', issuer: String(cert.issuer?.CN ?? ''), serial: cert.serialNumber } } : {}),
        })
      })
    }
    const req = opts.tls
      ? https.request({ ...common, servername: host, ...(opts.tls.ca ? { ca: opts.tls.ca } : { rejectUnauthorized: false }) }, onRes)
      : http.request(common, onRes)
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

// A stand-in for the shared edge, for the access-log tests and bench: a real haproxy whose frontend sets
// txn.host and txn.app the way the edge's does, with the access-log lines pasted in, and a keep-alive backend.

import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import type { AccessLogConfig } from '../../src/edge/access-log.js'
import { listening } from './ports.js'
import { until } from './wait.js'

export const HAPROXY = '/usr/sbin/haproxy'

export interface Backend {
  port: number
  close(): Promise<void>
}

/** Answers 200 "ok", or the status its path starts with (/404/…, /500/…), keeping connections alive. */
export async function startBackend(port: number): Promise<Backend> {
  const server = http.createServer((req, res) => {
    const m = /^\/([1-5]\d\d)(?:\/|$)/.exec(req.url ?? '')
    res.writeHead(m ? Number(m[1]) : 200, { 'content-type': 'text/plain', 'content-length': '2' })
    res.end('ok')
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export interface EdgeStandIn {
  child: ChildProcess
  port: number
  stop(): Promise<void>
}

/**
 * haproxy in the foreground (-db) from `dir`, listening on `port`: a Host that begins with `APP.example.com`
 * (each of `apps`) routes to the backend as that app; any other host gets haproxy's own 404, with no app.
 * `log` is the access log's config, pasted where the edge pastes it (null: none, for the bench's baseline).
 */
export async function startEdgeStandIn(opts: { dir: string; port: number; backendPort: number; apps: string[]; log: AccessLogConfig | null; tls?: { port: number; pem: string } }): Promise<EdgeStandIn> {
  const { dir, port, backendPort, apps, log, tls } = opts
  const routes = apps.map((a) => `  http-request set-var(txn.app) str(${a}) if { var(txn.host) -m beg ${a}.example.com }`)
  const config = [
    'global',
    '  maxconn 2000',
    ...(log?.sections ?? []),
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  option http-keep-alive',
    ...(log?.defaults ?? []).map((l) => `  ${l}`),
    'frontend web',
    `  bind 127.0.0.1:${port}`,
    // The same frontend on HTTPS, as the edge's: its lines say tls true.
    ...(tls ? [`  bind 127.0.0.1:${tls.port} ssl crt ${tls.pem}`] : []),
    // Only a trailing :PORT goes: a Host with other colons is kept as it came (the hostile-Host test sends one).
    '  http-request set-var(txn.host) req.hdr(host),lower,regsub(:[0-9]+$,)',
    ...routes,
    '  use_backend app if { var(txn.app) -m found }',
    '  default_backend unknown',
    'backend app',
    `  server a 127.0.0.1:${backendPort}`,
    'backend unknown',
    '  http-request return status 404 content-type text/plain string "no app here"',
    '',
  ].join('\n')
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, 'edge-standin.cfg')
  fs.writeFileSync(file, config)
  const child = spawn(HAPROXY, ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d) => (err += d))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await until(`haproxy listening on ${port} (${err})`, () => child.exitCode === null && listening(port), 10_000)
  return {
    child,
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

/** GET through the stand-in with a Host header (fetch would not send one of its own); answers the status. */
export function get(port: number, urlPath: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers: { host } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
  })
}

/** One raw HTTP/1.1 request (bytes as given, so a test can send what fetch would refuse); answers the status. */
export function rawRequest(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(Buffer.from(`${head}\r\nconnection: close\r\n\r\n`, 'latin1')))
    let got = ''
    s.on('data', (d: Buffer) => (got += d.toString('latin1')))
    s.on('error', reject)
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)))
  })
}

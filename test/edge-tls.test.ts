// The edge's HTTPS side with a real haproxy and real certificates (a private CA made with openssl): SNI picks
// each app's certificate, redirects keep path and query, HSTS, body limits, websockets, and that replacing a
// certificate or adding an app drops nothing from a steady HTTPS client or an open websocket.

import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, test } from 'node:test'
import pino from 'pino'
import WebSocket, { WebSocketServer } from 'ws'
import { proxySetting, type ProxySettings } from '../src/apps/proxy-settings.js'
import { Challenges } from '../src/edge/challenges.js'
import { Edge } from '../src/edge/edge.js'
import { Fallback } from '../src/edge/fallback.js'
import { Paths } from '../src/paths.js'
import type { SlotTarget } from '../src/proxy/haproxy.js'
import { openDatabase } from '../src/store/db.js'
import { EventStore } from '../src/store/events.js'
import { issue, makeCa, type TestCa } from './helpers/certs.js'
import { freePort, killProcessesUnder, processesUnder, tempDir } from './helpers/daemon.js'
import { edgeGet } from './helpers/edge.js'
import { steadyClient } from './helpers/steady.js'
import { until } from './helpers/wait.js'

const dir = tempDir('berth-edgetls-')
const paths = new Paths(dir)
const log = pino({ level: 'silent' })
let edge: Edge
let fallback: Fallback
let ca: TestCa
let httpPort = 0
let httpsPort = 0
const backends: http.Server[] = []
const routes = new Map<string, SlotTarget | null>()
const challenges = new Challenges()

/** A backend that names itself and echoes what the edge told it; websockets echo too. */
async function backend(name: string): Promise<number> {
  const server = http.createServer((req, res) => {
    let size = 0
    req.on('data', (b: Buffer) => (size += b.length))
    req.on('end', () => res.end(`${name} ${req.url} xfp=${req.headers['x-forwarded-proto']} xfh=${req.headers['x-forwarded-host']} body=${size}\n`))
  })
  new WebSocketServer({ server }).on('connection', (ws) => ws.on('message', (m) => ws.send(`${name}: ${String(m)}`)))
  const port = await freePort()
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()))
  backends.push(server)
  return port
}

const settings = (patch: Record<string, unknown>): ProxySettings => proxySetting(patch, null)!

async function certFor(hosts: string[], days = 10): Promise<{ file: string; serial: string }> {
  const leaf = issue(ca, { names: hosts, end: Date.now() + days * 86_400_000 })
  const file = path.join(paths.edgeCerts, `${hosts[0]}.pem`)
  fs.writeFileSync(file, `${leaf.cert.trim()}\n${leaf.key.trim()}\n`, { mode: 0o600 })
  await edge.install(hosts[0]!, file)
  return { file, serial: new X509Certificate(leaf.cert).serialNumber }
}

before(async () => {
  httpPort = await freePort()
  httpsPort = await freePort()
  ca = makeCa(dir)
  const db = openDatabase(path.join(dir, 'berth.db'), log)
  edge = new Edge({
    paths,
    events: new EventStore(db, log),
    log,
    haproxy: '/usr/sbin/haproxy',
    config: { http: `127.0.0.1:${httpPort}`, https: `127.0.0.1:${httpsPort}`, masterSocket: null, acme: { directory: 'https://127.0.0.1:1/dir', email: null, caFile: null, renewFraction: 2 / 3 } },
    routes: { routed: (app) => routes.get(app) ?? null, route: (app, to) => void routes.set(app, to) },
  })
  fallback = new Fallback({ paths, log, challenges, socket: edge.fallbackSocket, pausedFor: (app) => edge.pausedFor(app) })
  await fallback.start()
  await edge.start()
})

after(async () => {
  await edge.stop()
  await fallback.close()
  for (const s of backends) s.closeAllConnections(), s.close()
  killProcessesUnder(dir)
  await until('the edge to exit', () => processesUnder(dir).length === 0, 10_000).catch(() => {})
  assert.deepEqual(processesUnder(dir), [], 'no haproxy is left behind')
  fs.rmSync(dir, { recursive: true, force: true })
})

test('HTTPS by SNI with a certificate per app, redirects that keep path and query, HSTS and a body limit', { timeout: 60_000 }, async () => {
  const shop = await backend('shop')
  await edge.ensure('shop', settings({ hosts: ['shop.test'], tls: 'custom', hstsMaxAge: 31536000, maxBodyBytes: 1000 }), { slot: 'a', port: shop })
  // Until its certificate is served, the host stays on plain HTTP (no redirect to the default certificate).
  const early = await edgeGet(httpPort, 'shop.test', '/early')
  assert.equal(early.status, 200, 'not redirected before the certificate is there')
  const first = await certFor(['shop.test'])
  const tls = { ca: ca.pem }
  const ok = await edgeGet(httpsPort, 'shop.test', '/x?y=1', { tls })
  assert.equal(ok.status, 200)
  assert.equal(ok.body, 'shop /x?y=1 xfp=https xfh=shop.test body=0\n')
  assert.equal(ok.peer?.subject, 'shop.test')
  assert.equal(ok.peer?.serial, first.serial)
  assert.equal(ok.headers['strict-transport-security'], 'max-age=31536000')
  // Plain HTTP: a 308 to the same path and query on HTTPS (method and body kept by the client).
  const redirect = await edgeGet(httpPort, 'shop.test', '/cart?item=3&q=a%20b')
  assert.equal(redirect.status, 308)
  assert.equal(redirect.headers.location, `https://shop.test:${httpsPort}/cart?item=3&q=a%20b`)
  assert.equal(redirect.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP')
  // ACME challenges are never redirected: berth answers them on HTTP.
  challenges.set('tok_abcdefghijklmnopqrstuv', 'tok_abcdefghijklmnopqrstuv.thumb')
  const challenge = await edgeGet(httpPort, 'shop.test', '/.well-known/acme-challenge/tok_abcdefghijklmnopqrstuv')
  assert.equal(challenge.status, 200)
  assert.equal(challenge.body, 'tok_abcdefghijklmnopqrstuv.thumb')
  // A declared body over the app's limit never reaches it.
  const big = await edgeGet(httpsPort, 'shop.test', '/upload', { tls, method: 'POST', headers: { 'content-length': '5000' } }).catch((e: Error) => ({ status: -1, body: e.message }))
  assert.equal(big.status, 413)
  // An app with TLS off is not redirected and gets no HSTS.
  const plain = await backend('plain')
  await edge.ensure('plain', settings({ hosts: ['plain.test'], tls: 'off', hstsMaxAge: 100 }), { slot: 'b', port: plain })
  const p = await edgeGet(httpPort, 'plain.test', '/')
  assert.equal(p.status, 200)
  assert.match(p.body, /^plain \/ xfp=http /)
  // An unknown name over HTTPS gets the default certificate (naming no app) and berth's 404.
  const unknown = await edgeGet(httpsPort, 'nobody.test', '/', { tls: {} })
  assert.equal(unknown.status, 404)
  assert.equal(unknown.peer?.subject, 'berth-edge-default')
  // The certificate files are the owner's alone.
  assert.equal(fs.statSync(first.file).mode & 0o777, 0o600)
  assert.equal(fs.statSync(path.join(dir, 'edge', 'default.pem')).mode & 0o777, 0o600)
})

test('replacing a certificate and adding an app drop nothing from a steady HTTPS client or an open websocket', { timeout: 60_000 }, async () => {
  const client = steadyClient(httpsPort, { host: 'shop.test', tls: { ca: ca.pem } })
  const ws = new WebSocket(`wss://127.0.0.1:${httpsPort}/ws`, { headers: { host: 'shop.test' }, ca: ca.pem, ...({ servername: 'shop.test' } as object) })
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  let closed = false
  ws.on('close', () => (closed = true))
  await until('the client to get going', () => client.samples.length > 20, 10_000)
  const next = await certFor(['shop.test'], 20)
  await until('new connections to get the new certificate', async () => (await edgeGet(httpsPort, 'shop.test', '/', { tls: { ca: ca.pem } })).peer?.serial === next.serial, 5000)
  for (let i = 0; i < 3; i++) {
    const port = await backend(`extra${i}`)
    await edge.ensure(`extra${i}`, settings({ hosts: [`extra${i}.test`], tls: 'custom' }), { slot: 'a', port })
    await certFor([`extra${i}.test`])
    assert.match((await edgeGet(httpsPort, `extra${i}.test`, '/', { tls: { ca: ca.pem } })).body, new RegExp(`^extra${i} `))
  }
  const samples = client.samples.length
  await until('more requests after the changes', () => client.samples.length > samples + 20, 10_000)
  await client.stop()
  const echo = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))))
  ws.send('still here')
  assert.equal(await echo, 'shop: still here', 'the websocket opened before three reloads still works')
  assert.equal(closed, false)
  ws.terminate()
  const failed = client.samples.filter((s) => !s.ok)
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${client.samples.length} HTTPS requests failed`)
})

test('an edge that dies is started again with every app, route, certificate and pause it had', { timeout: 60_000 }, async () => {
  await edge.pause('plain', 30, 'test')
  const before = edge.status()
  assert.equal(before.state, 'running')
  process.kill(before.pid!, 'SIGKILL')
  await until('the edge to be started again', () => edge.status().state === 'running' && edge.status().pid !== before.pid, 10_000)
  assert.equal(edge.status().restarts, before.restarts + 1)
  assert.match(edge.status().lastExit ?? '', /exited while it should run/)
  await until('the new edge to answer', async () => (await edgeGet(httpsPort, 'shop.test', '/', { tls: { ca: ca.pem } }).catch(() => ({ status: 0 }))).status === 200, 10_000)
  const shop = await edgeGet(httpsPort, 'shop.test', '/again', { tls: { ca: ca.pem } })
  assert.match(shop.body, /^shop \/again xfp=https/)
  assert.equal(shop.peer?.subject, 'shop.test', 'the certificate installed at run time is in the files a restart reads')
  assert.equal((await edgeGet(httpPort, 'shop.test', '/r?x=1')).headers.location, `https://shop.test:${httpsPort}/r?x=1`)
  const paused = await edgeGet(httpPort, 'plain.test', '/')
  assert.equal(paused.status, 503)
  assert.equal(paused.headers['retry-after'], '30')
  await edge.resume('plain', 'test')
  assert.equal((await edgeGet(httpPort, 'plain.test', '/')).status, 200)
})

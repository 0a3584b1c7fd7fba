// Security properties, each shown against a live berth: every operation of openapi.yaml (websockets too)
// refuses missing/bad tokens, missing scopes and other apps; logs never hold tokens or env values; TLS
// serves HTTPS and WSS; clear-text listening off loopback is refused; slow and excess uploads are bounded.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { loadConfig } from '../src/config.js'
import { loadApiDocument } from '../src/http/openapi.js'
import { ownOrigins } from '../src/http/origins.js'
import { runCli, spawnDaemon, startDaemon, tempDir, type TestDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call } from './helpers/http.js'

const SCOPES = ['read', 'deploy', 'operate', 'console'] as const
const SAMPLE: Record<string, string> = { app: 'hello', id: '0.1.0-000000000000', name: 'xterm.js' }
const json = { 'content-type': 'application/json' }

type Op = ReturnType<typeof loadApiDocument>['operations'] extends Map<string, infer O> ? O : never

describe('auth everywhere (generated from openapi.yaml)', () => {
  let d: TestDaemon
  /** Webhooks an unlimited admin made: one for "other", one for every app. */
  let foreign: { other: string; all: string }
  before(async () => {
    d = await startDaemon({ BERTH_AUTH_FAILURES_PER_MINUTE: '1000000', BERTH_WEBHOOK_ALLOW_PRIVATE: '1' })
    for (const app of ['hello', 'other']) await call(`${d.url}/v1/apps/${app}/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
    const hook = async (app: string | null) => (await call(`${d.url}/v1/webhooks`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ url: 'http://127.0.0.1:9/', app, events: ['env.'] }) })).body.id as string
    foreign = { other: await hook('other'), all: await hook(null) }
  })
  after(async () => d.stop())

  function wsStatus(url: string, headers: Record<string, string>, authFrame?: string): Promise<number> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { headers })
      ws.on('unexpected-response', (_q, res) => resolve(res.statusCode!))
      ws.on('open', () => authFrame !== undefined && ws.send(JSON.stringify({ type: 'auth', token: authFrame })))
      ws.on('close', (code) => resolve(code))
      ws.on('error', () => {})
    })
  }

  const doc = loadApiDocument()
  const isWs = (op: Op) => (doc.doc.paths as Record<string, Record<string, Record<string, unknown>>>)[op.path]![op.method.toLowerCase()]!['x-websocket'] === true
  const urlOf = (op: Op, values: Record<string, string> = {}) => `${d.url}${op.path.replace(/\{([^}]+)\}/g, (_m, k: string) => values[k] ?? SAMPLE[k] ?? 'x')}`
  const ops = [...doc.operations.values()].filter((o) => o.scope !== null)
  for (const op of ops) {
    test(`${op.method} ${op.path} (${op.scope})`, async () => {
      const url = urlOf(op)
      const lacking = d.token(`lacking-${op.operationId}`, op.scope === 'admin' ? [...SCOPES] : SCOPES.filter((s) => s !== op.scope))
      const otherApp = d.token(`other-${op.operationId}`, ['admin'], ['other'])
      // The route's own scope, limited to another app: the app limit holds without admin too.
      const scopedOther = d.token(`scoped-other-${op.operationId}`, [op.scope!], ['other'])
      const bad = 'berth_0123456789abcdef_' + 'Z'.repeat(43)
      if (isWs(op)) {
        const wsUrl = url.replace('http', 'ws')
        assert.equal(await wsStatus(wsUrl, {}, bad), 4401, 'bad token in the auth frame')
        assert.equal(await wsStatus(wsUrl, { authorization: `Bearer ${bad}` }), 401)
        assert.equal(await wsStatus(wsUrl, { authorization: `Bearer ${lacking}` }), 403)
        assert.equal(await wsStatus(wsUrl, {}, lacking), 4403, 'scope checked for frame auth too')
        assert.equal(await wsStatus(wsUrl, { authorization: `Bearer ${otherApp}` }), 403)
        assert.equal(await wsStatus(wsUrl, { authorization: `Bearer ${scopedOther}` }), 403)
        assert.equal(await wsStatus(wsUrl, {}, scopedOther), 4403, 'app limit checked for frame auth too')
        return
      }
      const send = (token?: string) => call(url, { method: op.method, token, headers: json, body: ['POST', 'PUT'].includes(op.method) ? '{}' : undefined })
      const none = await send()
      assert.equal(none.status, 401, none.text)
      assert.equal(none.body.code, 'UNAUTHORIZED')
      assert.equal((await send(bad)).status, 401)
      const scope = await send(lacking)
      assert.equal(scope.status, 403, scope.text)
      assert.equal(scope.body.code, 'FORBIDDEN_SCOPE')
      for (const limited of [otherApp, scopedOther]) {
        if (!op.path.includes('{app}')) continue
        const app = await send(limited)
        assert.equal(app.status, 403, app.text)
        assert.equal(app.body.code, 'FORBIDDEN_APP')
      }
    })
  }

  /**
   * Routes without {app} in their path cannot be refused by the app parameter: each one filters what a token
   * limited to "hello" sees, or refuses it. A new route without {app} fails here until it says which.
   */
  const APP_LIMITED: Record<string, (op: Op, token: string) => Promise<void>> = {
    async getEdge(op, token) {
      // This berth runs no edge; one that does lists only the token's apps (test/edge.test.ts routes two).
      const res = await call(urlOf(op), { token })
      assert.equal(res.status, 200, res.text)
      assert.doesNotMatch(res.text, /"other"/)
    },
    async listApps(op, token) {
      const res = await call(urlOf(op), { token })
      assert.deepEqual(res.body.apps.map((a: { name: string }) => a.name), ['hello'])
    },
    async getMetrics(op, token) {
      const text = (await call(urlOf(op), { token })).text
      assert.match(text, /berth_app_state\{app="hello",state="stopped"\} 1/)
      assert.ok(!/app="other"/.test(text), 'no series of another app')
      assert.ok(!/^berth_deployment_step_duration_seconds|^berth_uploads_in_flight/m.test(text), 'no series summed over every app')
      assert.match(text, /^berth_process_cpu_seconds_total/m, 'the agent\'s own process metrics stay')
      const all = (await call(urlOf(op), { token: d.adminToken })).text
      assert.match(all, /app="other"/, 'an unlimited token sees every app')
    },
    async createWebhook(op, token) {
      const create = (body: Record<string, unknown>) => call(urlOf(op), { method: 'POST', token, headers: json, body: JSON.stringify({ url: 'http://127.0.0.1:9/', events: ['env.'], ...body }) })
      for (const body of [{}, { app: null }, { app: 'other' }]) {
        const res = await create(body)
        assert.equal(res.status, 403, `${JSON.stringify(body)}: ${res.text}`)
        assert.equal(res.body.code, 'FORBIDDEN_APP')
      }
      const own = await create({ app: 'hello' })
      assert.equal(own.status, 201, own.text)
      // Events of another app never reach the hook; its own do.
      await call(`${d.url}/v1/apps/other/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
      await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
      const deliveries = await call(`${d.url}/v1/webhooks/${own.body.id}/deliveries`, { token })
      assert.deepEqual(deliveries.body.deliveries.map((x: { event: string }) => x.event), ['env.replace'])
      const stored = d.server.services.db.prepare('SELECT payload FROM webhook_deliveries WHERE webhook_id = ?').all(own.body.id) as { payload: string }[]
      assert.deepEqual(stored.map((r) => JSON.parse(r.payload).app), ['hello'])
    },
    async listWebhooks(op, token) {
      const own = await call(`${d.url}/v1/webhooks`, { method: 'POST', token, headers: json, body: JSON.stringify({ url: 'http://127.0.0.1:9/', app: 'hello' }) })
      const listed = (await call(urlOf(op), { token })).body.webhooks as { id: string; app: string | null }[]
      assert.ok(listed.some((w) => w.id === own.body.id))
      assert.deepEqual([...new Set(listed.map((w) => w.app))], ['hello'])
      const everything = (await call(urlOf(op), { token: d.adminToken })).body.webhooks as { id: string }[]
      assert.ok(everything.some((w) => w.id === foreign.other) && everything.some((w) => w.id === foreign.all))
    },
    async deleteWebhook(op, token) {
      for (const id of [foreign.other, foreign.all]) {
        const res = await call(urlOf(op, { id }), { method: 'DELETE', token })
        assert.equal(res.status, 404, res.text)
        assert.equal(res.body.code, 'WEBHOOK_NOT_FOUND')
      }
      const ids = ((await call(`${d.url}/v1/webhooks`, { token: d.adminToken })).body.webhooks as { id: string }[]).map((w) => w.id)
      assert.ok(ids.includes(foreign.other) && ids.includes(foreign.all), 'the hooks of others are still there')
      const own = await call(`${d.url}/v1/webhooks`, { method: 'POST', token, headers: json, body: JSON.stringify({ url: 'http://127.0.0.1:9/', app: 'hello' }) })
      assert.equal((await call(urlOf(op, { id: own.body.id }), { method: 'DELETE', token })).status, 204)
    },
    async listDeliveries(op, token) {
      for (const id of [foreign.other, foreign.all]) {
        const res = await call(urlOf(op, { id }), { token })
        assert.equal(res.status, 404, res.text)
        assert.equal(res.body.code, 'WEBHOOK_NOT_FOUND')
      }
      assert.equal((await call(urlOf(op, { id: foreign.other }), { token: d.adminToken })).status, 200)
    },
    async whoami(op, token) {
      const res = await call(urlOf(op), { token })
      assert.equal(res.status, 200, res.text)
      assert.deepEqual(res.body.apps, ['hello'], 'the token says which apps it is limited to')
    },
    async streamEvents(op, token) {
      const refused = await call(`${urlOf(op)}?app=other`, { token })
      assert.equal(refused.status, 403, refused.text)
      assert.equal(refused.body.code, 'FORBIDDEN_APP')
      // The unfiltered stream carries the limited token's app and never another's.
      const ac = new AbortController()
      const res = await fetch(urlOf(op), { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
      assert.equal(res.status, 200)
      const reader = res.body!.getReader()
      let text = ''
      try {
        await call(`${d.url}/v1/apps/other/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
        await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
        while (!/"app":"hello"/.test(text)) {
          const { value, done } = await reader.read()
          if (done) break
          text += Buffer.from(value).toString()
        }
      } finally {
        ac.abort()
      }
      assert.match(text, /event: audit\ndata: \{[^\n]*"app":"hello"/)
      assert.ok(!/"app":"other"/.test(text), `another app's event reached a token limited to hello: ${text}`)
    },
  }

  for (const op of ops.filter((o) => !o.path.includes('{app}'))) {
    test(`${op.method} ${op.path} with a token limited to one app`, async () => {
      const scenario = APP_LIMITED[op.operationId]
      assert.ok(scenario, `${op.operationId} has no {app} in its path: add to APP_LIMITED how it filters or refuses app-limited tokens`)
      await scenario(op, d.token(`hello-only-${op.operationId}`, [op.scope!], ['hello']))
    })
  }
})

describe('websocket Origin (DNS rebinding)', () => {
  /** The upgrade's HTTP status when refused, else the close code (4404/4409 here: the origin check passed). */
  function wsAnswer(url: string, headers: Record<string, string>): Promise<{ status: number; code?: string }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { headers })
      ws.on('unexpected-response', (_q, res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, code: (JSON.parse(body || '{}') as { code?: string }).code }))
      })
      ws.on('close', (code) => resolve({ status: code }))
      ws.on('error', () => {})
    })
  }

  test('an Origin that matches a spoofed Host is refused; the listen address and localhost are berth\'s own', async () => {
    const d = await startDaemon()
    try {
      const port = new URL(d.url).port
      const url = `${d.url.replace('http', 'ws')}/v1/apps/hello/remote`
      const auth = { authorization: `Bearer ${d.adminToken}` }
      // A page on http://evil.example:PORT whose name was rebound to 127.0.0.1: the browser sends both.
      const rebound = await wsAnswer(url, { ...auth, host: `evil.example:${port}`, origin: `http://evil.example:${port}` })
      assert.deepEqual(rebound, { status: 403, code: 'ORIGIN_NOT_ALLOWED' })
      assert.deepEqual(await wsAnswer(url, { ...auth, origin: 'http://127.0.0.2:' + port }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' })
      assert.deepEqual(await wsAnswer(url, { ...auth, origin: `https://127.0.0.1:${port}` }), { status: 403, code: 'ORIGIN_NOT_ALLOWED' }, 'the scheme is part of the origin')
      for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
        const own = await wsAnswer(url, { ...auth, host: `evil.example:${port}`, origin })
        assert.ok(own.status >= 4000, `${origin} got past the origin check (then ${own.status}: hello has no node)`)
      }
    } finally {
      await d.stop()
    }
  })

  test('BERTH_PUBLIC_URL replaces the listen address as berth\'s own origin', async () => {
    const d = await startDaemon({ BERTH_PUBLIC_URL: 'https://berth.example.com/', BERTH_ALLOWED_ORIGINS: 'https://ops.example.com' })
    try {
      const port = new URL(d.url).port
      const url = `${d.url.replace('http', 'ws')}/v1/apps/hello/remote`
      const auth = { authorization: `Bearer ${d.adminToken}` }
      assert.ok((await wsAnswer(url, { ...auth, origin: 'https://berth.example.com' })).status >= 4000)
      assert.ok((await wsAnswer(url, { ...auth, origin: 'https://ops.example.com' })).status >= 4000)
      assert.equal((await wsAnswer(url, { ...auth, origin: `http://127.0.0.1:${port}` })).status, 403)
      assert.equal((await wsAnswer(url, { ...auth, host: 'berth.example.org', origin: 'https://berth.example.org' })).status, 403)
    } finally {
      await d.stop()
    }
  })

  test('default origins of loopback, [::1], wildcard and TLS listen addresses', () => {
    assert.deepEqual(ownOrigins({ address: '127.0.0.1', port: 4100 }, false), ['http://127.0.0.1:4100', 'http://localhost:4100'])
    assert.deepEqual(ownOrigins({ address: '::ffff:127.0.0.1', port: 4100 }, false), ['http://127.0.0.1:4100', 'http://localhost:4100'])
    assert.deepEqual(ownOrigins({ address: '::1', port: 4100 }, true), ['https://[::1]:4100', 'https://localhost:4100'])
    assert.deepEqual(ownOrigins({ address: '10.1.2.3', port: 443 }, true), ['https://10.1.2.3'], 'the default port is not part of an origin')
    assert.deepEqual(ownOrigins({ address: 'fe80::1', port: 4100 }, true), ['https://[fe80::1]:4100'])
    assert.deepEqual(loadConfig({ BERTH_PUBLIC_URL: 'https://Berth.Example.com:443/console, http://10.0.0.5:4100' }).consoles.publicOrigins, ['https://berth.example.com', 'http://10.0.0.5:4100'])
    assert.throws(() => loadConfig({ BERTH_PUBLIC_URL: 'berth.example.com' }), /BERTH_PUBLIC_URL/)
    assert.throws(() => loadConfig({ BERTH_PUBLIC_URL: 'ftp://berth.example.com' }), /BERTH_PUBLIC_URL/)
  })
})

describe('secrets stay out of the logs', () => {
  test('tokens and env values never appear in the log, even at trace level', async () => {
    const dataDir = tempDir()
    const daemon = await spawnDaemon(dataDir, { BERTH_LOG_LEVEL: 'trace' })
    try {
      const admin = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
      const created = (await runCli(['token', 'create', '--name', 'ci', '--scopes', 'read,deploy'], { BERTH_DATA_DIR: dataDir })).stdout.trim()
      const secretValue = 'postgres://user:sup3r-s3cret-pa55@db/prod'
      await call(`${daemon.url}/v1/apps/hello/env`, { method: 'PUT', token: admin, headers: json, body: JSON.stringify({ DATABASE_URL: secretValue, SECRET_KEY_BASE: 'kb-9f8e7d6c5b4a' }) })
      await call(`${daemon.url}/v1/apps/hello/env`, { token: created })
      await call(`${daemon.url}/v1/apps`, { token: admin.slice(0, -2) + 'xx' })
      const body = fs.readFileSync((await fixture('v1')).tarball)
      await call(`${daemon.url}/v1/apps/hello/releases`, { method: 'POST', token: created, body: body as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } })
      await daemon.stop()
      const log = daemon.output()
      assert.ok(log.length > 1000, 'there is a log to search')
      for (const secret of [admin.slice(23), created.slice(23), secretValue, 'sup3r-s3cret-pa55', 'kb-9f8e7d6c5b4a']) {
        assert.ok(!log.includes(secret), `the log contains ${secret.slice(0, 6)}…`)
      }
      const files = ['berth.log'].map((f) => path.join(dataDir, 'apps', 'hello', 'log', f)).filter((f) => fs.existsSync(f))
      for (const f of files) assert.ok(!fs.readFileSync(f, 'utf8').includes(secretValue))
    } finally {
      await daemon.stop()
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

describe('TLS and listening', () => {
  test('HTTPS and WSS with a generated certificate', async (t) => {
    const dir = tempDir('berth-tls-')
    const cert = path.join(dir, 'cert.pem')
    const key = path.join(dir, 'key.pem')
    const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'])
    if (gen.status !== 0) return t.skip('openssl not available')
    const d = await startDaemon({ BERTH_TLS_CERT: cert, BERTH_TLS_KEY: key })
    try {
      assert.match(d.url, /^https:/)
      const ca = fs.readFileSync(cert)
      const status = await new Promise<number>((resolve, reject) => https.get(`${d.url}/healthz`, { ca }, (res) => resolve(res.statusCode!)).on('error', reject))
      assert.equal(status, 200)
      // Clear-text HTTP to the TLS port gets nowhere.
      const plain = await new Promise<string>((resolve) => http.get(d.url.replace('https', 'http') + '/healthz', (res) => resolve(String(res.statusCode))).on('error', (e) => resolve(e.message)))
      assert.notEqual(plain, '200')
      const code = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`${d.url.replace('https', 'wss')}/v1/apps/hello/remote`, { ca })
        ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', token: 'berth_0123456789abcdef_' + 'Q'.repeat(43) })))
        ws.on('close', (c) => resolve(c))
        ws.on('unexpected-response', (_q, res) => resolve(res.statusCode!))
        ws.on('error', () => {})
      })
      assert.equal(code, 4401, 'the websocket upgraded over TLS and refused the bad token')
    } finally {
      await d.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a non-loopback address without TLS is refused unless explicitly allowed', () => {
    assert.throws(() => loadConfig({ BERTH_LISTEN: '0.0.0.0:4100' }), /refusing to listen on 0\.0\.0\.0 without TLS/)
    assert.doesNotThrow(() => loadConfig({ BERTH_LISTEN: '0.0.0.0:4100', BERTH_ALLOW_INSECURE_LISTEN: '1' }))
    assert.doesNotThrow(() => loadConfig({ BERTH_LISTEN: '0.0.0.0:4100', BERTH_TLS_CERT: '/c', BERTH_TLS_KEY: '/k' }))
    assert.doesNotThrow(() => loadConfig({ BERTH_LISTEN: '127.0.0.1:4100' }))
  })
})

describe('upload limits', () => {
  let d: TestDaemon
  before(async () => {
    d = await startDaemon({ BERTH_UPLOAD_IDLE_MS: '700', BERTH_MAX_CONCURRENT_UPLOADS: '1' })
  })
  after(async () => d.stop())

  function stalledUpload(): { req: http.ClientRequest; answer: Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> } {
    const req = http.request(`${d.url}/v1/apps/hello/releases`, { method: 'POST', headers: { authorization: `Bearer ${d.adminToken}`, 'content-type': 'application/octet-stream', 'content-length': 10_000_000 } })
    const answer = new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve) => {
      req.on('response', (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }))
      })
      req.on('error', () => {})
    })
    req.write(fs.readFileSync(path.join(process.cwd(), 'package.json')).subarray(0, 10) as unknown as Buffer)
    return { req, answer }
  }

  test('oversized headers are refused with 431 and connections beyond the limit are dropped', async () => {
    const status = await new Promise<number>((resolve) => {
      const req = http.get(`${d.url}/healthz`, { headers: { 'x-padding': 'p'.repeat(20 * 1024) } }, (res) => resolve(res.statusCode!))
      req.on('error', () => resolve(0))
    })
    assert.equal(status, 431)
    assert.equal(d.config.maxConnections, 512)
    assert.equal(d.config.http.maxConnectionsPerAddress, 64)
  })

  test('a stalled upload times out with 408 and leaves nothing; excess uploads get 503 with Retry-After', async () => {
    const first = stalledUpload()
    await new Promise((r) => setTimeout(r, 200))
    const second = await call(`${d.url}/v1/apps/hello/releases`, { method: 'POST', token: d.adminToken, body: Buffer.alloc(10) as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } })
    assert.equal(second.status, 503)
    assert.equal(second.body.code, 'TOO_MANY_UPLOADS')
    assert.equal(second.headers.get('retry-after'), '5')
    const res = await first.answer
    first.req.destroy()
    assert.equal(res.status, 408, res.body)
    assert.equal(JSON.parse(res.body).code, 'UPLOAD_TIMEOUT')
    assert.deepEqual(fs.readdirSync(path.join(d.dataDir, 'uploads')), [])
  })
})

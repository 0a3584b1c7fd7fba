// What berth builds or loads only when first needed (route schemas, the /docs reference) must answer on that first use exactly
// as it would have had it been ready at boot, and must not hide a broken schema until a request meets it.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import pino from 'pino'
import { loadConfig } from '../src/config.js'
import { buildApp, LOADERS } from '../src/http/app.js'
import { createServices } from '../src/services.js'
import { startDaemon, tempDir, type TestDaemon } from './helpers/daemon.js'
import { call } from './helpers/http.js'

let d: TestDaemon
before(async () => {
  d = await startDaemon()
})
after(async () => d.stop())

test('the first invalid request of each kind gets the same validation problem as the next', async () => {
  const json = { 'content-type': 'application/json' }
  const cases: [string, RequestInit][] = [
    // body (putEnv: an object of strings)
    ['/v1/apps/hello/env', { method: 'PUT', headers: json, body: JSON.stringify({ PORT: { port: 4000 } }) }],
    // querystring, coerced by Ajv (restart is a boolean)
    ['/v1/apps/hello/env?restart=sometimes', { method: 'PUT', headers: json, body: JSON.stringify({ PORT: '4000' }) }],
    // path parameter (a deployment id has a pattern)
    ['/v1/apps/hello/deployments/not-an-id', {}],
  ]
  for (const [url, init] of cases) {
    const first = await call(`${d.url}${url}`, { ...init, token: d.adminToken })
    const second = await call(`${d.url}${url}`, { ...init, token: d.adminToken })
    assert.equal(first.status, 400, `${url}: ${first.text}`)
    assert.equal(first.headers.get('content-type'), 'application/problem+json')
    assert.equal(first.body.code, 'VALIDATION_FAILED')
    assert.match(first.body.detail, /^The request is not valid: (body|querystring|params)/)
    assert.equal(first.body.detail, second.body.detail, url)
  }
  // A valid query coerced on its first use: the boolean arrives as a boolean (no restart of a node that is not there).
  const ok = await call(`${d.url}/v1/apps/hello/env?restart=false`, { method: 'PUT', headers: json, body: JSON.stringify({ PORT: '4000' }), token: d.adminToken })
  assert.equal(ok.status, 200, ok.text)
  assert.deepEqual(ok.body.names, ['PORT'])
})

test('every route schema compiles (they are compiled on first use, so this is where a broken one shows)', () => {
  const compiled = d.server.app.berthCompileSchemas()
  assert.ok(compiled > 20, `compiled ${compiled}`)
  assert.equal(d.server.app.berthCompileSchemas(), 0)
})

test('/docs is loaded by its first request and answers it as a page that was there from the start', async () => {
  const first = await call(`${d.url}/docs`)
  assert.equal(first.status, 200)
  assert.equal(first.headers.get('content-type'), 'text/html; charset=utf-8')
  assert.match(first.headers.get('content-security-policy')!, /^default-src 'self'; base-uri 'none'/)
  assert.match(first.text, /<title>berth API reference<\/title>/)
  assert.equal((await call(`${d.url}/docs`)).text, first.text)
  const head = await fetch(`${d.url}/docs`, { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(first.text)))
  const css = await fetch(`${d.url}/docs/static/swagger-ui.css`)
  assert.equal(css.status, 200)
  assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8')
  assert.ok((await css.text()).length > 100_000)
  const json = await call(`${d.url}/docs/json`)
  assert.equal(json.status, 200)
  assert.ok(json.body.paths['/v1/apps/{app}'])
  const redirect = await fetch(`${d.url}/docs/static/index.html`, { redirect: 'manual' })
  assert.equal(redirect.status, 302)
  assert.equal(redirect.headers.get('location'), '/docs/')
  for (const missing of ['/docs/static/nope.js', '/docs/nothing']) {
    const res = await call(`${d.url}${missing}`)
    assert.equal(res.status, 404, missing)
    assert.equal(res.headers.get('content-type'), 'application/problem+json')
    assert.equal(res.body.code, 'ROUTE_NOT_FOUND')
  }
  assert.equal((await call(`${d.url}/docs`, { method: 'POST' })).body.code, 'ROUTE_NOT_FOUND')
})

test('a module that fails to load answers MODULE_LOAD_FAILED as a problem, and the next request loads it again', async () => {
  const dataDir = tempDir()
  const services = await createServices(loadConfig({ BERTH_DATA_DIR: dataDir, BERTH_LISTEN: '127.0.0.1:0' }), pino({ level: 'silent' }))
  let fail = true
  const missing = (pkg: string) => Promise.reject(Object.assign(new Error(`Cannot find package ${pkg}`), { code: 'ERR_MODULE_NOT_FOUND' }))
  const app = await buildApp(services, {}, {
    docs: () => (fail ? missing('@fastify/swagger-ui') : LOADERS.docs()),
    promClient: () => (fail ? missing('prom-client') : LOADERS.promClient()),
  })
  const auth = { authorization: `Bearer ${services.tokens.create({ name: 'm', scopes: ['read'], apps: null }).token}` }
  try {
    const broken = await app.inject({ method: 'GET', url: '/docs' })
    assert.equal(broken.statusCode, 500)
    assert.equal(broken.headers['content-type'], 'application/problem+json')
    const body = broken.json()
    assert.equal(body.code, 'MODULE_LOAD_FAILED')
    assert.match(body.detail, /could not load its code for \/docs \(ERR_MODULE_NOT_FOUND\).*reinstall it/)
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'berth still serves the rest')
    // An event while prom-client is missing is kept, and counted once it loads.
    services.events.record({ app: 'hello', actor: 't', action: 'node.restart', outcome: 'ok' })
    const noMetrics = await app.inject({ method: 'GET', url: '/metrics', headers: auth })
    assert.equal(noMetrics.statusCode, 500)
    assert.equal(noMetrics.json().code, 'MODULE_LOAD_FAILED')
    assert.match(noMetrics.json().detail, /for \/metrics \(ERR_MODULE_NOT_FOUND\)/)
    fail = false
    const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: auth })
    assert.equal(metrics.statusCode, 200, metrics.body)
    assert.match(metrics.headers['content-type'] as string, /^text\/plain/)
    assert.match(metrics.body, /^berth_node_restarts_total\{app="hello"\} 1$/m)
    assert.match(metrics.body, /^berth_process_cpu_seconds_total /m)
    const fixed = await app.inject({ method: 'GET', url: '/docs' })
    assert.equal(fixed.statusCode, 200)
    assert.match(fixed.body, /berth API reference/)
  } finally {
    await app.close()
    services.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
})

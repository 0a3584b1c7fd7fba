// openapi.yaml and the served routes must agree: every route documented, every operation served, the
// document itself served as-is, and documented response schemas match what the routes return.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import { loadApiDocument, OPENAPI_FILE } from '../src/http/openapi.js'
import { catalogue } from '../src/errors.js'
import { startDaemon, type TestDaemon } from './helpers/daemon.js'
import { call } from './helpers/http.js'
import { REPO } from './helpers/fixtures.js'
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import YAML from 'yaml'

let d: TestDaemon
before(async () => {
  d = await startDaemon()
})
after(async () => d.stop())

test('every route is in openapi.yaml and every operation has a route', () => {
  const api = loadApiDocument()
  const documented = new Set([...api.operations.values()].map((o) => `${o.method} ${o.url}`))
  // Fastify adds HEAD for every GET on its own; those are not operations. /docs/* (swagger-ui's assets: the
  // page's scripts and a copy of this document) belongs to the documented GET /docs page.
  const docsAssets = new Set(['/docs/*'])
  const served = new Set(d.server.app.berthRoutes.filter((r) => r.method !== 'HEAD' && !docsAssets.has(r.url)).map((r) => `${r.method} ${r.url}`))
  assert.deepEqual([...served].filter((r) => !documented.has(r)), [], 'routes missing from openapi.yaml')
  assert.deepEqual([...documented].filter((r) => !served.has(r)), [], 'operations without a route')
})

test('every operation either needs a scope or says security: []', () => {
  for (const op of loadApiDocument().operations.values()) {
    // The console page and its assets are public: the page asks for a token and sends it over the websocket.
    if (op.scope === null) assert.ok(['/', '/healthz', '/openapi.yaml', '/docs', '/console/{app}', '/assets/{name}'].includes(op.path), `${op.operationId} is unauthenticated`)
    else assert.ok(['read', 'deploy', 'operate', 'console', 'admin'].includes(op.scope), op.operationId)
  }
})

test('GET /openapi.yaml serves the file as it is', async () => {
  const res = await call(`${d.url}/openapi.yaml`)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type')!, /yaml/)
  assert.equal(res.text, fs.readFileSync(OPENAPI_FILE, 'utf8'))
})

test('documented problem statuses exist in the error catalogue', () => {
  const statuses = new Set(Object.values(catalogue).map(([s]) => String(s)))
  const api = loadApiDocument()
  const paths = api.doc.paths as Record<string, Record<string, { responses?: Record<string, unknown> }>>
  for (const [p, item] of Object.entries(paths)) {
    for (const [m, op] of Object.entries(item)) {
      for (const code of Object.keys(op.responses ?? {})) {
        if (Number(code) >= 400) assert.ok(statuses.has(code), `${m} ${p} documents ${code}, which no error in the catalogue has`)
      }
    }
  }
})

test('GET / is the dashboard for browsers and points at the reference and the API as JSON for scripts', async () => {
  const json = await call(`${d.url}/`)
  assert.equal(json.status, 200)
  assert.deepEqual(json.body, { name: 'berth', version: json.body.version, docs: '/docs', openapi: '/openapi.yaml', api: '/v1/apps', console: '/console/{app}', health: '/healthz' })
  const page = await call(`${d.url}/`, { headers: { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8' } })
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type')!, /^text\/html/)
  assert.match(page.headers.get('content-security-policy')!, /default-src 'none'; script-src 'self';/)
  assert.ok(page.text.includes('src="/assets/dashboard.js"'), 'the dashboard module')
  for (const href of ['/docs', '/openapi.yaml', '/healthz']) assert.ok(page.text.includes(`href="${href}"`), href)
})

test('/docs renders the document in headless Chromium without errors or external requests', async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed')
  const browser = await launchChromium()
  try {
    const page = await browser.newPage()
    const errors: string[] = []
    const external: string[] = []
    page.on('pageerror', (e) => errors.push(String(e)))
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
    page.on('request', (r) => !r.url().startsWith(d.url) && !r.url().startsWith('data:') && external.push(r.url()))
    await page.goto(`${d.url}/docs`)
    await page.waitForSelector('.opblock-summary-path', { timeout: 20_000 })
    const paths = await page.$$eval('.opblock-summary-path', (els) => els.map((e) => e.textContent?.replace(/\u200b/g, '')))
    assert.ok(paths.includes('/v1/apps/{app}/releases'), paths.join(' '))
    // berth's own page: its title and icon, no swagger-ui top bar (Fastify's logo, the "Explore" box).
    assert.equal(await page.title(), 'berth API reference')
    assert.equal(await page.$('.topbar'), null)
    assert.equal(await page.getByText('Explore', { exact: true }).count(), 0)
    assert.match((await page.textContent('.info .title')) ?? '', /^berth/)
    assert.match((await page.getAttribute('link[rel=icon]', 'href')) ?? '', /\/docs\/static\/theme\/berth\.svg$/)
    assert.deepEqual(errors, [])
    assert.deepEqual(external, [])
  } finally {
    await browser.close()
  }
})

test('openapi.yaml lints clean with Redocly (recommended rules; exceptions listed in .redocly.lint-ignore.yaml)', () => {
  const r = spawnSync(process.execPath, [path.join(REPO, 'node_modules', '@redocly', 'cli', 'bin', 'cli.js'), 'lint', 'openapi.yaml', '--format', 'stylish'], { cwd: REPO, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  // Problems print as "LINE:COL  warning|error  rule" (Redocly's own Node 20 banner says "warning" too).
  assert.doesNotMatch(r.stdout + r.stderr, /^\s*\d+:\d+\s+(warning|error)\b/m)
  assert.match(r.stdout + r.stderr, /Your API description is valid/)
})

test('unknown routes and methods answer with a problem', async () => {
  const res = await call(`${d.url}/v1/nope`, { token: d.adminToken })
  assert.equal(res.status, 404)
  assert.equal(res.body.code, 'ROUTE_NOT_FOUND')
  assert.equal(res.headers.get('content-type'), 'application/problem+json')
  const health = await call(`${d.url}/healthz`)
  assert.deepEqual(Object.keys(health.body).sort(), ['details', 'status', 'version'])
  assert.deepEqual(Object.keys(health.body.details.isolation).sort(), ['mode', 'reason'])
})

test('src/http/api-types.ts, which types the route handlers, is generated from this openapi.yaml', () => {
  const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'gen-api-types.mjs'), '--check'], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
})

test('the parsed copy berth starts from (src/http/openapi.json) is the YAML document, parsed', () => {
  const text = fs.readFileSync(OPENAPI_FILE, 'utf8')
  assert.deepEqual(loadApiDocument().doc, YAML.parse(text))
})

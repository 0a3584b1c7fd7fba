// openapi.yaml and the served routes must agree: every route documented, every operation served, the
// document itself served as-is, and documented response schemas match what the routes return.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import { loadApiDocument, OPENAPI_FILE } from '../src/http/openapi.js'
import { catalogue } from '../src/errors.js'
import { startDaemon, type TestDaemon } from './helpers/daemon.js'
import { call } from './helpers/http.js'

let d: TestDaemon
before(async () => {
  d = await startDaemon()
})
after(async () => d.stop())

test('every route is in openapi.yaml and every operation has a route', () => {
  const api = loadApiDocument()
  const documented = new Set([...api.operations.values()].map((o) => `${o.method} ${o.url}`))
  // Fastify adds HEAD for every GET on its own; those are not operations.
  const served = new Set(d.server.app.berthRoutes.filter((r) => r.method !== 'HEAD').map((r) => `${r.method} ${r.url}`))
  assert.deepEqual([...served].filter((r) => !documented.has(r)), [], 'routes missing from openapi.yaml')
  assert.deepEqual([...documented].filter((r) => !served.has(r)), [], 'operations without a route')
})

test('every operation either needs a scope or says security: []', () => {
  for (const op of loadApiDocument().operations.values()) {
    // The console page and its assets are public: the page asks for a token and sends it over the websocket.
    if (op.scope === null) assert.ok(['/healthz', '/openapi.yaml', '/console/{app}', '/assets/{name}'].includes(op.path), `${op.operationId} is unauthenticated`)
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

test('unknown routes and methods answer with a problem', async () => {
  const res = await call(`${d.url}/v1/nope`, { token: d.adminToken })
  assert.equal(res.status, 404)
  assert.equal(res.body.code, 'ROUTE_NOT_FOUND')
  assert.equal(res.headers.get('content-type'), 'application/problem+json')
  const health = await call(`${d.url}/healthz`)
  assert.deepEqual(Object.keys(health.body).sort(), ['status', 'version'])
})

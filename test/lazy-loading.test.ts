// What berth builds or loads only when first needed (route schemas, ...) must answer on that first use exactly
// as it would have had it been ready at boot, and must not hide a broken schema until a request meets it.

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { startDaemon, type TestDaemon } from './helpers/daemon.js'
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

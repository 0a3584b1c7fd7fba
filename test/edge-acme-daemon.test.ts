// ACME as a running berth wires it: BERTH_ACME_DIRECTORY and BERTH_ACME_CA_FILE pointing at a real pebble,
// the hostnames of apps with proxy.tls acme handed to sync (as the edge will at start and at each route
// change), HTTP-01 answered from the daemon's own Challenges, and the certificate listed over the API.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import { acmeHosts } from '../src/services.js'
import { startDaemon, tempDir, type TestDaemon } from './helpers/daemon.js'
import { call } from './helpers/http.js'
import { freePort } from './helpers/ports.js'
import { serveChallenges, startPebble, type ChallengeServer, type Pebble } from './helpers/pebble.js'

let dir: string
let pebble: Pebble
let answers: ChallengeServer
let d: TestDaemon
const json = { 'content-type': 'application/json' }

before(async () => {
  dir = tempDir('berth-acme-daemon-')
  pebble = await startPebble(dir)
  d = await startDaemon({
    BERTH_EDGE_HTTP: `127.0.0.1:${pebble.httpPort}`,
    BERTH_EDGE_HTTPS: `127.0.0.1:${await freePort()}`,
    BERTH_ACME_DIRECTORY: pebble.directory,
    BERTH_ACME_CA_FILE: pebble.caFile,
    BERTH_ACME_EMAIL: 'ops@berth.test',
  })
  // Until the edge's fallback server exists, this serves the daemon's Challenges on the edge's HTTP port.
  answers = await serveChallenges(d.server.services.challenges, pebble.httpPort)
})
after(async () => {
  await answers?.close()
  await d?.stop()
  await pebble?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

test('an app with hostnames and tls acme gets a certificate from the configured CA, listed over the API', async () => {
  await call(`${d.url}/v1/apps/shop/env`, { method: 'PUT', headers: json, body: '{}', token: d.adminToken })
  const set = await call(`${d.url}/v1/apps/shop/settings`, { method: 'PUT', headers: json, body: JSON.stringify({ proxy: { hosts: ['shop.berth.test', 'www.berth.test'] } }), token: d.adminToken })
  assert.equal(set.status, 200, set.text)
  const before = await call(`${d.url}/v1/apps/shop/certificates`, { token: d.adminToken })
  assert.deepEqual(before.body.certificates.map((c: { source: string; state: string }) => [c.source, c.state]), [['acme', 'pending'], ['acme', 'pending']])
  const services = d.server.services
  assert.deepEqual(acmeHosts(services), [{ app: 'shop', host: 'shop.berth.test' }, { app: 'shop', host: 'www.berth.test' }])
  await services.acme!.sync(acmeHosts(services))
  const after = await call(`${d.url}/v1/apps/shop/certificates`, { token: d.adminToken })
  for (const c of after.body.certificates) {
    assert.equal(c.state, 'valid', `${c.host}: ${c.lastError}\n${pebble.output().slice(-2000)}`)
    assert.match(c.issuer, /Pebble/)
    assert.ok(Date.parse(c.nextRenewalAt) > Date.now())
  }
  const events = await call(`${d.url}/v1/apps/shop/events`, { token: d.adminToken })
  assert.equal(events.body.events.filter((e: { action: string; outcome: string }) => e.action === 'certificate.issue' && e.outcome === 'ok').length, 2)
  assert.equal(fs.statSync(`${d.dataDir}/edge/acme/account.key`).mode & 0o777, 0o600)
})

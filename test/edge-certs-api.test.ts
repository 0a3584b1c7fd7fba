// The certificates API and CLI through a real listening berth: installing a custom certificate (and each
// refusal's status and code), the list with hostnames that have none, scopes and app limits of tokens,
// the expiry gauge in /metrics, and no key material in berth's log. The edge is not attached (sink null).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { DEFAULT_EVENTS } from '../src/webhooks/webhooks.js'
import { issue, makeCa, type TestCa } from './helpers/certs.js'
import { runCli, startDaemon, tempDir, type TestDaemon } from './helpers/daemon.js'
import { freePorts } from './helpers/ports.js'
import { call } from './helpers/http.js'

let d: TestDaemon
let dir: string
let ca: TestCa
const json = { 'content-type': 'application/json' }
const HOSTS = ['shop.example.test', 'www.example.test']

const put = (app: string, host: string, body: unknown, token = d.adminToken) =>
  call(`${d.url}/v1/apps/${app}/certificates/${host}`, { method: 'PUT', headers: json, body: JSON.stringify(body), token })

before(async () => {
  dir = tempDir('berth-certs-api-')
  ca = makeCa(dir)
  const [http, https] = await freePorts(2)
  d = await startDaemon({ BERTH_EDGE_HTTP: `127.0.0.1:${http}`, BERTH_EDGE_HTTPS: `127.0.0.1:${https}` }, { keepLogs: true })
  for (const app of ['shop', 'blog']) {
    const made = await call(`${d.url}/v1/apps/${app}/env`, { method: 'PUT', headers: json, body: '{}', token: d.adminToken })
    assert.equal(made.status, 200, made.text)
  }
  const set = await call(`${d.url}/v1/apps/shop/settings`, { method: 'PUT', headers: json, body: JSON.stringify({ proxy: { hosts: HOSTS, tls: 'custom' } }), token: d.adminToken })
  assert.equal(set.status, 200, set.text)
})
after(async () => {
  await d?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

test('the list names every hostname of the app, those without a certificate as missing', async () => {
  const r = await call(`${d.url}/v1/apps/shop/certificates`, { token: d.adminToken })
  assert.equal(r.status, 200, r.text)
  assert.deepEqual(r.body.certificates.map((c: { host: string; source: string; state: string }) => [c.host, c.source, c.state]), [['shop.example.test', 'custom', 'missing'], ['www.example.test', 'custom', 'missing']])
})

test('PUT installs a good certificate and answers its list entry; bad ones get 4xx with their codes', async () => {
  const good = issue(ca, { names: ['shop.example.test'] })
  const ok = await put('shop', 'Shop.Example.Test', { cert: good.cert, key: good.key })
  assert.equal(ok.status, 200, ok.text)
  assert.equal(ok.body.host, 'shop.example.test')
  assert.equal(ok.body.state, 'valid')
  assert.equal(ok.body.source, 'custom')
  assert.equal(fs.statSync(path.join(d.dataDir, 'edge', 'certs', 'shop.example.test.pem')).mode & 0o777, 0o600)

  const other = issue(ca, { names: ['shop.example.test'] })
  const expired = issue(ca, { names: ['shop.example.test'], start: Date.now() - 10 * 86_400_000, end: Date.now() - 86_400_000 })
  const cases: [string, string, unknown, number, string][] = [
    ['mismatched key', 'shop.example.test', { cert: good.cert, key: other.key }, 422, 'CERT_KEY_MISMATCH'],
    ['expired', 'shop.example.test', { cert: expired.cert, key: expired.key }, 422, 'CERT_EXPIRED'],
    ['another host', 'www.example.test', { cert: good.cert, key: good.key }, 422, 'CERT_HOST_MISMATCH'],
    ['not PEM', 'shop.example.test', { cert: 'x', key: good.key }, 422, 'CERT_INVALID'],
    ['a host the app does not route', 'blog.example.test', { cert: good.cert, key: good.key }, 409, 'HOST_NOT_ROUTED'],
    ['no key', 'shop.example.test', { cert: good.cert }, 400, 'VALIDATION_FAILED'],
    ['a body over the limit', 'shop.example.test', { cert: good.cert, key: 'x'.repeat(140_000) }, 400, 'VALIDATION_FAILED'],
  ]
  for (const [what, host, body, status, code] of cases) {
    const r = await put('shop', host, body)
    assert.equal(r.status, status, `${what}: ${r.text}`)
    if (code) assert.equal(r.body.code, code, what)
  }
  // blog's proxy.tls is unset: acme on this HTTPS edge, so a custom certificate would be replaced.
  await call(`${d.url}/v1/apps/blog/settings`, { method: 'PUT', headers: json, body: JSON.stringify({ proxy: { hosts: ['blog.example.test'] } }), token: d.adminToken })
  const blog = issue(ca, { names: ['blog.example.test'] })
  const mode = await put('blog', 'blog.example.test', { cert: blog.cert, key: blog.key })
  assert.equal(mode.status, 409, mode.text)
  assert.equal(mode.body.code, 'TLS_MODE_MISMATCH')
})

test('PUT needs the deploy scope and a token allowed the app; GET the read scope', async () => {
  const good = issue(ca, { names: ['www.example.test'] })
  const reader = d.token('certs-reader', ['read'], ['shop'])
  const blogDeployer = d.token('blog-deployer', ['deploy'], ['blog'])
  const shopDeployer = d.token('shop-deployer', ['deploy'], ['shop'])
  assert.equal((await put('shop', 'www.example.test', { cert: good.cert, key: good.key }, reader)).body.code, 'FORBIDDEN_SCOPE')
  const elsewhere = await put('shop', 'www.example.test', { cert: good.cert, key: good.key }, blogDeployer)
  assert.equal(elsewhere.status, 403)
  assert.equal(elsewhere.body.code, 'FORBIDDEN_APP')
  assert.equal((await call(`${d.url}/v1/apps/shop/certificates`, { token: blogDeployer })).status, 403)
  assert.equal((await put('shop', 'www.example.test', { cert: good.cert, key: good.key }, shopDeployer)).status, 200)
  const list = await call(`${d.url}/v1/apps/shop/certificates`, { token: reader })
  assert.deepEqual(list.body.certificates.map((c: { state: string }) => c.state), ['valid', 'valid'])
  assert.equal((await call(`${d.url}/v1/apps/nope/certificates`, { token: d.adminToken })).status, 404)
})

test('/metrics shows seconds to expiry per host; webhooks hear certificate events by default', async () => {
  const r = await call(`${d.url}/metrics`, { token: d.adminToken })
  const line = r.text.split('\n').find((l) => l.startsWith('berth_edge_certificate_expiry_seconds{app="shop",host="shop.example.test"}'))
  assert.ok(line, r.text.slice(0, 2000))
  const seconds = Number(line!.split(' ').at(-1))
  assert.ok(seconds > 28 * 86_400 && seconds <= 30 * 86_400, line)
  // Renewals are counted from their events (edge-acme.test.ts makes real ones against pebble).
  d.server.services.events.record({ app: 'shop', actor: 'berth', action: 'certificate.renew', outcome: 'failed', detail: { host: 'shop.example.test' } })
  const again = await call(`${d.url}/metrics`, { token: d.adminToken })
  assert.match(again.text, /^berth_edge_certificate_renewals_total\{app="shop",outcome="failed"\} 1$/m)
  assert.ok(DEFAULT_EVENTS.includes('certificate.'))
})

test('the CLI lists, installs and removes; no key material in berth\'s log', async () => {
  const env = { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken }
  const fresh = issue(ca, { names: ['shop.example.test'] })
  const installed = await runCli(['certs', 'put', 'shop', 'shop.example.test', '--cert', fresh.certFile, '--key', fresh.keyFile], env)
  assert.equal(installed.code, 0, installed.stderr)
  assert.match(installed.stdout, /shop\.example\.test: installed, valid until/)
  const listed = await runCli(['certs', 'shop'], env)
  assert.equal(listed.code, 0, listed.stderr)
  assert.match(listed.stdout, /^HOST\s+SOURCE\s+STATE\s+NOT AFTER\s+ISSUER\s+LAST ERROR/)
  assert.match(listed.stdout, /www\.example\.test\s+custom\s+valid/)
  const refused = await runCli(['certs', 'put', 'shop', 'www.example.test', '--cert', fresh.certFile, '--key', fresh.keyFile], env)
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /CERT_HOST_MISMATCH/)
  const removed = await runCli(['certs', 'delete', 'shop', 'www.example.test'], env)
  assert.equal(removed.code, 0, removed.stderr)
  const after = await call(`${d.url}/v1/apps/shop/certificates`, { token: d.adminToken })
  assert.deepEqual(after.body.certificates.map((c: { state: string }) => c.state), ['valid', 'missing'])
  assert.doesNotMatch(d.logs(), /PRIVATE KEY|BEGIN CERTIFICATE/)
})

test('a hostname dropped from proxy.hosts loses its certificate with the settings change', async () => {
  const set = await call(`${d.url}/v1/apps/shop/settings`, { method: 'PUT', headers: json, body: JSON.stringify({ proxy: { hosts: ['www.example.test'] } }), token: d.adminToken })
  assert.equal(set.status, 200, set.text)
  const file = path.join(d.dataDir, 'edge', 'certs', 'shop.example.test.pem')
  for (let i = 0; i < 50 && fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 20))
  assert.equal(fs.existsSync(file), false)
  const events = await call(`${d.url}/v1/apps/shop/events`, { token: d.adminToken })
  const removed = events.body.events.find((e: { action: string }) => e.action === 'certificate.remove')
  assert.deepEqual(removed.detail, { host: 'shop.example.test', source: 'custom' })
})

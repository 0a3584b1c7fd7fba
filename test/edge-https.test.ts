// Two apps on one HTTPS port of the edge, as an operator checks them with curl --resolve: one with a
// certificate berth got from a real ACME server (pebble, validating HTTP-01 on the edge's own HTTP port),
// one with a custom certificate; and a steady HTTPS client through deploys, a crash-on-boot release, a
// certificate replaced and berth killed, that may not lose a request.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { issue, makeCa } from './helpers/certs.js'
import { freePort, killProcessesUnder, processesUnder, spawnDaemon, tempDir, type ChildDaemon , appDataDir } from './helpers/daemon.js'
import { edgeGet } from './helpers/edge.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { startPebble, type Pebble } from './helpers/pebble.js'
import { steadyClient } from './helpers/steady.js'
import { until } from './helpers/wait.js'

const dir = tempDir('berth-https-')
const dataDir = path.join(dir, 'data')
const spawned: ChildDaemon[] = []
const open: { stop(): unknown }[] = []
let pebble: Pebble | null = null
let daemon: ChildDaemon | null = null
let token = ''

after(async () => {
  for (const o of open) await o.stop()
  for (const dm of spawned) await dm.stop('SIGKILL')
  await pebble?.stop()
  killProcessesUnder(dataDir)
  await until('every process to exit', () => processesUnder(dataDir).length === 0, 10_000).catch(() => {})
  assert.deepEqual(processesUnder(dataDir), [], 'no haproxy, BEAM, epmd or run_erl is left behind')
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 })
})

const api = (method: string, pathname: string, body?: unknown) =>
  call(`${daemon!.url}${pathname}`, { method, token, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })

/** curl as an operator runs it: the name resolved to the edge, the certificate checked against `cacert`. */
function curl(url: string, resolve: string, cacert: string): { code: number; status: string; body: string; stderr: string } {
  const out = path.join(dir, `curl-${process.hrtime.bigint()}.out`)
  const r = spawnSync('curl', ['-sS', '--max-time', '10', '--resolve', resolve, '--cacert', cacert, '-o', out, '-w', '%{http_code}', url], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir } })
  const body = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : ''
  return { code: r.status ?? -1, status: r.stdout, body, stderr: `${r.stderr}${r.error ? ` (${r.error.message})` : ''}${r.signal ? ` (${r.signal})` : ''}` }
}

test('one HTTPS port, two apps: an ACME certificate and a custom one, checked with curl; no request lost through deploys', { timeout: 300_000 }, async () => {
  fs.mkdirSync(dataDir)
  pebble = await startPebble(dir)
  const httpsPort = await freePort()
  const env = {
    BERTH_EDGE_HTTP: `127.0.0.1:${pebble.httpPort}`,
    BERTH_EDGE_HTTPS: `127.0.0.1:${httpsPort}`,
    BERTH_ACME_DIRECTORY: pebble.directory,
    BERTH_ACME_CA_FILE: pebble.caFile,
    BERTH_ACME_EMAIL: 'ops@berth.test',
    BERTH_EPMD_PORT: String(await freePort()),
  }
  daemon = await spawnDaemon(dataDir, env)
  spawned.push(daemon)
  token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  const root = path.join(dir, 'pebble-root.pem')
  fs.writeFileSync(root, await pebble.root())
  const ca = makeCa(dir, 'shop owners CA')

  for (const app of ['shop', 'blog']) {
    const data = path.join(dir, `${app}-data`)
    appDataDir(data)
    assert.equal((await api('PUT', `/v1/apps/${app}/env`, { HELLO_DATA_DIR: data, PORT: '1' })).status, 200)
  }
  assert.equal((await api('PUT', '/v1/apps/shop/settings', { releaseName: 'hello', stableWindowMs: 1000, proxy: { hosts: ['shop.berth.test'], drainTimeoutMs: 2000, hstsMaxAge: 600 } })).status, 200)
  assert.equal((await api('PUT', '/v1/apps/blog/settings', { releaseName: 'hello', stableWindowMs: 1000, proxy: { hosts: ['blog.berth.test'], tls: 'custom' } })).status, 200)
  const ids: Record<string, string> = {}
  for (const name of ['v1', 'v2', 'crash_on_boot'] as const) {
    const res = await upload(daemon.url, 'shop', fs.readFileSync((await fixture(name)).tarball), { token })
    assert.equal(res.status, 201, res.text)
    ids[name] = res.body.id
  }
  const blogUp = await upload(daemon.url, 'blog', fs.readFileSync((await fixture('v1')).tarball), { token })
  assert.equal(blogUp.status, 201, blogUp.text)

  // The first deploy puts shop's hostname on the edge; its certificate is ordered then, and validated by
  // pebble over the edge's own HTTP listener.
  assert.equal((await api('POST', '/v1/apps/shop/deployments?wait=true', { release: ids.v1 })).body.state, 'succeeded')
  await until('shop\'s ACME certificate', async () => (await api('GET', '/v1/apps/shop/certificates')).body.certificates[0]?.state === 'valid', 60_000)
  const cert = (await api('GET', '/v1/apps/shop/certificates')).body.certificates[0]
  assert.equal(cert.source, 'acme')
  assert.match(cert.issuer, /Pebble/)
  const shop = curl(`https://shop.berth.test:${httpsPort}/`, `shop.berth.test:${httpsPort}:127.0.0.1`, root)
  assert.equal(shop.code, 0, shop.stderr)
  assert.equal(shop.status, '200')
  assert.match(shop.body, /^hello 0\.1\.0/)
  assert.equal((await edgeGet(httpsPort, 'shop.berth.test', '/', { tls: { ca: fs.readFileSync(root) } })).headers['strict-transport-security'], 'max-age=600')
  // Plain HTTP now goes to HTTPS, path and query kept.
  const redirect = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '--resolve', `shop.berth.test:${pebble.httpPort}:127.0.0.1`, `http://shop.berth.test:${pebble.httpPort}/a/b?c=d&e=f`], { encoding: 'utf8' })
  assert.equal(redirect.stdout, `308 https://shop.berth.test:${httpsPort}/a/b?c=d&e=f`)

  // blog: a custom certificate from the operator's own CA, on the same port.
  const blogCert = issue(ca, { names: ['blog.berth.test'] })
  const put = await api('PUT', '/v1/apps/blog/certificates/blog.berth.test', { cert: blogCert.cert, key: blogCert.key })
  assert.equal(put.status, 200, put.text)
  assert.equal((await api('POST', '/v1/apps/blog/deployments?wait=true', { release: blogUp.body.id })).body.state, 'succeeded')
  const blog = curl(`https://blog.berth.test:${httpsPort}/whoami`, `blog.berth.test:${httpsPort}:127.0.0.1`, ca.certFile)
  assert.equal(blog.code, 0, blog.stderr)
  assert.match(blog.body, /^0\.1\.0 blog--a@\S+ port=\d+ xff=127\.0\.0\.1 xfp=https/)
  // Each name gets its own certificate: shop's CA does not vouch for blog, nor blog's for shop.
  assert.notEqual(curl(`https://blog.berth.test:${httpsPort}/`, `blog.berth.test:${httpsPort}:127.0.0.1`, root).code, 0)
  assert.notEqual(curl(`https://shop.berth.test:${httpsPort}/`, `shop.berth.test:${httpsPort}:127.0.0.1`, ca.certFile).code, 0)

  const client = steadyClient(httpsPort, { host: 'shop.berth.test', tls: { ca: fs.readFileSync(root) } })
  open.push(client)
  await until('the HTTPS client to get going', () => client.samples.length > 20, 10_000)
  assert.equal((await api('POST', '/v1/apps/shop/deployments?wait=true', { release: ids.v2 })).body.state, 'succeeded')
  const crash = await api('POST', '/v1/apps/shop/deployments?wait=true', { release: ids.crash_on_boot })
  assert.equal(crash.body.deployment.state, 'rolled_back', crash.text)
  // blog's certificate replaced while shop serves.
  const renewed = issue(ca, { names: ['blog.berth.test'] })
  assert.equal((await api('PUT', '/v1/apps/blog/certificates/blog.berth.test', { cert: renewed.cert, key: renewed.key })).status, 200)
  // berth killed outright and started again: the edge serves on, and is adopted.
  const edgePid = (await api('GET', '/v1/edge')).body.pid
  await daemon.stop('SIGKILL')
  await new Promise((r) => setTimeout(r, 500))
  daemon = await spawnDaemon(dataDir, env)
  spawned.push(daemon)
  assert.equal((await api('GET', '/v1/edge')).body.pid, edgePid)
  assert.equal((await api('POST', '/v1/apps/shop/rollback?wait=true', { to: ids.v1 })).body.state, 'succeeded')
  const samples = client.samples.length
  await until('requests after the rollback', () => client.samples.length > samples + 20, 10_000)
  await client.stop()
  const failed = client.samples.filter((s) => !s.ok)
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${client.samples.length} HTTPS requests failed`)
  assert.ok(client.samples.some((s) => /^hello 0\.2\.0/.test(s.body)), 'the client saw v2 during the run')
})

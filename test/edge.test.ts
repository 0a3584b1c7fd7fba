// The shared edge with real releases, a real haproxy and a real berth process: two apps by hostname on one
// port, an unknown host, forged forwarding headers, deploys, a crash-on-boot release, a rollback, a second
// app added, a pause and kill -9 of berth, all under a steady keep-alive client that may not lose a request.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { freePort, killProcessesUnder, processesUnder, runCli, spawnDaemon, tempDir, type ChildDaemon , appDataDir } from './helpers/daemon.js'
import { edgeGet } from './helpers/edge.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { steadyClient } from './helpers/steady.js'
import { until } from './helpers/wait.js'

const dataDir = tempDir('berth-edge-')
const spawned: ChildDaemon[] = []
const open: { stop(): unknown }[] = []
let daemon: ChildDaemon | null = null
let token = ''

after(async () => {
  for (const o of open) await o.stop()
  for (const dm of spawned) await dm.stop('SIGKILL')
  killProcessesUnder(dataDir)
  await until('every process to exit', () => processesUnder(dataDir).length === 0, 10_000).catch(() => {})
  assert.deepEqual(processesUnder(dataDir), [], 'no haproxy, BEAM, epmd or run_erl is left behind')
  fs.rmSync(dataDir, { recursive: true, force: true, maxRetries: 5 })
})

const api = (method: string, pathname: string, body?: unknown) =>
  call(`${daemon!.url}${pathname}`, { method, token, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })

test('two apps by hostname on one edge: routing, forged headers, deploys, a pause and berth killed lose no request', { timeout: 300_000 }, async () => {
  const httpPort = await freePort()
  const httpsPort = await freePort()
  const env = { BERTH_EDGE_HTTP: `127.0.0.1:${httpPort}`, BERTH_EDGE_HTTPS: `127.0.0.1:${httpsPort}`, BERTH_EPMD_PORT: String(await freePort()) }
  daemon = await spawnDaemon(dataDir, env)
  spawned.push(daemon)
  token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()

  const edge = await api('GET', '/v1/edge')
  assert.equal(edge.status, 200, edge.text)
  assert.equal(edge.body.configured, true)
  assert.equal(edge.body.state, 'running')
  const edgePid = edge.body.pid as number
  // A host no app claims gets berth's 404 page, on HTTP and HTTPS (with the default certificate, naming no app).
  const unknown = await edgeGet(httpPort, 'nobody.test')
  assert.equal(unknown.status, 404)
  assert.equal(unknown.headers['x-berth-edge'], 'no-app')
  const unknownTls = await edgeGet(httpsPort, 'nobody.test', '/', { tls: {} })
  assert.equal(unknownTls.status, 404)
  assert.equal(unknownTls.peer?.subject, 'berth-edge-default')

  // blog runs the hello release under its own name (releaseName), with its own node and data.
  for (const app of ['hello', 'blog']) {
    const data = path.join(dataDir, `${app}-data`)
    appDataDir(data)
    assert.equal((await api('PUT', `/v1/apps/${app}/env`, { HELLO_DATA_DIR: data, PORT: '1' })).status, 200)
  }
  assert.equal((await api('PUT', '/v1/apps/blog/settings', { releaseName: 'hello' })).status, 200)
  const ids: Record<string, string> = {}
  for (const name of ['v1', 'v2', 'crash_on_boot'] as const) {
    const res = await upload(daemon.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token })
    assert.equal(res.status, 201, res.text)
    ids[name] = res.body.id
  }
  const blogUp = await upload(daemon.url, 'blog', fs.readFileSync((await fixture('v2')).tarball), { token })
  assert.equal(blogUp.status, 201, blogUp.text)
  const set = await api('PUT', '/v1/apps/hello/settings', { stableWindowMs: 1000, proxy: { hosts: ['Shop.Test', 'www.shop.test'], tls: 'off', drainTimeoutMs: 2000 } })
  assert.equal(set.status, 200, set.text)
  assert.deepEqual(set.body.proxy.hosts, ['shop.test', 'www.shop.test'], 'hostnames are kept lower case')
  assert.equal(set.body.proxy.listen, null)
  // One hostname, one app.
  const taken = await api('PUT', '/v1/apps/blog/settings', { releaseName: 'hello', proxy: { hosts: ['blog.test', 'shop.test'] } })
  assert.equal(taken.status, 409, taken.text)
  assert.equal(taken.body.code, 'HOST_TAKEN')
  assert.equal(taken.body.owner, 'hello')
  for (const bad of [['*.shop.test'], ['127.0.0.1'], ['shop'], ['a..b.test']]) {
    const r = await api('PUT', '/v1/apps/blog/settings', { proxy: { hosts: bad } })
    assert.equal(r.status, 400, `${bad}: ${r.text}`)
    assert.equal(r.body.code, 'PROXY_SETTING_INVALID')
  }
  // The edge's own addresses are not an app's to listen on.
  const onEdge = await api('PUT', '/v1/apps/blog/settings', { proxy: { listen: `127.0.0.1:${httpsPort}` } })
  assert.equal(onEdge.status, 409, onEdge.text)
  assert.equal(onEdge.body.owner, 'edge')
  assert.equal((await api('PUT', '/v1/apps/blog/settings', { releaseName: 'hello', stableWindowMs: 1000, proxy: { hosts: ['blog.test'], tls: 'off' } })).status, 200)

  const first = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })
  assert.equal(first.body.state, 'succeeded', first.text)
  assert.match((await edgeGet(httpPort, 'shop.test')).body, /^hello 0\.1\.0/)
  assert.match((await edgeGet(httpPort, 'WWW.shop.test:80')).body, /^hello 0\.1\.0/, 'the Host is matched without case and port')
  // Forwarding headers come from the edge, never from the client.
  const who = await edgeGet(httpPort, 'shop.test', '/whoami', { headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https' } })
  assert.match(who.body, /xff=127\.0\.0\.1 xfp=http\n$/, who.body)
  const whoTls = await edgeGet(httpsPort, 'shop.test', '/whoami', { tls: {} })
  assert.match(whoTls.body, /xff=127\.0\.0\.1 xfp=https\n$/, whoTls.body)
  // Before blog is deployed its hostname is not routed: berth's 404, never hello's content.
  assert.equal((await edgeGet(httpPort, 'blog.test')).status, 404)

  const client = steadyClient(httpPort, { host: 'shop.test' })
  open.push(client)
  await until('the client to get going', () => client.samples.length > 20, 10_000)

  const v2 = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v2 })
  assert.equal(v2.body.state, 'succeeded', v2.text)
  assert.match((await edgeGet(httpPort, 'shop.test')).body, /^hello 0\.2\.0/)
  const crash = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.crash_on_boot })
  assert.equal(crash.body.deployment.state, 'rolled_back', crash.text)

  // A second app joins the edge (a reload of haproxy): hello's client loses nothing.
  const blog = await api('POST', '/v1/apps/blog/deployments?wait=true', { release: blogUp.body.id })
  assert.equal(blog.body.state, 'succeeded', blog.text)
  assert.match((await edgeGet(httpPort, 'blog.test', '/whoami')).body, /^0\.2\.0 blog--a@/)
  assert.match((await edgeGet(httpPort, 'shop.test', '/whoami')).body, /^0\.2\.0 hello--/)

  // Paused: 503 with Retry-After and the operator's page; the other app is untouched. Resumed: 200.
  const paused = await api('POST', '/v1/apps/blog/pause', { retryAfterSeconds: 120, page: '<h1>back soon</h1>' })
  assert.equal(paused.status, 200, paused.text)
  const p = await edgeGet(httpPort, 'blog.test', '/anything?x=1')
  assert.equal(p.status, 503)
  assert.equal(p.headers['retry-after'], '120')
  assert.equal(p.body, '<h1>back soon</h1>')
  assert.equal((await edgeGet(httpPort, 'shop.test')).status, 200)
  assert.equal((await api('GET', '/v1/edge')).body.apps.find((a: { app: string }) => a.app === 'blog').paused, true)
  // An admin token limited to blog sees the edge and blog, not hello's hostnames.
  const made = await runCli(['token', 'create', '--name', 'blog-admin', '--scopes', 'admin', '--app', 'blog'], { BERTH_DATA_DIR: dataDir })
  assert.equal(made.code, 0, made.stderr)
  const limited = await call(`${daemon.url}/v1/edge`, { token: made.stdout.trim() })
  assert.deepEqual(limited.body.apps.map((a: { app: string }) => a.app), ['blog'])
  assert.doesNotMatch(limited.text, /shop\.test/)

  // berth killed outright: the edge keeps serving, and the next berth adopts it, pause included.
  await daemon.stop('SIGKILL')
  await new Promise((r) => setTimeout(r, 800))
  daemon = await spawnDaemon(dataDir, env)
  spawned.push(daemon)
  const adopted = await api('GET', '/v1/edge')
  assert.equal(adopted.body.pid, edgePid, 'the edge was adopted, not restarted')
  assert.equal((await edgeGet(httpPort, 'blog.test')).status, 503, 'the pause outlived berth')
  assert.equal((await api('POST', '/v1/apps/blog/resume')).status, 200)
  assert.match((await edgeGet(httpPort, 'blog.test', '/whoami')).body, /^0\.2\.0 blog--/)

  const back = await api('POST', '/v1/apps/hello/rollback?wait=true', { to: ids.v1 })
  assert.equal(back.body.state, 'succeeded', back.text)
  assert.match((await edgeGet(httpPort, 'shop.test')).body, /^hello 0\.1\.0/)

  // Each request through the edge is a JSON line in its app's access log (never the query string), and counted.
  assert.equal((await edgeGet(httpPort, 'shop.test', '/whoami?token=secret-in-query')).status, 200)
  const accessLog = path.join(dataDir, 'apps/hello/log/access.log')
  await until('the access lines to be filed', () => fs.existsSync(accessLog) && fs.readFileSync(accessLog, 'utf8').includes('whoami'), 10_000).catch((err: Error) => {
    const edgeLog = path.join(dataDir, 'edge/access.log')
    throw new Error(`${err.message}; log/: ${fs.readdirSync(path.join(dataDir, 'apps/hello/log')).join(' ')}; edge/access.log: ${fs.existsSync(edgeLog) ? fs.readFileSync(edgeLog, 'utf8').slice(-400) : 'none'}; berth: ${daemon!.output().split('\n').filter((l) => /access|edge/.test(l)).slice(-4).join(' / ')}`)
  })
  const lines = fs.readFileSync(path.join(dataDir, 'apps/hello/log/access.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { app: string; host: string; path: string; status: number })
  assert.ok(lines.every((l) => l.app === 'hello'))
  assert.ok(lines.some((l) => l.path === '/whoami' && l.host === 'shop.test' && l.status === 200), JSON.stringify(lines.slice(-3)))
  assert.doesNotMatch(fs.readFileSync(path.join(dataDir, 'apps/hello/log/access.log'), 'utf8'), /secret-in-query/)
  const metrics = await call(`${daemon.url}/metrics`, { token })
  assert.match(metrics.text, /berth_edge_requests_total\{app="hello",code="2xx"\} \d+/)
  assert.match(metrics.text, /berth_edge_request_duration_seconds_count\{app="blog"\} \d+/)

  await client.stop()
  const failed = client.samples.filter((s) => !s.ok)
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${client.samples.length} requests failed`)
  assert.ok(client.samples.length > 200, `${client.samples.length} requests`)
})

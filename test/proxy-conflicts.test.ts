// Proxy conflicts and leftovers (issue 23 §2), with a real berth, real releases and real haproxies: one
// listen address serves one app (409 at the settings, a clear PROXY_START_FAILED at the bind, never a split
// of requests between two processes), and a proxy turned off is gone after a restart, its address free.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, test } from 'node:test'
import { freePort, processesUnder, startDaemon, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

const daemons: TestDaemon[] = []
const foreign: ChildProcess[] = []

after(async () => {
  for (const p of foreign) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
  for (const d of daemons) {
    const dir = d.dataDir
    await d.stop()
    assert.deepEqual(processesUnder(dir), [], 'no haproxy, BEAM, epmd or run_erl is left behind')
  }
})

function api(d: TestDaemon, method: string, pathname: string, body?: unknown) {
  return call(`${d.url}${pathname}`, { method, token: d.adminToken, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
}

function canListen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, host, () => srv.close(() => resolve(true)))
  })
}

/** berth's own haproxies (the foreign one runs from the data directory too, but not from apps/). */
const haproxies = (d: TestDaemon) => processesUnder(path.join(d.dataDir, 'apps')).filter((p) => /haproxy/.test(p.cmd))

test('one address, one app: a proxy.listen another app, or berth, holds is refused with 409, also when two PUTs race', async () => {
  const d = await startDaemon()
  daemons.push(d)
  const p = await freePort()
  for (const app of ['shop', 'blog', 'wiki', 'docs']) assert.equal((await api(d, 'PUT', `/v1/apps/${app}/env`, {})).status, 200)
  assert.equal((await api(d, 'PUT', '/v1/apps/shop/settings', { proxy: { listen: `127.0.0.1:${p}` } })).status, 200)

  // The same address, and every spelling that overlaps it on Linux: the wildcards cover 127.0.0.1.
  for (const listen of [`127.0.0.1:${p}`, `0.0.0.0:${p}`, `[::]:${p}`, `[::ffff:127.0.0.1]:${p}`]) {
    const res = await api(d, 'PUT', '/v1/apps/blog/settings', { proxy: { listen } })
    assert.equal(res.status, 409, `${listen}: ${res.text}`)
    assert.equal(res.headers.get('content-type'), 'application/problem+json')
    assert.equal(res.body.code, 'PROXY_LISTEN_IN_USE')
    assert.equal(res.body.app, 'shop')
    assert.equal(res.body.field, 'proxy.listen')
    assert.match(res.body.detail, /the proxy of app "shop"/)
  }
  assert.equal((await api(d, 'GET', '/v1/apps/blog/settings')).body.proxy, null, 'nothing of a refused change is stored')
  // Another loopback address, or another port, is another listener.
  assert.equal((await api(d, 'PUT', '/v1/apps/blog/settings', { proxy: { listen: `127.0.0.2:${p}` } })).status, 200)
  // The app itself may restate its own address (and change its other proxy fields).
  assert.equal((await api(d, 'PUT', '/v1/apps/shop/settings', { proxy: { listen: `127.0.0.1:${p}`, drainTimeoutMs: 1000 } })).status, 200)

  // berth's own listener (BERTH_LISTEN) is nobody's proxy address, on any spelling that reaches it.
  const berthPort = Number(new URL(d.url).port)
  for (const listen of [`127.0.0.1:${berthPort}`, `0.0.0.0:${berthPort}`]) {
    const res = await api(d, 'PUT', '/v1/apps/wiki/settings', { proxy: { listen } })
    assert.equal(res.status, 409, res.text)
    assert.equal(res.body.code, 'PROXY_LISTEN_IN_USE')
    assert.equal(res.body.owner, 'berth')
  }

  // Two PUTs at once for one new address: exactly one wins (the check and the write are one transaction).
  const q = await freePort()
  const raced = await Promise.all(['wiki', 'docs'].map((app) => api(d, 'PUT', `/v1/apps/${app}/settings`, { proxy: { listen: `0.0.0.0:${q}` } })))
  assert.deepEqual(raced.map((r) => r.status).sort(), [200, 409], raced.map((r) => r.text).join('\n'))

  // Turning a proxy off frees its address for the settings of others.
  assert.equal((await api(d, 'PUT', '/v1/apps/shop/settings', { proxy: null })).status, 200)
  assert.equal((await api(d, 'PUT', '/v1/apps/docs/settings', { proxy: { listen: `127.0.0.1:${p}` } })).status, 200)
})

/** A berth with hello v1 uploaded, its env giving the node PORT=appPort; shared by the two tests below. */
async function helloDaemon(): Promise<{ d: TestDaemon; appPort: number; v1: string }> {
  const d = await startDaemon()
  daemons.push(d)
  const appPort = await freePort()
  const appData = path.join(d.dataDir, 'hello-data')
  appDataDir(appData)
  assert.equal((await api(d, 'PUT', '/v1/apps/hello/env', { PORT: String(appPort), HELLO_DATA_DIR: appData })).status, 200)
  const v1 = await upload(d.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken })
  assert.equal(v1.status, 201, v1.text)
  return { d, appPort, v1: v1.body.id }
}

test('a haproxy that cannot bind fails the deploy with PROXY_START_FAILED; it never shares the port with another program', { timeout: 240_000 }, async () => {
  const { d, v1 } = await helloDaemon()
  const taken = await freePort()

  // A program that is not berth's holds the address with SO_REUSEPORT, as a second agent's haproxy would (the
  // settings of this berth know nothing of it): haproxy's default.
  const dir = path.join(d.dataDir, 'foreign')
  fs.mkdirSync(dir)
  const cfg = path.join(dir, 'foreign.cfg')
  fs.writeFileSync(cfg, ['defaults', '  mode http', '  timeout connect 1s', '  timeout client 5s', '  timeout server 5s', 'frontend f', `  bind 127.0.0.1:${taken}`, '  http-request return status 200 content-type text/plain string "foreign\\n"', ''].join('\n'))
  const squatter = spawn(d.config.haproxy, ['-db', '-f', cfg], { stdio: 'ignore' })
  foreign.push(squatter)
  await until('the foreign haproxy to listen', async () => (await fetch(`http://127.0.0.1:${taken}/`).then((r) => r.text(), () => '')) === 'foreign\n', 10_000)

  assert.equal((await api(d, 'PUT', '/v1/apps/hello/settings', { stableWindowMs: 500, bootTimeoutMs: 30_000, proxy: { listen: `127.0.0.1:${taken}`, drainTimeoutMs: 1000 } })).status, 200)
  const refused = await api(d, 'POST', '/v1/apps/hello/deployments?wait=true', { release: v1 })
  const dep = refused.body.deployment ?? refused.body
  assert.notEqual(dep.state, 'succeeded', refused.text)
  assert.equal(dep.reasonCode, 'PROXY_START_FAILED', refused.text)
  assert.match(dep.reason, new RegExp(`did not start on 127\\.0\\.0\\.1:${taken}`))
  assert.deepEqual(haproxies(d), [], "berth's haproxy that could not bind is gone")
  // Every request still reaches the program that had the address: none went to the app.
  const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`http://127.0.0.1:${taken}/`).then((r) => r.text())))
  assert.deepEqual(new Set(answers), new Set(['foreign\n']))
  squatter.kill('SIGKILL')
})

test('a proxy turned off is gone after a restart: its address is free and the node serves on its own PORT', { timeout: 240_000 }, async () => {
  const { d, appPort, v1 } = await helloDaemon()
  const listen = await freePort()
  assert.equal((await api(d, 'PUT', '/v1/apps/hello/settings', { stableWindowMs: 500, bootTimeoutMs: 30_000, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 1000 } })).status, 200)
  const ok = await api(d, 'POST', '/v1/apps/hello/deployments?wait=true', { release: v1 })
  assert.equal(ok.body.state, 'succeeded', ok.text)
  assert.equal(await (await fetch(`http://127.0.0.1:${listen}/`)).text(), 'hello 0.1.0\n')
  assert.equal(haproxies(d).length, 1)

  assert.equal((await api(d, 'PUT', '/v1/apps/hello/settings', { proxy: null })).status, 200)
  const restarted = await api(d, 'POST', '/v1/apps/hello/restart?wait=true')
  assert.equal(restarted.body.state, 'succeeded', restarted.text)
  const stopping = (restarted.body.steps as { name: string; output?: string }[]).find((s) => s.name === 'stopping')
  assert.match(stopping?.output ?? JSON.stringify(restarted.body.steps), new RegExp(`proxy on 127\\.0\\.0\\.1:${listen} is stopped`))
  assert.deepEqual(haproxies(d), [], 'no haproxy runs for the app any more')
  assert.equal(await canListen(listen), true, 'the proxy address is free')
  const status = await api(d, 'GET', '/v1/apps/hello')
  assert.equal(status.body.proxy, null, status.text)
  assert.equal(status.body.node.state, 'running')
  // The node serves directly on the PORT of its env, no longer on a private instance port.
  assert.equal(await (await fetch(`http://127.0.0.1:${appPort}/`)).text(), 'hello 0.1.0\n')
})

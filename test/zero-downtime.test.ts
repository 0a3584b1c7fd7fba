// Zero-downtime deploys behind the proxy, with real releases, a real haproxy and a real berth process: a
// steady keep-alive client and an open websocket through deploys, failed releases, a rollback, kill -9 and
// SIGTERM of berth. Not one request may fail; traffic moves v1 -> v2 -> v1; the old websocket drains.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { freePort, killProcessesUnder, processesUnder, runCli, spawnDaemon, tempDir, type ChildDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { steadyClient, type Sample } from './helpers/steady.js'
import { until } from './helpers/wait.js'

let dataDir = ''
const dirs: string[] = []
let daemon: ChildDaemon | null = null
const spawned: ChildDaemon[] = []
let token = ''

/** Clients and websockets a failed test would leave running (they would hold the test process open). */
const open: { stop(): unknown }[] = []

after(async () => {
  for (const o of open) await o.stop()
  // Every berth a test started, not only the last: a test that failed half-way leaves its own running, and
  // its open pipes would keep this file's process (and so the whole suite) waiting forever.
  for (const dm of spawned) await dm.stop('SIGKILL')
  for (const dir of dirs) {
    // berth leaves its nodes and proxies running on purpose; the test ends them (haproxy, BEAM, run_erl, epmd).
    killProcessesUnder(dir)
    await until('every process to exit', () => processesUnder(dir).length === 0, 10_000).catch(() => {})
    assert.deepEqual(processesUnder(dir), [], 'no haproxy, BEAM, epmd or run_erl is left behind')
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 })
  }
})

function freshDataDir(): void {
  dataDir = tempDir('berth-zdt-')
  dirs.push(dataDir)
  token = ''
}

/** The versions the client saw, in order, with repeats folded: e.g. ['hello 0.1.0', 'hello 0.2.0']. */
function sequence(samples: Sample[]): string[] {
  return samples.filter((s) => s.ok).map((s) => s.body).filter((b, i, all) => i === 0 || all[i - 1] !== b)
}

async function api(method: string, pathname: string, body?: unknown) {
  return call(`${daemon!.url}${pathname}`, { method, token, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
}

async function start(epmd: string, env: Record<string, string> = {}): Promise<void> {
  daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd, ...env })
  spawned.push(daemon)
  token ||= fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
}

function epmdNames(epmd: string): string[] {
  const epmdBin = spawnSync('sh', ['-c', `ls -d ${dataDir}/apps/hello/releases/*/erts-*/bin/epmd | head -1`], { encoding: 'utf8' }).stdout.trim()
  const r = spawnSync(epmdBin, ['-names'], { env: { ...process.env, ERL_EPMD_PORT: epmd }, encoding: 'utf8' })
  return [...r.stdout.matchAll(/^name (\S+) at port/gm)].map((m) => m[1]!)
}

/** The instances whose node listens on its distribution port (the nodes register with no epmd). */
async function liveNodes(): Promise<string[]> {
  let ports: Record<string, number> = {}
  try {
    ports = (JSON.parse(fs.readFileSync(path.join(dataDir, 'dist-ports.json'), 'utf8')) as { ports: Record<string, number> }).ports
  } catch {
    return []
  }
  const up: string[] = []
  for (const slot of ['a', 'b']) {
    const port = ports[`hello/${slot}`]
    if (!port) continue
    const open = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.destroy()
        resolve(true)
      })
      sock.once('error', () => resolve(false))
    })
    if (open) up.push(`hello--${slot}`)
  }
  return up
}

test('deploys, failed releases, a rollback and berth restarts behind the proxy fail no request', { timeout: 300_000 }, async () => {
  freshDataDir()
  const epmd = String(await freePort())
  const listen = await freePort()
  await start(epmd)
  const appData = path.join(dataDir, 'hello-data')
  appDataDir(appData)
  assert.equal((await api('PUT', '/v1/apps/hello/env', { HELLO_DATA_DIR: appData, PORT: '1' })).status, 200)
  const bad = await api('PUT', '/v1/apps/hello/settings', { proxy: { listen: 'nowhere' } })
  assert.equal(bad.status, 400)
  assert.equal(bad.body.code, 'PROXY_SETTING_INVALID')
  const set = await api('PUT', '/v1/apps/hello/settings', { stableWindowMs: 1000, bootTimeoutMs: 30_000, migrateTimeoutMs: 10_000, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 3000 } })
  assert.equal(set.status, 200, set.text)
  assert.deepEqual(set.body.proxy, { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 3000, healthPath: '/health', hosts: [], tls: null, httpsRedirect: null, hstsMaxAge: null, maxBodyBytes: null, timeoutMs: 60_000 })
  const ids: Record<string, string> = {}
  for (const name of ['v1', 'v2', 'crash_on_boot', 'migrate_fail'] as const) {
    const res = await upload(daemon!.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token })
    assert.equal(res.status, 201, res.text)
    ids[name] = res.body.id
  }

  const first = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })
  assert.equal(first.body.state, 'succeeded', first.text)
  // The node got a private port, not the app's PORT=1, and the proxy forwards with the usual headers.
  const who = await (await fetch(`http://127.0.0.1:${listen}/whoami`)).text()
  assert.match(who, /^0\.1\.0 hello--a@\S+ port=(\d+) xff=127\.0\.0\.1 xfp=http\n$/)
  assert.notEqual(Number(/port=(\d+)/.exec(who)![1]), listen)

  const client = steadyClient(listen)
  open.push(client)
  const ws = new WebSocket(`ws://127.0.0.1:${listen}/ws`)
  open.push({ stop: () => ws.terminate() })
  const greeting = await new Promise<string>((resolve, reject) => {
    ws.once('message', (m) => resolve(String(m)))
    ws.once('error', reject)
  })
  assert.match(greeting, /^hello 0\.1\.0 hello--a@/)
  let wsClosedAt = 0
  ws.on('close', () => (wsClosedAt = Date.now()))
  await until('the client to get going', () => client.samples.length > 20, 10_000)

  // v1 -> v2: the new instance boots in slot b while a serves; the websocket on a stays open through the drain.
  const deploying = await api('POST', '/v1/apps/hello/deployments', { release: ids.v2 })
  assert.equal(deploying.status, 202, deploying.text)
  await until('the v2 deploy to drain', async () => (await api('GET', `/v1/apps/hello/deployments/${deploying.body.id}`)).body.state === 'draining', 60_000)
  const during = await api('GET', '/v1/apps/hello')
  assert.equal(during.body.proxy?.draining?.slot, 'a', during.text)
  assert.ok(during.body.proxy.draining.remainingMs > 0 && during.body.proxy.draining.remainingMs <= 3000, during.text)
  assert.equal(during.body.proxy.live.slot, 'b')
  // Two instances at once, apart in every way: distribution ports (and no epmd at all), ports, pipes and console logs.
  const dist = (JSON.parse(fs.readFileSync(path.join(dataDir, 'dist-ports.json'), 'utf8')) as { ports: Record<string, number> }).ports
  assert.ok(dist['hello/a'] && dist['hello/b'] && dist['hello/a'] !== dist['hello/b'], JSON.stringify(dist))
  assert.deepEqual(epmdNames(epmd), [], 'the instances registered with no epmd')
  assert.deepEqual(await liveNodes(), ['hello--a', 'hello--b'])
  assert.notEqual(during.body.proxy.live.port, during.body.proxy.draining.port)
  for (const slot of ['a', 'b']) {
    assert.ok(fs.existsSync(path.join(dataDir, 'apps/hello/instances', slot, 'pipe/erlang.pipe.1.r')), `slot ${slot} has its own pipe`)
  }
  assert.match(fs.readFileSync(path.join(dataDir, 'apps/hello/log/a/erlang.log.1'), 'utf8'), /hello 0\.1\.0 booted/)
  assert.match(fs.readFileSync(path.join(dataDir, 'apps/hello/log/b/erlang.log.1'), 'utf8'), /hello 0\.2\.0 booted/)
  assert.equal(wsClosedAt, 0, 'the old websocket is open during the drain')
  const echo = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))))
  ws.send('still there')
  assert.equal(await echo, 'still there')
  await until('the v2 deploy to end', async () => ['succeeded', 'failed', 'rolled_back'].includes((await api('GET', `/v1/apps/hello/deployments/${deploying.body.id}`)).body.state), 30_000)
  const v2 = await api('GET', `/v1/apps/hello/deployments/${deploying.body.id}`)
  assert.equal(v2.body.state, 'succeeded', v2.text)
  assert.deepEqual(v2.body.steps.map((s: { name: string }) => s.name), ['migrating', 'switching', 'starting', 'verifying', 'routing', 'draining'])
  assert.match(v2.body.steps.at(-1).output, /closed 1 connection/)
  assert.ok(wsClosedAt > 0, 'the old websocket is closed after the drain')
  const routed = Date.parse(v2.body.steps[4].endedAt)
  assert.ok(wsClosedAt - routed >= 2500, `the websocket stayed open for the drain (${wsClosedAt - routed} ms)`)
  assert.deepEqual(await liveNodes(), ['hello--b'], 'the old instance is gone')

  // A release that crashes on boot never gets a request; v2 serves throughout.
  const crash = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.crash_on_boot })
  assert.equal(crash.body.deployment.state, 'rolled_back', crash.text)
  assert.equal(path.basename(fs.readlinkSync(path.join(dataDir, 'apps/hello/current'))), ids.v2)
  // A failing migration changes nothing.
  const mig = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.migrate_fail })
  assert.equal(mig.body.deployment.state, 'failed', mig.text)
  // The rollback goes through the same switch: v2 -> v1.
  const back = await api('POST', '/v1/apps/hello/rollback?wait=true', { to: ids.v1 })
  assert.equal(back.body.state, 'succeeded', back.text)

  // berth killed outright, then stopped politely: the proxy and the node keep serving, and are re-adopted.
  const proxyPid = JSON.parse(fs.readFileSync(path.join(dataDir, 'apps/hello/proxy/state.json'), 'utf8')).pid as number
  await daemon!.stop('SIGKILL')
  await new Promise((r) => setTimeout(r, 500))
  await start(epmd)
  const adopted = await api('GET', '/v1/apps/hello')
  assert.equal(adopted.body.node.state, 'running', adopted.text)
  assert.equal(adopted.body.proxy.pid, proxyPid, 'the proxy was re-adopted, not restarted')
  assert.equal(await daemon!.stop('SIGTERM'), 0)
  await new Promise((r) => setTimeout(r, 500))
  await start(epmd)
  assert.equal((await api('GET', '/v1/apps/hello')).body.proxy.pid, proxyPid)
  // The CLI shows the listener and the live instance.
  const cli = await runCli(['status', 'hello'], { BERTH_URL: daemon!.url, BERTH_TOKEN: token })
  assert.equal(cli.code, 0, cli.stderr)
  assert.match(cli.stdout, new RegExp(`proxy +127\\.0\\.0\\.1:${listen} running \\(haproxy pid ${proxyPid}\\)`))
  assert.match(cli.stdout, new RegExp(`live +${ids.v1} in slot a on 127\\.0\\.0\\.1:\\d+, run_erl pid \\d+`))
  await new Promise((r) => setTimeout(r, 300))

  await client.stop()
  const failed = client.samples.filter((s) => !s.ok)
  if (failed.length > 0) {
    const ds = (await api('GET', '/v1/apps/hello/deployments')).body.deployments as { kind: string; steps: { name: string; startedAt: string; endedAt: string }[] }[]
    const when = ds.flatMap((d) => d.steps.map((st) => `${d.kind}/${st.name} ${st.startedAt} ${st.endedAt} ${JSON.stringify((st as unknown as { output: string }).output).slice(0, 300)}`)).join('\n')
    const log = fs.readFileSync(path.join(dataDir, 'apps/hello/log/haproxy.log'), 'utf8')
    assert.fail(`${failed.length} of ${client.samples.length} requests failed, at ${failed.map((f) => new Date(f.at).toISOString()).join(', ')}\n${when}\n${log}`)
  }
  assert.deepEqual(sequence(client.samples), ['hello 0.1.0', 'hello 0.2.0', 'hello 0.1.0'])
  ws.terminate()

  // A proxy that dies is started again by berth, and status says so.
  process.kill(proxyPid, 'SIGKILL')
  await until('the proxy to be restarted', async () => {
    const s = (await api('GET', '/v1/apps/hello')).body.proxy
    return s?.restarts === 1 && s.state === 'running' && s.pid !== proxyPid
  }, 15_000)
  assert.equal(await (await fetch(`http://127.0.0.1:${listen}/`)).text(), 'hello 0.1.0\n')
  await daemon!.stop('SIGKILL')
  daemon = null
})

async function final(id: string) {
  return until(`deployment ${id} to end`, async () => {
    const d = (await api('GET', `/v1/apps/hello/deployments/${id}`)).body
    return ['succeeded', 'failed', 'rolled_back'].includes(d.state) ? d : null
  }, 60_000)
}

test('berth killed inside each step of a deploy behind the proxy: one live instance after, no failed request', { timeout: 300_000 }, async () => {
  freshDataDir()
  const epmd = String(await freePort())
  const listen = await freePort()
  await start(epmd)
  const ids: Record<string, string> = {}
  for (const name of ['v1', 'v2'] as const) ids[name] = (await upload(daemon!.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token })).body.id
  assert.equal((await api('PUT', '/v1/apps/hello/settings', { stableWindowMs: 500, bootTimeoutMs: 30_000, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 1000 } })).status, 200)
  assert.equal((await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })).status, 200)
  const client = steadyClient(listen)

  // Killed while the new instance is verified: it never took traffic, so it is stopped and v1 stays.
  await daemon!.stop('SIGKILL')
  await start(epmd, { BERTH_TEST_STEP_PAUSE: 'verifying:20000' })
  const d1 = (await api('POST', '/v1/apps/hello/deployments', { release: ids.v2 })).body
  await until('the new instance to boot', async () => (await liveNodes()).length === 2, 30_000)
  await daemon!.stop('SIGKILL')
  await start(epmd)
  const r1 = await final(d1.id)
  assert.equal(r1.state, 'failed', JSON.stringify(r1))
  assert.equal(path.basename(fs.readlinkSync(path.join(dataDir, 'apps/hello/current'))), ids.v1)
  await until('the unverified instance to stop', async () => JSON.stringify(await liveNodes()) === '["hello--a"]', 30_000)
  assert.equal((await api('GET', '/v1/apps/hello')).body.proxy.starting, null)

  // Killed after the switch, while the old instance drains: v2 took the traffic, so the deployment is
  // finished, and the old instance's websocket lives on for the rest of the drain.
  assert.equal((await api('PUT', '/v1/apps/hello/settings', { proxy: { drainTimeoutMs: 8000 } })).status, 200)
  await daemon!.stop('SIGKILL')
  await start(epmd, { BERTH_TEST_STEP_PAUSE: 'draining:20000' })
  const ws = new WebSocket(`ws://127.0.0.1:${listen}/ws`)
  open.push({ stop: () => ws.terminate() })
  assert.match(await new Promise<string>((resolve, reject) => (ws.once('message', (m) => resolve(String(m))), ws.once('error', reject))), /^hello 0\.1\.0 hello--a@/)
  let wsClosedAt = 0
  ws.on('close', () => (wsClosedAt = Date.now()))
  const d2 = (await api('POST', '/v1/apps/hello/deployments', { release: ids.v2 })).body
  await until('the switch', async () => (await api('GET', `/v1/apps/hello/deployments/${d2.id}`)).body.state === 'draining', 60_000)
  const routed = Date.parse((await api('GET', `/v1/apps/hello/deployments/${d2.id}`)).body.steps.find((st: { name: string }) => st.name === 'routing').endedAt)
  await daemon!.stop('SIGKILL')
  await start(epmd)
  const r2 = await final(d2.id)
  assert.equal(r2.state, 'succeeded', JSON.stringify(r2))
  assert.equal(wsClosedAt, 0, 'the old websocket outlives the restart of berth')
  const echo = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))))
  ws.send('after the restart')
  assert.equal(await echo, 'after the restart')
  await until('the drain to end the old websocket', () => wsClosedAt > 0, 20_000)
  assert.ok(wsClosedAt - routed >= 7000, `the websocket was kept for the drain (${wsClosedAt - routed} ms)`)
  assert.equal(path.basename(fs.readlinkSync(path.join(dataDir, 'apps/hello/current'))), ids.v2)
  await until('the old instance to stop', async () => JSON.stringify(await liveNodes()) === '["hello--b"]', 30_000)
  const app = await until('the old instance to leave the status', async () => {
    const a = (await api('GET', '/v1/apps/hello')).body
    return a.proxy.draining === null ? a : null
  }, 10_000)
  assert.equal(app.proxy.live.release, ids.v2)

  await client.stop()
  assert.deepEqual(client.samples.filter((s) => !s.ok), [], 'no request failed')
  assert.deepEqual(sequence(client.samples), ['hello 0.1.0', 'hello 0.2.0'])
  await daemon!.stop('SIGKILL')
  daemon = null
})

test('a new listen address: a new haproxy first, the old one finishes the requests it carries; one that cannot bind leaves the old serving', { timeout: 180_000 }, async () => {
  freshDataDir()
  const epmd = String(await freePort())
  const p1 = await freePort()
  const p2 = await freePort()
  await start(epmd)
  const ids: Record<string, string> = {}
  for (const name of ['v1', 'v2'] as const) ids[name] = (await upload(daemon!.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token })).body.id
  const listenOn = async (port: number) => assert.equal((await api('PUT', '/v1/apps/hello/settings', { stableWindowMs: 500, bootTimeoutMs: 30_000, proxy: { listen: `127.0.0.1:${port}`, drainTimeoutMs: 5000 } })).status, 200)
  const deploy = (release: string) => api('POST', '/v1/apps/hello/deployments?wait=true', { release })
  const served = async (port: number) => (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) })).text()
  const haproxies = () => processesUnder(dataDir).filter((p) => /haproxy/.test(p.cmd))
  const sockets = () => fs.readdirSync(path.join(dataDir, 'apps/hello/proxy')).filter((f) => f.endsWith('.sock'))
  await listenOn(p1)
  assert.equal((await deploy(ids.v1!)).body.state, 'succeeded')
  assert.equal(haproxies().length, 1)

  // The new address is taken: the new haproxy cannot start, the old one serves throughout and stays berth's.
  const squatter = net.createServer().listen(p2, '127.0.0.1')
  await once(squatter, 'listening')
  try {
    await listenOn(p2)
    const refused = await deploy(ids.v2!)
    assert.equal(refused.body.deployment?.state, 'rolled_back', refused.text)
    assert.equal(refused.body.deployment.reasonCode, 'PROXY_START_FAILED')
    assert.match(refused.body.deployment.reason, new RegExp(`did not start on 127\\.0\\.0\\.1:${p2}.*rolled back to ${ids.v1}, which served throughout`, 's'))
    assert.equal(path.basename(fs.readlinkSync(path.join(dataDir, 'apps/hello/current'))), ids.v1)
    assert.equal(await served(p1), 'hello 0.1.0\n')
    assert.equal(haproxies().length, 1, 'the haproxy that could not bind is gone')
  } finally {
    squatter.close()
  }
  // Still reachable on its own socket: a deploy on the old address switches it.
  await listenOn(p1)
  assert.equal((await deploy(ids.v2!)).body.state, 'succeeded')
  assert.equal(await served(p1), 'hello 0.2.0\n')
  assert.equal(sockets().length, 1)

  // Moved while slow requests are in flight: none is cut; the old address then refuses, the new one serves.
  await listenOn(p2)
  const results: { start: number; end: number; outcome: string }[] = []
  let going = true
  const slow = (async () => {
    const inFlight: Promise<void>[] = []
    while (going) {
      const startAt = Date.now()
      inFlight.push(
        fetch(`http://127.0.0.1:${p1}/slow`, { signal: AbortSignal.timeout(10_000) }).then(
          async (res) => void results.push({ start: startAt, end: Date.now(), outcome: `${res.status} ${await res.text()}` }),
          (err) => void results.push({ start: startAt, end: Date.now(), outcome: (err as { cause?: { code?: string } }).cause?.code ?? String(err) }),
        ),
      )
      await sleep(150)
    }
    await Promise.all(inFlight)
  })()
  const moved = await deploy(ids.v1!)
  going = false
  await slow
  assert.equal(moved.body.state, 'succeeded', moved.text)
  assert.equal(await served(p2), 'hello 0.1.0\n')
  const cut = results.filter((r) => !r.outcome.startsWith('200 ') && r.outcome !== 'ECONNREFUSED')
  assert.deepEqual(cut, [], 'no request in flight on the old address was cut')
  const events = (await api('GET', '/v1/apps/hello/events')).body.events as { action: string; at: string }[]
  const retired = events.find((e) => e.action === 'proxy.retire')
  assert.ok(retired, 'the move is in the audit trail')
  const retiredAt = Date.parse(retired.at)
  const across = results.filter((r) => r.start < retiredAt && r.end > retiredAt)
  assert.ok(across.length > 0, `requests spanned the move (${JSON.stringify(results.map((r) => [r.start - retiredAt, r.end - retiredAt, r.outcome]))})`)
  assert.ok(across.every((r) => r.outcome === '200 slow 0.2.0\n'), 'answered by the old instance, through the old proxy')
  await until('the old haproxy to exit once its connections are done', () => haproxies().length === 1, 10_000)
  await until("the old proxy's socket to go", () => sockets().length === 1, 5000)
  await assert.rejects(fetch(`http://127.0.0.1:${p1}/`, { signal: AbortSignal.timeout(2000) }), 'the old address is closed')
})

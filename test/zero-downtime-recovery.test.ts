// Behind the proxy, two things that must follow the live instance across slots: a log follow opened before a
// deploy goes on with the new instance's console, and a berth.db lost while berth was down finds the instance
// haproxy routes to again (same BEAM, no second start, no failed request).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort, killProcessesUnder, processesUnder, runCli, spawnDaemon, tempDir, type ChildDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { steadyClient } from './helpers/steady.js'
import { until } from './helpers/wait.js'


describe('the live instance behind the proxy, followed across a switch and found again without berth.db', () => {
  const dataDir = tempDir('berth-zdr-')
  const ids: Record<string, string> = {}
  let daemon: ChildDaemon | null = null
  let token = ''
  let epmd = ''
  let listen = 0
  let client: ReturnType<typeof steadyClient> | null = null
  let follow: http.ClientRequest | null = null
  let settingsBefore: unknown = null

  const api = (method: string, pathname: string, body?: unknown) =>
    call(`${daemon!.url}${pathname}`, { method, token, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
  const spawned: ChildDaemon[] = []
  const start = async (env: Record<string, string> = {}) => {
    daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd, ...env })
    spawned.push(daemon)
    token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  }
  const consolePrint = async (text: string) => {
    const r = await api('POST', '/v1/apps/hello/rpc', { expr: `:io.format(:user, "~s~n", [${JSON.stringify(text)}])` })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.body.code, 0, r.text)
  }
  /** The environment (in berth.db only: set again after it was lost) and the settings (kept in settings.json too). */
  const configure = async (drainTimeoutMs = 1000) => {
    assert.equal((await api('PUT', '/v1/apps/hello/env', { HELLO_DATA_DIR: appDataDir(path.join(dataDir, 'hello-data')), PORT: '1' })).status, 200)
    const set = await api('PUT', '/v1/apps/hello/settings', { stableWindowMs: 1000, bootTimeoutMs: 30_000, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs } })
    assert.equal(set.status, 200, set.text)
  }
  const runErls = () => processesUnder(dataDir).filter((p) => /run_erl /.test(p.cmd))

  before(async () => {
    epmd = String(await freePort())
    listen = await freePort()
    await start()
    const appData = path.join(dataDir, 'hello-data')
    appDataDir(appData)
    await configure()
    for (const name of ['v1', 'v2'] as const) {
      const res = await upload(daemon!.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token })
      assert.equal(res.status, 201, res.text)
      ids[name] = res.body.id
    }
    const first = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })
    assert.equal(first.body.state, 'succeeded', first.text)
  })

  after(async () => {
    follow?.destroy()
    await client?.stop()
    // Every berth a test started: one a failed test left running would hold this file's process open.
    for (const dm of spawned) await dm.stop('SIGKILL')
    // berth leaves its nodes and proxies running on purpose; the test ends them (haproxy, BEAM, run_erl, epmd).
    killProcessesUnder(dataDir)
    await until('every process to exit', () => processesUnder(dataDir).length === 0, 10_000).catch(() => {})
    assert.deepEqual(processesUnder(dataDir), [], 'no haproxy, BEAM, epmd or run_erl is left behind')
    fs.rmSync(dataDir, { recursive: true, force: true, maxRetries: 5 })
  })

  test('a console follow opened before a proxied deploy goes on with the new live instance', { timeout: 120_000 }, async () => {
    const seen: string[] = []
    follow = http.get(`${daemon!.url}/v1/apps/hello/logs?follow=true&lines=0`, { headers: { authorization: `Bearer ${token}` } })
    const response = await new Promise<http.IncomingMessage>((resolve) => follow!.on('response', resolve))
    assert.equal(response.statusCode, 200)
    response.on('data', (c: Buffer) => seen.push(c.toString()))
    await consolePrint('before-switch-marker')
    await until('the marker of the instance in slot a', () => seen.join('').includes('before-switch-marker'), 15_000)

    const v2 = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v2 })
    assert.equal(v2.body.state, 'succeeded', v2.text)
    assert.equal((await api('GET', '/v1/apps/hello')).body.proxy.live.slot, 'b')
    await consolePrint('after-switch-marker')
    await until('the marker of the new live instance (slot b) on the same stream', () => seen.join('').includes('after-switch-marker'), 15_000).catch(() => {
      assert.fail(`the follow did not move to the new live instance; it sent:\n${seen.join('').slice(-2000)}`)
    })
    const text = seen.join('')
    assert.match(text, /hello 0\.2\.0 booted/, 'what the new instance wrote since the follow began comes too')
    assert.ok(text.indexOf('before-switch-marker') < text.indexOf('after-switch-marker'))
    assert.doesNotMatch(text, /hello 0\.1\.0 booted/, 'no history of the slot from before the follow began')
    follow.destroy()
    follow = null
  })

  test('berth.db lost while berth is down: the instance haproxy routes to is re-adopted, no request fails', { timeout: 120_000 }, async () => {
    const before = (await api('GET', '/v1/apps/hello')).body
    assert.equal(before.proxy.live.slot, 'b', JSON.stringify(before))
    assert.ok(before.node.beamPid > 0)
    settingsBefore = (await api('GET', '/v1/apps/hello/settings')).body
    await until('the old instance to be stopped after its drain', () => runErls().length === 1, 20_000)
    client = steadyClient(listen)
    await until('the client to get going', () => client!.samples.length > 20, 10_000)

    assert.equal(await daemon!.stop('SIGTERM'), 0)
    for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm']) fs.rmSync(path.join(dataDir, f), { force: true })
    await start()

    const app = await api('GET', '/v1/apps/hello')
    assert.equal(app.status, 200, app.text)
    assert.equal(app.body.node.state, 'running', app.text)
    assert.equal(app.body.node.pid, before.node.pid, 'the same run_erl is re-adopted')
    assert.equal(app.body.node.beamPid, before.node.beamPid, 'the same BEAM keeps serving')
    assert.equal(app.body.node.release, ids.v2)
    assert.deepEqual({ slot: app.body.proxy.live?.slot, port: app.body.proxy.live?.port }, { slot: 'b', port: before.proxy.live.port }, app.text)
    assert.equal(app.body.proxy.pid, before.proxy.pid, 'the proxy was left running and is the one status shows')
    // Nothing starts a second instance behind it, now or a moment later.
    await new Promise((r) => setTimeout(r, 3000))
    assert.deepEqual(runErls().map((p) => p.pid), [before.node.pid])
    const who = await (await fetch(`http://127.0.0.1:${listen}/whoami`)).text()
    assert.match(who, /^0\.2\.0 hello--b@/)
    const cli = await runCli(['status', 'hello'], { BERTH_URL: daemon!.url, BERTH_TOKEN: token })
    assert.equal(cli.code, 0, cli.stderr)
    assert.match(cli.stdout, new RegExp(`live +${ids.v2} in slot b on 127\\.0\\.0\\.1:${before.proxy.live.port}, run_erl pid ${before.node.pid}`))

    await client.stop()
    const failed = client.samples.filter((s) => !s.ok)
    assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${client.samples.length} requests failed`)
    assert.ok(client.samples.length > 50)
    assert.ok(client.samples.every((s) => s.body === 'hello 0.2.0'))
    client = null
  })

  test('berth.db lost: the proxy setting comes back, so the proxy is watched again (a killed haproxy is restarted)', { timeout: 60_000 }, async () => {
    const settings = await api('GET', '/v1/apps/hello/settings')
    assert.equal(settings.status, 200, settings.text)
    assert.equal(settings.body.proxy?.listen, `127.0.0.1:${listen}`)
    assert.deepEqual(settings.body, settingsBefore, 'the same settings as before the loss, proxy included')
    const before = (await api('GET', '/v1/apps/hello')).body
    assert.equal(before.proxy.state, 'running', JSON.stringify(before))
    const pid = before.proxy.pid as number
    process.kill(pid, 'SIGKILL')
    const after = await until('berth to start haproxy again', async () => {
      const p = (await api('GET', '/v1/apps/hello')).body.proxy
      return p?.state === 'running' && p.pid !== pid ? p : null
    }, 20_000)
    assert.equal(after.restarts, before.proxy.restarts + 1)
    assert.equal(after.live?.slot, 'b')
    assert.equal(await until('the proxy to serve', async () => (await fetch(`http://127.0.0.1:${listen}/`).then((r) => r.text(), () => null)) ?? null, 10_000), 'hello 0.2.0\n')
  })

  test('berth.db lost while an old instance drains: the one haproxy routes to stays live, the other stops', { timeout: 180_000 }, async () => {
    await configure(15_000)
    const v1 = await api('POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })
    assert.equal(v1.body.state, 'succeeded', v1.text)
    // Back to slot b, held in its drain: slot a (found first on disk) is the instance that must not win.
    await daemon!.stop('SIGKILL')
    await start({ BERTH_TEST_STEP_PAUSE: 'draining:30000' })
    const d = (await api('POST', '/v1/apps/hello/deployments', { release: ids.v2 })).body
    await until('the switch to slot b', async () => (await api('GET', `/v1/apps/hello/deployments/${d.id}`)).body.state === 'draining', 60_000)
    const during = (await api('GET', '/v1/apps/hello')).body
    assert.equal(during.proxy.live.slot, 'b', JSON.stringify(during))
    assert.equal(during.proxy.draining.slot, 'a', JSON.stringify(during))
    assert.equal(runErls().length, 2)
    client = steadyClient(listen)
    await until('the client to get going', () => client!.samples.length > 20, 10_000)

    await daemon!.stop('SIGKILL')
    for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm']) fs.rmSync(path.join(dataDir, f), { force: true })
    await start()

    const app = (await api('GET', '/v1/apps/hello')).body
    assert.equal(app.node.state, 'running', JSON.stringify(app))
    assert.equal(app.node.pid, during.node.pid, 'the instance haproxy routes to is the live one again')
    assert.equal(app.node.release, ids.v2)
    assert.equal(app.proxy.live?.slot, 'b', JSON.stringify(app))
    await until('the old instance to be stopped', () => runErls().length === 1, 30_000)
    assert.deepEqual(runErls().map((p) => p.pid), [during.node.pid])
    assert.match(await (await fetch(`http://127.0.0.1:${listen}/whoami`)).text(), /^0\.2\.0 hello--b@/)

    await client.stop()
    const failed = client.samples.filter((s) => !s.ok)
    assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${client.samples.length} requests failed`)
    assert.ok(client.samples.every((s) => s.body === 'hello 0.2.0'))
    client = null
  })
})

// Webhooks against a local receiver: events arrive as JSON signed with HMAC-SHA256, a failing receiver is
// retried with backoff, and the delivery history is visible through the API. Then the attack's findings:
// black-hole targets of one app (D5), private targets (D8) and secrets in webhook urls (D9).

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import net, { type AddressInfo } from 'node:net'
import { test } from 'node:test'
import { privateKind } from '../src/webhooks/targets.js'
import { freePort, startDaemon } from './helpers/daemon.js'
import { call, upload } from './helpers/http.js'
import { releaseSkeleton, tgz } from './helpers/tar.js'
import { until } from './helpers/wait.js'

test('signed deliveries, retried after a failure, with history', async () => {
  const received: { headers: http.IncomingHttpHeaders; body: string; at: number }[] = []
  let calls = 0
  const receiver = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      calls++
      received.push({ headers: req.headers, body, at: Date.now() })
      res.statusCode = calls === 1 ? 500 : 204
      res.end()
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  const d = await startDaemon({ BERTH_WEBHOOK_BACKOFF_MS: '300', BERTH_WEBHOOK_ALLOW_PRIVATE: '1' })
  try {
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
    const created = await call(`${d.url}/v1/webhooks`, { method: 'POST', token: d.adminToken, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url, app: 'hello', events: ['release.'] }) })
    assert.equal(created.status, 201, created.text)
    const { id, secret } = created.body
    assert.ok(secret.length >= 32)
    const listed = await call(`${d.url}/v1/webhooks`, { token: d.adminToken })
    assert.ok(!JSON.stringify(listed.body).includes(secret), 'the secret is shown once only')

    const up = await upload(d.url, 'hello', tgz(releaseSkeleton()), { token: d.adminToken })
    assert.equal(up.status, 201)
    const end = Date.now() + 10_000
    while (received.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    assert.equal(received.length, 2, 'delivered once more after the 500')
    assert.ok(received[1]!.at - received[0]!.at >= 250, 'the retry waited for the backoff')
    for (const r of received) {
      const expected = `sha256=${crypto.createHmac('sha256', secret).update(r.body).digest('hex')}`
      assert.equal(r.headers['x-berth-signature'], expected)
      assert.equal(r.headers['x-berth-event'], 'release.upload')
      assert.equal(r.headers['content-type'], 'application/json')
    }
    assert.equal(received[0]!.headers['x-berth-delivery'], received[1]!.headers['x-berth-delivery'])
    const payload = JSON.parse(received[1]!.body)
    assert.equal(payload.app, 'hello')
    assert.equal(payload.outcome, 'ok')
    assert.equal(payload.detail.release, up.body.id)

    const history = await call(`${d.url}/v1/webhooks/${id}/deliveries`, { token: d.adminToken })
    assert.equal(history.body.deliveries.length, 1)
    assert.equal(history.body.deliveries[0].state, 'delivered')
    assert.equal(history.body.deliveries[0].attempts, 2)
    assert.equal(history.body.deliveries[0].lastStatus, 204)
    assert.equal((await call(`${d.url}/v1/webhooks/${id}`, { method: 'DELETE', token: d.adminToken })).status, 204)
    assert.equal((await call(`${d.url}/v1/webhooks/${id}/deliveries`, { token: d.adminToken })).status, 404)
  } finally {
    await d.stop()
    receiver.close()
  }
})

const json = { 'content-type': 'application/json' }
const portOf = (s: http.Server | net.Server) => (s.address() as AddressInfo).port

/** A TCP server that accepts and never answers: a webhook target that is a black hole. */
async function blackHole(): Promise<{ server: net.Server; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  let accepted = 0
  const server = net.createServer((s) => {
    accepted++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    server,
    accepted: () => accepted,
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
}

/** An HTTP receiver that answers 204 at once and records when each event arrived. */
async function receiver(): Promise<{ server: http.Server; got: { at: number; event: string; body: any }[]; close: () => Promise<void> }> {
  const got: { at: number; event: string; body: any }[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      got.push({ at: Date.now(), event: String(req.headers['x-berth-event']), body: JSON.parse(body) })
      res.statusCode = 204
      res.end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, got, close: () => new Promise<void>((r) => server.close(() => r())) }
}

test("one app's black-hole hooks never delay another app's deliveries; hooks per app are capped; warnings are rate-limited (D5)", async (t) => {
  const hole = await blackHole()
  const fast = await receiver()
  const d = await startDaemon({ BERTH_WEBHOOK_ALLOW_PRIVATE: '1', BERTH_WEBHOOK_TIMEOUT_MS: '1000', BERTH_WEBHOOK_BACKOFF_MS: '100' }, { keepLogs: true })
  const hook = (app: string, url: string, token = d.adminToken) => call(`${d.url}/v1/webhooks`, { method: 'POST', token, headers: json, body: JSON.stringify({ url, app, events: ['env.'] }) })
  const setEnv = (app: string) => call(`${d.url}/v1/apps/${app}/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
  try {
    for (let i = 0; i < 20; i++) assert.equal((await hook('alpha', `http://127.0.0.1:${portOf(hole.server)}/h${i}`)).status, 201)
    const extra = await hook('alpha', `http://127.0.0.1:${portOf(hole.server)}/h20`)
    assert.equal(extra.status, 409, extra.text)
    assert.equal(extra.body.code, 'TOO_MANY_WEBHOOKS')
    assert.equal((await hook('beta', `http://127.0.0.1:${portOf(fast.server)}/b`)).status, 201, 'the cap is per app')

    // Three events of alpha: 60 deliveries into black holes, then one event of beta.
    for (let i = 0; i < 3; i++) assert.equal((await setEnv('alpha')).status, 200)
    await until('alpha attempts under way', () => hole.accepted() >= 10, 20_000)
    const sent = Date.now()
    assert.equal((await setEnv('beta')).status, 200)
    await until("beta's delivery", () => fast.got.length === 1, 30_000, 10)
    const latency = fast.got[0]!.at - sent
    assert.ok(latency < 1000, `beta's delivery took ${latency} ms behind alpha's black holes (a timeout is 1000 ms)`)

    // Every alpha hook fails twice or more: one warning per hook, not one per attempt.
    const { db } = d.server.services
    await until('two failed attempts per alpha hook', () => (db.prepare(`SELECT min(a) AS m FROM (SELECT sum(d.attempts) AS a FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE w.app = 'alpha' GROUP BY w.id)`).get() as { m: number }).m >= 2, 30_000, 100)
    const attempts = (db.prepare(`SELECT sum(d.attempts) AS n FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE w.app = 'alpha'`).get() as { n: number }).n
    const warnings = d
      .logs()
      .split('\n')
      .filter((l) => l.includes('"level":40') && l.includes('webhook'))
    t.diagnostic(`beta's delivery after ${latency} ms; ${attempts} failed attempts of alpha, ${warnings.length} warnings`)
    assert.ok(attempts >= 40, `${attempts} failed attempts`)
    assert.ok(warnings.length <= 20, `${warnings.length} warnings for ${attempts} failed attempts of 20 hooks`)
  } finally {
    await d.stop()
    await hole.close()
    await fast.close()
  }
})

test('webhook targets must be public: literal private addresses are refused at creation, names at delivery (D8)', async () => {
  const target = await receiver()
  const d = await startDaemon({ BERTH_WEBHOOK_BACKOFF_MS: '100' })
  const create = (url: string) => call(`${d.url}/v1/webhooks`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ url, app: 'hello', events: ['env.'] }) })
  try {
    const port = portOf(target.server)
    for (const host of ['127.0.0.1', '127.9.9.9', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:a00:1]', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '[::]', '[fd00::1]', '[fe80::1]', '224.0.0.1', '[ff02::1]', '[64:ff9b::a9fe:a9fe]', '[2002:c0a8:101::1]']) {
      const res = await create(`http://${host}:${port}/hook`)
      assert.equal(res.status, 400, `${host}: ${res.text}`)
      assert.equal(res.body.code, 'WEBHOOK_TARGET_PRIVATE', host)
    }
    // A name is judged after it resolves, at each delivery (DNS rebinding: resolve, check, connect to the checked address).
    const named = await create(`http://localhost:${port}/hook`)
    assert.equal(named.status, 201, named.text)
    await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
    const failed = await until('the refused delivery', async () => {
      const list = (await call(`${d.url}/v1/webhooks/${named.body.id}/deliveries`, { token: d.adminToken })).body.deliveries
      return list.find((x: { state: string }) => x.state === 'failed')
    })
    assert.equal(failed.attempts, 1, 'a refused target is not retried')
    assert.match(failed.lastError, /loopback address.*BERTH_WEBHOOK_ALLOW_PRIVATE/)
    assert.ok(!failed.lastError.includes(String(port)), 'the error names no port')
    assert.equal(target.got.length, 0, 'nothing reached the loopback receiver')
  } finally {
    await d.stop()
    await target.close()
  }
  assert.equal(privateKind('8.8.8.8'), null)
  assert.equal(privateKind('2606:4700::1111'), null)
  assert.equal(privateKind('100.128.0.1'), null)
  assert.equal(privateKind('::ffff:8.8.8.8'), null)
})

test('with private targets allowed, an app-limited admin sees no status or error of a delivery (D8)', async () => {
  const closed = await freePort()
  const d = await startDaemon({ BERTH_WEBHOOK_ALLOW_PRIVATE: '1', BERTH_WEBHOOK_BACKOFF_MS: '100' })
  try {
    const limited = d.token('hello-admin', ['admin'], ['hello'])
    const made = await call(`${d.url}/v1/webhooks`, { method: 'POST', token: limited, headers: json, body: JSON.stringify({ url: `http://127.0.0.1:${closed}/`, app: 'hello', events: ['env.'] }) })
    assert.equal(made.status, 201, made.text)
    await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
    const full = await until('a failed attempt', async () => (await call(`${d.url}/v1/webhooks/${made.body.id}/deliveries`, { token: d.adminToken })).body.deliveries.find((x: { attempts: number }) => x.attempts >= 1))
    assert.match(full.lastError, /ECONNREFUSED/, 'the operator sees what happened')
    const seen = (await call(`${d.url}/v1/webhooks/${made.body.id}/deliveries`, { token: limited })).body.deliveries[0]
    assert.equal(seen.lastStatus, null)
    assert.ok(!/ECONNREFUSED|127\.0\.0\.1|\d{4,5}/.test(seen.lastError), seen.lastError)
  } finally {
    await d.stop()
  }
})

test('webhook urls with credentials or tokens appear redacted in the audit trail and berth.log, whole only in the webhook API (D9)', async () => {
  const d = await startDaemon({ BERTH_WEBHOOK_ALLOW_PRIVATE: '1' })
  try {
    // An app with a directory on disk, so that it has a berth.log.
    assert.equal((await upload(d.url, 'hello', tgz(releaseSkeleton()), { token: d.adminToken })).status, 201)
    const urls = ['http://user:hunter2@127.0.0.1:9/hook?token=tok-abc123', 'https://hooks.slack.com/services/T0001/B0002/XoXsEcReT42xyz', 'https://chat.example.com/hooks/k3y8x1r9m2q7w4e5t6y7u8i9']
    for (const url of urls) {
      const res = await call(`${d.url}/v1/webhooks`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ url, app: 'hello', events: ['none.'] }) })
      assert.equal(res.status, 201, res.text)
    }
    const reader = d.token('reader', ['read'], ['hello'])
    const events = (await call(`${d.url}/v1/apps/hello/events`, { token: reader })).text
    const log = fs.readFileSync(path.join(d.dataDir, 'apps', 'hello', 'log', 'berth.log'), 'utf8')
    for (const secret of ['hunter2', 'tok-abc123', 'XoXsEcReT42xyz', 'B0002', 'k3y8x1r9m2q7w4e5t6y7u8i9']) {
      assert.ok(!events.includes(secret), `${secret} in the events`)
      assert.ok(!log.includes(secret), `${secret} in berth.log`)
    }
    assert.match(events, /http:\/\/\*\*\*@127\.0\.0\.1:9\/hook\?\*\*\*/)
    assert.match(events, /https:\/\/hooks\.slack\.com\/services\/\*\*\*/)
    assert.match(log, /webhook\.create/)
    const listed = JSON.stringify((await call(`${d.url}/v1/webhooks`, { token: d.adminToken })).body)
    for (const url of urls) assert.ok(listed.includes(new URL(url).toString()), 'the admin webhook API shows the url whole')
  } finally {
    await d.stop()
  }
})

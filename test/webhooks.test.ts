// Webhooks against a local receiver: events arrive as JSON signed with HMAC-SHA256, a failing receiver is
// retried with backoff, and the delivery history is visible through the API.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { startDaemon } from './helpers/daemon.js'
import { call, upload } from './helpers/http.js'
import { releaseSkeleton, tgz } from './helpers/tar.js'

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
  const d = await startDaemon({ BERTH_WEBHOOK_BACKOFF_MS: '300' })
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

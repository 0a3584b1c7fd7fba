// The outside attack on berth's HTTP listener (issue 23, D1-D4, D16), replayed against a real listening
// berth over real sockets: a valid token never locked out by others' failures, streams capped per token and
// app with /healthz answering throughout, slow and oversized headers, and slow uploads that took every slot.

import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { after, before, describe, test } from 'node:test'
import { loadConfig } from '../src/config.js'
import { startDaemon, type TestDaemon } from './helpers/daemon.js'
import { call } from './helpers/http.js'
import { tarBytes } from './helpers/tar.js'
import { until } from './helpers/wait.js'

const port = (d: TestDaemon) => Number(new URL(d.url).port)

/** The header of a plain tar entry of 50 MB: what follows is file content the unpacker keeps waiting for. */
const BIG_ENTRY = tarBytes([{ path: 'hello/data.bin', size: 50_000_000 }], { end: false })

/** GET /healthz on a connection of its own: the status, or 0 when the connection was refused or reset. */
function healthz(d: TestDaemon): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(`${d.url}/healthz`, { agent: false, timeout: 5000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode!))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(0))
  })
}

/**
 * Runs `fn` and answers the longest the event loop was late meanwhile (ms). berth runs in this process:
 * on a machine this busy a timer can fire seconds late, and a 408 cannot come earlier than its timer did.
 */
async function withLoopDelay<T>(fn: () => Promise<T>): Promise<{ value: T; lateMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 10 })
  h.enable()
  try {
    const value = await fn()
    return { value, lateMs: h.max / 1e6 }
  } finally {
    h.disable()
  }
}

/** A raw connection that sends `data` and keeps what comes back; `closed` resolves when the server ends it. */
function rawSocket(d: TestDaemon, data: string) {
  const socket = net.connect(port(d), '127.0.0.1')
  let got = ''
  let opened = Date.now()
  socket.setEncoding('latin1')
  socket.on('data', (c: string) => (got += c))
  socket.on('error', () => {})
  socket.on('connect', () => {
    opened = Date.now()
    socket.write(data)
  })
  let localPort = 0
  socket.once('connect', () => (localPort = socket.localPort!))
  const closed = new Promise<{ ms: number; at: number; got: string; localPort: number }>((resolve) => socket.on('close', () => resolve({ ms: Date.now() - opened, at: Date.now(), got, localPort })))
  return { socket, closed, isClosed: () => socket.destroyed || socket.closed }
}

describe('D1: failed authentications never lock a valid token out', () => {
  let d: TestDaemon
  before(async () => {
    d = await startDaemon({ BERTH_AUTH_FAILURES_PER_MINUTE: '5' })
  })
  after(async () => d.stop())

  test('after a loopback flood of failures (berth checking itself), the admin and a limited admin still get in; a guesser gets 429', async () => {
    // What berth's own unauthenticated health checks of its own /v1/apps looked like from 127.0.0.1.
    const statuses: number[] = []
    for (let i = 0; i < 20; i++) statuses.push((await call(`${d.url}/v1/apps`)).status)
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401])
    assert.deepEqual(new Set(statuses.slice(5)), new Set([429]), 'failures past the budget are limited')
    const limited = d.token('limited-admin', ['admin'], ['hello'])
    let ok = 0
    for (let i = 0; i < 30; i++) {
      const res = await call(`${d.url}/v1/apps`, { token: i % 2 ? d.adminToken : limited })
      if (res.status === 200) ok++
    }
    assert.equal(ok, 30, 'every request with a valid token passed (the attack: 7 of 30)')
    const guess = await call(`${d.url}/v1/apps`, { token: 'berth_0123456789abcdef_' + 'x'.repeat(43) })
    assert.equal(guess.status, 429)
    assert.equal(guess.body.code, 'AUTH_RATE_LIMITED')
    assert.ok(Number(guess.headers.get('retry-after')) > 0)
    // A mistyped secret of a real token is a failure like any other.
    const wrong = await call(`${d.url}/v1/apps`, { token: d.adminToken.slice(0, -4) + 'AAAA' })
    assert.equal(wrong.status, 429)
  })
})

describe('D2: streams are capped per token, per app and in all; /healthz keeps answering', () => {
  let d: TestDaemon
  before(async () => {
    d = await startDaemon()
    assert.equal((await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, body: '{}', headers: { 'content-type': 'application/json' } })).status, 200)
  })
  after(async () => d.stop())

  test('the attack: 520 log follows with one read token limited to one app', async () => {
    const token = d.token('reader', ['read'], ['hello'])
    const reqs: http.ClientRequest[] = []
    const outcomes = await Promise.all(
      Array.from({ length: 520 }, () => new Promise<string>((resolve) => {
        const req = http.get(`${d.url}/v1/apps/hello/logs?follow=true&lines=0`, { agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
          if (res.statusCode === 200) return resolve('200')
          let body = ''
          res.on('data', (c) => (body += c))
          res.on('end', () => resolve(`${res.statusCode} ${JSON.parse(body).code}`))
        })
        req.on('error', () => resolve('reset'))
        reqs.push(req)
      })),
    )
    const count = (s: string) => outcomes.filter((o) => o === s).length
    const summary = { streams: count('200'), refused: count('429 TOO_MANY_STREAMS'), reset: count('reset') }
    try {
      assert.equal(summary.streams, 8, JSON.stringify(summary))
      assert.equal(summary.streams + summary.refused + summary.reset, 520, JSON.stringify(outcomes.filter((o) => !['200', 'reset', '429 TOO_MANY_STREAMS'].includes(o))))
      assert.equal(d.server.app.berthStreams.open, 8)
      // During the attack: its streams still open, and a loopback client (the same address) gets in.
      for (let i = 0; i < 4; i++) assert.equal(await healthz(d), 200, `healthz ${i + 1} of 4 (the attack: reset 4 of 4)`)
      const events = await call(`${d.url}/v1/events`, { token })
      assert.equal(events.status, 429, 'the token has no stream left for /v1/events either')
      assert.equal(events.body.code, 'TOO_MANY_STREAMS')
      assert.equal(events.headers.get('retry-after'), '5')
      console.log(`D2: 520 follows -> ${JSON.stringify(summary)}; /healthz 4 of 4 answered`)
    } finally {
      for (const r of reqs) r.destroy()
    }
    await until('every stream slot given back', () => d.server.app.berthStreams.open === 0)
  })
})

describe('stream limits per token, per app and in all', () => {
  let d: TestDaemon
  before(async () => {
    d = await startDaemon({ BERTH_MAX_STREAMS: '4', BERTH_MAX_STREAMS_PER_TOKEN: '2', BERTH_MAX_STREAMS_PER_APP: '3' })
    assert.equal((await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, body: '{}', headers: { 'content-type': 'application/json' } })).status, 200)
  })
  after(async () => d.stop())

  function open(path: string, token: string): Promise<{ status: number; code?: string; req: http.ClientRequest }> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${d.url}${path}`, { agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
        if (res.statusCode === 200) return resolve({ status: 200, req })
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, code: JSON.parse(body).code, req }))
      })
      req.on('error', reject)
    })
  }

  test('each limit answers 429 TOO_MANY_STREAMS naming itself, and a closed stream frees its slot', async () => {
    const a = d.token('a', ['read'])
    const b = d.token('b', ['read'])
    const c = d.token('c', ['read'])
    const follow = '/v1/apps/hello/logs?follow=true&lines=0'
    const held = [await open(follow, a), await open(follow, a)]
    const third = await open(follow, a)
    assert.equal(third.status, 429)
    assert.equal(third.code, 'TOO_MANY_STREAMS')
    held.push(await open(follow, b))
    const perApp = await open(follow, b)
    assert.deepEqual([perApp.status, perApp.code], [429, 'TOO_MANY_STREAMS'])
    // An event stream of all apps counts for no app, only in all.
    held.push(await open('/v1/events', c))
    const total = await open('/v1/events', c)
    assert.deepEqual([total.status, total.code], [429, 'TOO_MANY_STREAMS'])
    assert.deepEqual(held.map((h) => h.status), [200, 200, 200, 200])
    held.shift()!.req.destroy()
    await until('the closed follow gave its slot back', () => d.server.app.berthStreams.open === 3)
    const again = await open('/v1/events?app=hello', c)
    assert.equal(again.status, 200)
    for (const h of [...held, again]) h.req.destroy()
    await until('every slot given back', () => d.server.app.berthStreams.open === 0)
  })
})

describe('D3: slow and oversized headers', () => {
  test('the defaults are the documented ones', () => {
    const c = loadConfig({})
    assert.equal(c.http.headersTimeoutMs, 10_000)
    assert.equal(c.maxConnections, 512)
    assert.equal(c.http.maxConnectionsPerAddress, 64)
    assert.equal(c.http.maxStreams, 128)
    assert.equal(c.http.maxStreamsPerToken, 8)
    assert.equal(c.http.maxStreamsPerApp, 32)
    assert.equal(c.limits.maxConcurrentUploads, 4)
    assert.equal(c.limits.maxUploadsPerApp, 2)
    assert.equal(c.limits.maxUploadsPerToken, 3)
    assert.equal(c.limits.uploadMinBytesPerSec, 16 * 1024)
    assert.equal(c.limits.uploadRateWindowMs, 30_000)
    assert.equal(c.limits.uploadDeadlineMs, 3_600_000)
    assert.throws(() => loadConfig({ BERTH_MAX_CONNECTIONS: '100', BERTH_MAX_STREAMS: '100' }), /BERTH_MAX_STREAMS \(100\) must be below BERTH_MAX_CONNECTIONS/)
    assert.equal(loadConfig({ BERTH_HEADERS_TIMEOUT_MS: '2500' }, { 'max-connections-per-address': '9' }).http.maxConnectionsPerAddress, 9)
  })

  describe('with the default limits', () => {
    let d: TestDaemon
    before(async () => {
      d = await startDaemon()
    })
    after(async () => d.stop())

    test('515 half-sent requests with no token: /healthz answers at once, and the rest get 408 after 10 s, not 17-30 s', async () => {
      const server = d.server.app.server
      assert.equal(server.headersTimeout, 10_000)
      assert.equal((server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval, 500)
      // The timeout runs from berth's accept, which comes after the kernel completed the client's connect
      // (the listen backlog holds it meanwhile), so each connection is timed from when berth took it.
      const accepted = new Map<number, number>()
      const onAccept = (s: net.Socket) => accepted.set(s.remotePort!, Date.now())
      server.on('connection', onAccept)
      const socks = Array.from({ length: 515 }, () => rawSocket(d, 'GET /v1/apps HTTP/1.1\r\nHost: berth\r\n'))
      try {
        await until('every connection accepted or refused', () => socks.every((s) => s.isClosed() || s.socket.readyState === 'open'))
        const started = Date.now()
        for (let i = 0; i < 4; i++) assert.equal(await healthz(d), 200, `healthz ${i + 1} of 4 during the attack (it was reset for 24 s)`)
        const healthzMs = Date.now() - started
        // The connections the cap let stay (at most 64 from one address) are the ones a timeout must end.
        await until('at most 64 of them still open', () => socks.filter((s) => !s.isClosed()).length <= 64)
        const { value: ends, lateMs } = await withLoopDelay(() => Promise.all(socks.map((s) => s.closed)))
        server.off('connection', onAccept)
        const timedOut = ends.filter((e) => e.got.startsWith('HTTP/1.1 408'))
        assert.ok(timedOut.length > 0 && timedOut.length <= 64, `${timedOut.length} got a 408`)
        const waited = timedOut.map((e) => e.at - accepted.get(e.localPort)!)
        const slowest = Math.max(...waited)
        const fastest = Math.min(...waited)
        assert.ok(fastest >= 9_950, `no 408 before the timeout (${fastest} ms)`)
        // Within the timeout and one check interval (500 ms), plus however late this process's loop ran.
        assert.ok(slowest <= 10_500 + lateMs + 100, `every 408 came within the timeout and one check interval (slowest ${slowest} ms, loop late by up to ${Math.round(lateMs)} ms)`)
        console.log(`D3: 515 half-sent -> /healthz 4 of 4 in ${healthzMs} ms; ${timedOut.length} got 408 after ${fastest}-${slowest} ms (loop late by up to ${Math.round(lateMs)} ms), ${515 - timedOut.length} closed to make room`)
      } finally {
        for (const s of socks) s.socket.destroy()
      }
    })

    test('2,000 small headers (22.9 KB) and 16 KiB counted with separators are refused with 431', async () => {
      const many = Array.from({ length: 2000 }, (_, i) => `x${i}: y\r\n`).join('')
      assert.ok(many.length > 16 * 1024)
      const a = rawSocket(d, `GET /healthz HTTP/1.1\r\nHost: berth\r\n${many}\r\n`)
      const ra = await a.closed
      assert.match(ra.got, /^HTTP\/1\.1 431 /)
      assert.match(ra.got, /"code":"HEADERS_TOO_LARGE"/)
      // 99 headers whose names and values stay under Node's 16384 but whose lines do not.
      const value = 'v'.repeat(160)
      const lines = Array.from({ length: 99 }, (_, i) => `h${String(i).padStart(2, '0')}: ${value}\r\n`).join('')
      assert.ok(99 * (3 + 160) < 16384 && lines.length > 16384)
      const b = rawSocket(d, `GET /healthz HTTP/1.1\r\nHost: berth\r\n${lines}\r\n`)
      const rb = await b.closed
      assert.match(rb.got, /^HTTP\/1\.1 431 /)
      assert.match(rb.got, /"code":"HEADERS_TOO_LARGE"/)
      // A request of ordinary size still passes.
      assert.equal(await healthz(d), 200)
    })

    test('idle connections from one address beyond 64 are closed, oldest first', async () => {
      const socks = Array.from({ length: 100 }, () => rawSocket(d, ''))
      try {
        await until('36 closed to keep 64', () => socks.filter((s) => s.isClosed()).length >= 36)
        assert.equal(d.server.connections.openFrom('127.0.0.1'), 64)
        assert.ok(socks.slice(0, 36).every((s) => s.isClosed()), 'the oldest made room')
      } finally {
        for (const s of socks) s.socket.destroy()
      }
    })
  })

  describe('with a 1 s headers timeout', () => {
    let d: TestDaemon
    before(async () => {
      d = await startDaemon({ BERTH_HEADERS_TIMEOUT_MS: '1000' })
    })
    after(async () => d.stop())

    test('a half-sent request gets its 408 after the configured time, not up to 30 s later', async () => {
      const s = rawSocket(d, 'GET /healthz HTTP/1.1\r\nHost: berth\r\nX-Slow: ')
      const timer = setTimeout(() => s.socket.destroy(), 8000)
      const { value: end, lateMs } = await withLoopDelay(() => s.closed)
      clearTimeout(timer)
      assert.match(end.got, /^HTTP\/1\.1 408 /)
      // The check runs every 50 ms at this timeout.
      assert.ok(end.ms >= 950 && end.ms <= 1050 + lateMs + 100, `408 after ${end.ms} ms (loop late by up to ${Math.round(lateMs)} ms)`)
    })
  })
})

describe('D4: slow uploads', () => {
  let d: TestDaemon
  before(async () => {
    d = await startDaemon({ BERTH_UPLOAD_MIN_BYTES_PER_SEC: '1024', BERTH_UPLOAD_RATE_WINDOW_MS: '1000' })
  })
  after(async () => d.stop())

  /** An upload that sends a tar header, then one byte every 200 ms (5 bytes/s) until the server answers. */
  function trickle(app: string, token: string) {
    const req = http.request(`${d.url}/v1/apps/${app}/releases`, { method: 'POST', agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': 1_000_000 } })
    const started = Date.now()
    const timer = setInterval(() => req.write(Buffer.alloc(1)), 200)
    const answer = new Promise<{ status: number; code: string; ms: number }>((resolve) => {
      req.on('response', (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, code: (JSON.parse(body) as { code: string }).code, ms: Date.now() - started }))
      })
      req.on('error', () => resolve({ status: 0, code: 'reset', ms: Date.now() - started }))
    }).finally(() => {
      clearInterval(timer)
      req.destroy()
    })
    req.write(BIG_ENTRY)
    return answer
  }

  test('four trickling uploads of a token limited to app A: two slots at most, the others refused at once, app B still uploads, and the trickles end', async () => {
    const tokenA = d.token('deploy-a', ['deploy'], ['a'])
    const uploads = [trickle('a', tokenA), trickle('a', tokenA)]
    await until('both slots taken', () => d.server.services.intake.inFlight === 2)
    const refused = await Promise.all([trickle('a', tokenA), trickle('a', tokenA)])
    assert.deepEqual(refused.map((r) => [r.status, r.code]), [[429, 'TOO_MANY_UPLOADS_FOR_APP'], [429, 'TOO_MANY_UPLOADS_FOR_APP']])
    // App B's upload gets a slot: this body is no tarball, and it is read and refused as such (not 503).
    const b = await call(`${d.url}/v1/apps/b/releases`, { method: 'POST', token: d.adminToken, body: 'not a tarball at all', headers: { 'content-type': 'application/octet-stream' } })
    assert.equal(b.status, 415, b.text)
    const ends = await Promise.all(uploads)
    for (const e of ends) {
      assert.deepEqual([e.status, e.code], [408, 'UPLOAD_TOO_SLOW'])
      assert.ok(e.ms < 4000, `ended after ${e.ms} ms (one byte every 200 ms once kept the idle timer from ever firing)`)
    }
    console.log(`D4: trickles ended with 408 UPLOAD_TOO_SLOW after ${ends.map((e) => e.ms).join(', ')} ms`)
    await until('slots given back', () => d.server.services.intake.inFlight === 0)
  })

  test('one token may hold three uploads across its apps, not the fourth slot', async () => {
    const token = d.token('deploy-many', ['deploy'], ['a', 'b', 'c', 'e'])
    const uploads = [trickle('a', token), trickle('b', token), trickle('c', token)]
    await until('three slots taken', () => d.server.services.intake.inFlight === 3)
    const fourth = await trickle('e', token)
    assert.deepEqual([fourth.status, fourth.code], [429, 'TOO_MANY_UPLOADS_FOR_TOKEN'])
    await Promise.all(uploads)
    await until('slots given back', () => d.server.services.intake.inFlight === 0)
  })
})

describe('D4: the upload deadline', () => {
  let d: TestDaemon
  before(async () => {
    d = await startDaemon({ BERTH_UPLOAD_MIN_BYTES_PER_SEC: '0', BERTH_UPLOAD_DEADLINE_MS: '1500' })
  })
  after(async () => d.stop())

  test('an upload steady enough for every other limit ends at its deadline with 408 UPLOAD_TIMEOUT', async () => {
    const req = http.request(`${d.url}/v1/apps/a/releases`, { method: 'POST', agent: false, headers: { authorization: `Bearer ${d.adminToken}`, 'content-type': 'application/octet-stream', 'content-length': 100_000_000 } })
    const started = Date.now()
    req.write(BIG_ENTRY)
    const timer = setInterval(() => req.write(Buffer.alloc(64)), 100)
    const answer = await new Promise<{ status: number; code: string }>((resolve) => {
      req.on('response', (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, code: JSON.parse(body).code }))
      })
      req.on('error', () => resolve({ status: 0, code: 'reset' }))
    })
    clearInterval(timer)
    req.destroy()
    const ms = Date.now() - started
    assert.deepEqual(answer, { status: 408, code: 'UPLOAD_TIMEOUT' })
    assert.ok(ms >= 1400 && ms < 2500, `ended after ${ms} ms`)
  })
})

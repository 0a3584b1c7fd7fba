// The edge's access log through a real berth (BERTH_EDGE_HTTP set) and a real haproxy: per-app requests,
// status classes and latency in /metrics (and only the token's apps), and the lines read back with
// GET /logs?source=access (tail, JSON, follow) and `berth logs --source access`.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { endProcessesUnder, freePort, runCli, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { get, startBackend, startEdgeStandIn, type Backend, type EdgeStandIn } from './helpers/edge-haproxy.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

let d: TestDaemon
let backend: Backend
let edge: EdgeStandIn

before(async () => {
  d = await startDaemon({ BERTH_EDGE_HTTP: `127.0.0.1:${await freePort()}` })
  const res = await upload(d.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken })
  assert.equal(res.status, 201, res.text)
  const access = d.server.services.accessLog
  assert.ok(access, 'an edge host has an access log')
  assert.equal(fs.readFileSync(path.join(d.dataDir, 'edge', 'log-port'), 'utf8').trim(), String(access.port))
  backend = await startBackend(await freePort())
  edge = await startEdgeStandIn({ dir: d.dataDir, port: await freePort(), backendPort: backend.port, apps: ['hello'], log: access.config() })
  for (const p of ['/', '/a?token=secret', '/b', '/404/x', '/500/y']) await get(edge.port, p, 'hello.example.com')
  await get(edge.port, '/', 'unknown.example.com')
  await until('5 requests counted', () => access.requestStats().get('hello')?.count === 5, 10_000)
  await access.flushed()
})

after(async () => {
  await edge.stop()
  await backend.close()
  const dir = d.dataDir
  await d.stop()
  assert.deepEqual(await endProcessesUnder(dir), [])
})

test('/metrics has the requests per app by status class and their latency histogram', async () => {
  const text = (await call(`${d.url}/metrics`, { token: d.adminToken })).text
  assert.match(text, /^berth_edge_requests_total\{app="hello",code="2xx"\} 3$/m)
  assert.match(text, /^berth_edge_requests_total\{app="hello",code="4xx"\} 1$/m)
  assert.match(text, /^berth_edge_requests_total\{app="hello",code="5xx"\} 1$/m)
  assert.match(text, /^# TYPE berth_edge_request_duration_seconds histogram$/m)
  assert.match(text, /^berth_edge_request_duration_seconds_bucket\{app="hello",le="10"\} 5$/m)
  assert.match(text, /^berth_edge_request_duration_seconds_bucket\{app="hello",le="\+Inf"\} 5$/m)
  assert.match(text, /^berth_edge_request_duration_seconds_count\{app="hello"\} 5$/m)
  assert.match(text, /^berth_edge_request_duration_seconds_sum\{app="hello"\} [\d.e-]+$/m)
  assert.match(text, /^berth_edge_access_lines_dropped_total\{reason="queueFull"\} 0$/m)
  assert.match(text, /^berth_edge_access_lines_dropped_total\{reason="kernel"\} 0$/m)
  const buckets = [...text.matchAll(/^berth_edge_request_duration_seconds_bucket\{app="hello",le="[^"]+"\} (\d+)$/gm)].map((m) => Number(m[1]))
  assert.deepEqual(buckets, [...buckets].sort((a, b) => a - b), 'cumulative buckets')

  const limited = d.token('other-only', ['read'], ['other'])
  const theirs = (await call(`${d.url}/metrics`, { token: limited })).text
  assert.doesNotMatch(theirs, /app="hello"/, 'no series of an app outside the token')
  assert.doesNotMatch(theirs, /berth_edge_access_lines_dropped_total/, 'no count summed over every app')
})

test('GET /logs?source=access tails the lines as written, or as LogLines', async () => {
  const text = await call(`${d.url}/v1/apps/hello/logs?source=access&lines=2`, { token: d.adminToken })
  assert.equal(text.status, 200, text.text)
  const raw = text.text.trim().split('\n')
  assert.deepEqual(raw.map((l) => JSON.parse(l).path), ['/404/x', '/500/y'])
  assert.doesNotMatch(text.text, /secret/)
  const json = await call(`${d.url}/v1/apps/hello/logs?source=access&format=json&lines=5`, { token: d.adminToken })
  const entries = json.text.trim().split('\n').map((l) => JSON.parse(l))
  assert.equal(entries.length, 5)
  for (const e of entries) {
    assert.deepEqual([e.source, e.app, e.clock], ['access', 'hello', 'line'])
    assert.equal(e.at, JSON.parse(e.line).at, 'dated by the line itself')
  }
})

test('follow streams new access lines; berth logs --source access prints them', async () => {
  const seen: string[] = []
  const req = http.get(`${d.url}/v1/apps/hello/logs?source=access&follow=true&lines=0`, { headers: { authorization: `Bearer ${d.adminToken}` } })
  try {
    const response = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
    assert.equal(response.statusCode, 200)
    response.on('data', (c: Buffer) => seen.push(c.toString()))
    await get(edge.port, '/followed', 'hello.example.com')
    await until('the followed line', () => seen.join('').includes('"path":"\\/followed"'), 10_000)
  } finally {
    req.destroy()
  }
  const cli = await runCli(['logs', 'hello', '--source', 'access', '--lines', '1'], { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken })
  assert.equal(cli.code, 0, cli.stderr)
  assert.equal(JSON.parse(cli.stdout).path, '/followed')
  const wrong = await runCli(['logs', 'hello', '--source', 'nginx'], { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken })
  assert.equal(wrong.code, 2)
  assert.match(wrong.stderr, /console, berth or access/)
})

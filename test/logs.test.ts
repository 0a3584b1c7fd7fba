// Logs and health over time, with a real node: the console log rotates at the configured size, tail and
// follow read it (follow keeps streaming across a node restart), and a failing health URL counts as a crash.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'

let d: TestDaemon
let port: number
let release: string
const json = { 'content-type': 'application/json' }

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => null)
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 150))
  }
}

/** Writes to the node's own console (the `user` device is what run_erl captures). */
async function consolePrint(text: string): Promise<void> {
  const { supervisor } = d.server.services
  const r = await supervisor.command('hello', release, 'rpc', [`:io.format(:user, "~s~n", [${JSON.stringify(text)}])`], 15_000)
  assert.equal(r.code, 0, r.output)
}

before(async () => {
  d = await startDaemon()
  port = await freePort()
  await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port) }) })
  await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 500, consoleLogMaxBytes: 4000, consoleLogGenerations: 3, healthUrl: `http://127.0.0.1:${port}/health`, healthIntervalMs: 300, healthFailures: 2, restart: { initialDelayMs: 200, maxDelayMs: 1000, maxRestarts: 2, windowMs: 60_000, rollbackWithinMs: 0 } }) })
  const res = await upload(d.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken, query: 'deploy=true' })
  assert.equal(res.body.deployment?.state, 'succeeded', res.text)
  release = res.body.id
})
after(async () => {
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

test('the console log rotates at the configured size and tail reads the newest lines', async () => {
  for (let i = 0; i < 12; i++) await consolePrint(`line-${i}-${'x'.repeat(900)}`)
  const logDir = path.join(d.dataDir, 'apps', 'hello', 'log')
  const files = fs.readdirSync(logDir).filter((f) => f.startsWith('erlang.log.'))
  assert.ok(files.length >= 2 && files.length <= 3, `rotated into ${files.join(', ')}`)
  for (const f of files) assert.ok(fs.statSync(path.join(logDir, f)).size < 4000 + 2000, `${f} stays near the limit`)
  const res = await call(`${d.url}/v1/apps/hello/logs?lines=3`, { token: d.adminToken })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type')!, /text\/plain/)
  assert.match(res.text, /line-11-x/)
  assert.ok(res.text.trim().split('\n').length <= 3)
  const none = await call(`${d.url}/v1/apps/hello/logs?lines=0`, { token: d.adminToken })
  assert.equal(none.status, 200)
  assert.equal(none.text, '', 'lines=0 is no lines, not the whole window')
  const berth = await call(`${d.url}/v1/apps/hello/logs?source=berth&lines=50`, { token: d.adminToken })
  assert.match(berth.text, /\[berth\] deploy succeeded by initial-admin/)
})

test('follow streams new console lines, across a restart of the node', async () => {
  const seen: string[] = []
  const req = http.get(`${d.url}/v1/apps/hello/logs?follow=true&lines=0`, { headers: { authorization: `Bearer ${d.adminToken}` } })
  const response = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
  assert.equal(response.statusCode, 200)
  response.on('data', (c: Buffer) => seen.push(c.toString()))
  await consolePrint('before-restart-marker')
  await until('first marker', () => seen.join('').includes('before-restart-marker'))
  const restart = await call(`${d.url}/v1/apps/hello/restart?wait=true`, { method: 'POST', token: d.adminToken })
  assert.equal(restart.status, 200, restart.text)
  await consolePrint('after-restart-marker')
  await until('second marker on the same stream', () => seen.join('').includes('after-restart-marker'))
  req.destroy()
})

test('a health URL that keeps failing counts as crashes: restarted, then errored', async () => {
  const before = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node
  await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ healthUrl: `http://127.0.0.1:${port}/no-such-page` }) })
  const restarted = await until('restart for failing health', async () => {
    const n = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node
    return n.restarts > before.restarts ? n : null
  })
  assert.ok(restarted.restarts >= 1)
  const errored = await until('errored', async () => {
    const n = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node
    return n.state === 'errored' ? n : null
  }, 60_000)
  assert.equal(errored.state, 'errored')
  const events = (await call(`${d.url}/v1/apps/hello/events?limit=200`, { token: d.adminToken })).body.events.map((e: { action: string }) => e.action)
  assert.ok(events.includes('node.unhealthy'), events.join(' '))
  assert.ok(events.includes('node.errored'))
})

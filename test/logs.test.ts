// Logs and health over time, with a real node: the console log rotates at the configured size, tail and
// follow read it (follow keeps streaming across a node restart) as the app's clean lines or as JSON lines
// with timestamps, and a failing health URL counts as a crash. Also: what the cleaning takes off a console
// line, and which HTTP requests the daemon's own log records at info.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { cleanConsoleLine, consoleMarker, LineReader } from '../src/supervision/log-lines.js'
import { freePort, processesUnder, runCli, spawnDaemon, startDaemon, tempDir, type TestDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

let d: TestDaemon
let port: number
let release: string
const json = { 'content-type': 'application/json' }


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
  // With isolation (on: the tests run as root) the node's console logs are its own, in log/node; log/ is berth's.
  const logDir = path.join(d.dataDir, 'apps', 'hello', 'log', 'node')
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

/** Every line of a JSON-lines answer, parsed, each checked for the documented fields. */
function jsonLines(text: string): { at: string; source: string; app: string; line: string; clock: string }[] {
  assert.ok(text.endsWith('\n'), 'every JSON line ends with a newline')
  return text
    .slice(0, -1)
    .split('\n')
    .map((l) => {
      const e = JSON.parse(l)
      // `boot` only on the entry that marks where a boot of the node begins (a console entry).
      assert.deepEqual(Object.keys(e).filter((k) => !(k === 'boot' && e.source === 'console')).sort(), ['app', 'at', 'clock', 'line', 'source'], l)
      assert.match(e.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l)
      assert.equal(e.app, 'hello')
      assert.equal(typeof e.line, 'string')
      assert.ok(['line', 'read', 'marker', 'file'].includes(e.clock), l)
      return e
    })
}

test('the tail holds the app\'s own lines: no prompt, no carriage return, no run_erl marker; raw keeps them', async () => {
  await consolePrint('clean-marker-1')
  await consolePrint('a line that mentions iex(other@host)2> in the middle')
  // rpc returns once the node has written to its console pipe; run_erl writes the log file a moment later.
  let res = await call(`${d.url}/v1/apps/hello/logs?lines=200`, { token: d.adminToken })
  for (let i = 0; i < 50 && !res.text.includes('mentions iex('); i++) {
    await new Promise((r) => setTimeout(r, 100))
    res = await call(`${d.url}/v1/apps/hello/logs?lines=200`, { token: d.adminToken })
  }
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type')!, /^text\/plain/)
  assert.match(res.text, /^hello 0\.1\.0 booted on port \d+$/m, 'the line the fixture prints at boot, as it printed it')
  assert.match(res.text, /^clean-marker-1$/m)
  assert.match(res.text, /^a line that mentions iex\(other@host\)2> in the middle$/m)
  assert.doesNotMatch(res.text, /\r/)
  assert.doesNotMatch(res.text, /^(iex|\.\.\.)\(/m)
  assert.doesNotMatch(res.text, /^=====/m)
  assert.doesNotMatch(res.text, /^\n|\n\n/, 'no blank lines')
  // The files on disk are untouched: the raw form still shows what the console wrote.
  const raw = await call(`${d.url}/v1/apps/hello/logs?lines=200&format=raw`, { token: d.adminToken })
  assert.match(raw.text, /^iex\(hello@[^)]+\)\d+> clean-marker-1\r$/m)
  assert.match(raw.text, /^===== LOGGING STARTED \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m, 'run_erl stamps in ISO 8601 UTC')
})

test('format=json: every line parses and carries at, source, app, line and clock, for both sources', async () => {
  const started = Date.now()
  await consolePrint('json-marker-1')
  const res = await call(`${d.url}/v1/apps/hello/logs?lines=50&format=json`, { token: d.adminToken })
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson; charset=utf-8')
  const entries = jsonLines(res.text)
  assert.ok(entries.length > 1 && entries.length <= 50)
  const mine = entries.find((e) => e.line === 'json-marker-1')
  assert.ok(mine, res.text)
  assert.equal(mine.source, 'console')
  // run_erl's latest stamp before the line: the node's (re)start, at or before the line was printed.
  assert.equal(mine.clock, 'marker')
  assert.ok(Date.parse(mine.at) <= started + 1000, `${mine.at} is not after the line was printed`)
  assert.ok(Date.parse(mine.at) > started - 10 * 60_000, `${mine.at} is this run's`)
  const berth = jsonLines((await call(`${d.url}/v1/apps/hello/logs?source=berth&lines=20&format=json`, { token: d.adminToken })).text)
  assert.ok(berth.every((e) => e.source === 'berth' && e.clock === 'line' && e.line.startsWith('[berth] ')))
  assert.equal((await call(`${d.url}/v1/apps/hello/logs?format=yaml`, { token: d.adminToken })).body.code, 'VALIDATION_FAILED')
})

test('format=json with follow: the head, then each new line as it is written, stamped when read', async () => {
  let got = ''
  const req = http.get(`${d.url}/v1/apps/hello/logs?follow=true&lines=3&format=json`, { headers: { authorization: `Bearer ${d.adminToken}` } })
  const response = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
  assert.equal(response.statusCode, 200)
  assert.equal(response.headers['content-type'], 'application/x-ndjson; charset=utf-8')
  response.on('data', (c: Buffer) => (got += c.toString()))
  try {
    await until('the head', () => got.split('\n').length > 3)
    const printed = Date.now()
    await consolePrint('follow-json-marker')
    await until('the followed line', () => got.includes('follow-json-marker'))
    const seen = Date.now()
    const entries = jsonLines(got.slice(0, got.lastIndexOf('\n') + 1))
    assert.equal(entries.slice(0, 3).length, 3)
    const mine = entries.find((e) => e.line === 'follow-json-marker')!
    assert.equal(mine.clock, 'read')
    assert.ok(Date.parse(mine.at) >= printed - 1000 && Date.parse(mine.at) <= seen, `${mine.at} is when it was read`)
  } finally {
    req.destroy()
  }
})

test('berth logs --json prints JSON lines; plain berth logs the clean lines', async () => {
  await consolePrint('cli-marker')
  const env = { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken }
  const json = await runCli(['logs', 'hello', '--json', '--lines', '5'], env)
  assert.equal(json.code, 0, json.stderr)
  const entries = jsonLines(json.stdout)
  assert.equal(entries.at(-1)!.line, 'cli-marker')
  const text = await runCli(['logs', 'hello', '--lines', '1'], env)
  assert.equal(text.stdout, 'cli-marker\n')
  const both = await runCli(['logs', 'hello', '--json', '--raw'], env)
  assert.equal(both.code, 2)
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

describe('what cleaning takes off a console line (lines as run_erl wrote them under IEx)', () => {
  test('prompts at the start or end of a line, carriage returns, colours, echoed control keys', () => {
    const cases: [string, string][] = [
      ['iex(hello@vm)1> plain line\r', 'plain line'],
      ['iex(hello@vm)1> has iex(hello@x)1> in the middle\r', 'has iex(hello@x)1> in the middle'],
      ['iex(hello@vm)1> no newlineiex(hello@vm)1> \x1b[33m\r', 'no newline'],
      ['\x1b[0miex(hello@vm)1> \x1b[31m\r', ''],
      ['iex(hello@vm)1> ^L\b \b\b \bIO.puts("typed in attach")\r', 'IO.puts("typed in attach")'],
      ['...(hello@vm)2> fn x -> x * 2 end)\r', 'fn x -> x * 2 end)'],
      ['\x1b[33m\x1b[39m[\x1b[0m\x1b[33m\x1b[33m2\x1b[0m\x1b[33m\x1b[39m,\x1b[0m\x1b[33m \x1b[33m4\x1b[0m\x1b[33m\x1b[39m]\x1b[0m\x1b[33m\x1b[0m\r', '[2, 4]'],
      ['iex(3)> not distributed\r', 'not distributed'],
      ['(relx_hello@vm)1> an Eshell node\r', 'an Eshell node'],
      ['progress 10%\rprogress 100%\r', 'progress 100%'],
      ['\r\x1b[Kiex(hello@vm)3> ', ''],
      ['\x1b]0;title\x07unicode é ✓ kept\r', 'unicode é ✓ kept'],
      ['===== an app line that starts like a marker =====\r', '===== an app line that starts like a marker ====='],
      ['10:11:31.169 [warning] iex(hello@vm)1> quoted\r', '10:11:31.169 [warning] iex(hello@vm)1> quoted'],
    ]
    for (const [raw, clean] of cases) assert.equal(cleanConsoleLine(raw), clean, JSON.stringify(raw))
  })

  test('run_erl markers are times, not lines; console lines get the latest one', () => {
    assert.equal(consoleMarker('===== LOGGING STARTED 2026-12-01T10:11:19Z')?.toISOString(), '2026-12-01T10:11:19.000Z')
    assert.equal(consoleMarker('===== LOGGING STARTED Tue Dec  1 10:11:19 UTC 2026')?.toISOString(), '2026-12-01T10:11:19.000Z', "run_erl's default format, from nodes started before")
    assert.equal(consoleMarker('===== ALIVE 2026-12-01T11:00:00Z')?.toISOString(), '2026-12-01T11:00:00.000Z')
    assert.equal(consoleMarker('====='), null)
    assert.equal(consoleMarker('===== app text\r'), undefined)
    const r = new LineReader('hello', 'console', 'marker', new Date('2026-12-02T00:00:00Z'))
    assert.deepEqual(r.entry('before any marker\r'), { at: '2026-12-02T00:00:00.000Z', source: 'console', app: 'hello', line: 'before any marker', clock: 'file' })
    assert.equal(r.entry('===== 2026-12-01T10:20:00Z'), null)
    assert.deepEqual(r.entry('iex(hello@vm)1> after\r'), { at: '2026-12-01T10:20:00.000Z', source: 'console', app: 'hello', line: 'after', clock: 'marker' })
    const b = new LineReader('hello', 'berth', 'marker', new Date())
    assert.deepEqual(b.entry('2026-12-01T10:11:19.145Z [berth] node.start ok by berth {}'), { at: '2026-12-01T10:11:19.145Z', source: 'berth', app: 'hello', line: '[berth] node.start ok by berth {}', clock: 'line' })
  })
})

describe('request logging', () => {
  test('at info, reads are not logged and changes are, without the query string; at debug, reads are too', async () => {
    const requests = (out: string) =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .filter((e) => e.msg === 'request completed' || e.msg === 'incoming request')
    for (const level of ['info', 'debug']) {
      const dataDir = tempDir()
      const daemon = await spawnDaemon(dataDir, { BERTH_LOG_LEVEL: level })
      try {
        const admin = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
        for (let i = 0; i < 5; i++) assert.equal((await call(`${daemon.url}/healthz?probe=q-secret`)).status, 200)
        await call(`${daemon.url}/v1/apps`, { token: admin })
        const put = await call(`${daemon.url}/v1/apps/hello/env?restart=false`, { method: 'PUT', token: admin, headers: json, body: JSON.stringify({ SECRET_KEY_BASE: 'kb-logged-never' }) })
        assert.equal(put.status, 200, put.text)
        await daemon.stop()
        const out = daemon.output()
        const logged = requests(out)
        assert.ok(!out.includes('q-secret') && !out.includes('kb-logged-never') && !out.includes(admin.slice(23)))
        const puts = logged.filter((e) => e.method === 'PUT')
        assert.equal(puts.length, 1, JSON.stringify(logged))
        assert.equal(puts[0].level, 30, 'a change is logged at info')
        assert.equal(puts[0].url, '/v1/apps/hello/env')
        assert.equal(puts[0].statusCode, 200)
        assert.equal(typeof puts[0].responseTime, 'number')
        assert.ok(puts[0].reqId, 'with the request id')
        const gets = logged.filter((e) => e.method === 'GET')
        if (level === 'info') assert.deepEqual(gets, [], 'no GET at info')
        else {
          assert.equal(gets.length, 6, JSON.stringify(logged))
          assert.ok(gets.every((e) => e.level === 20 && !e.url.includes('?')))
        }
      } finally {
        await daemon.stop()
        fs.rmSync(dataDir, { recursive: true, force: true })
      }
    }
  })
})

// The dashboard's formats and addresses, in node: durations, "ago", sizes, step times, states, event details
// cut to length, and app names (hostile ones too) encoded into API paths and terminal socket URLs.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ago, bytes, duration, stateText, stepTime, summary } from '../src/web/format.js'
import { appPath, terminalUrl } from '../src/web/paths.js'

test('durations read in the largest two units that matter', () => {
  assert.equal(duration(null), '-')
  assert.equal(duration(undefined), '-')
  assert.equal(duration(0), '0 ms')
  assert.equal(duration(999), '999 ms')
  assert.equal(duration(1000), '1 s')
  assert.equal(duration(59_999), '59 s')
  assert.equal(duration(61_000), '1 min 1 s')
  assert.equal(duration(3 * 3600_000 + 5 * 60_000), '3 h 5 min')
  assert.equal(duration(2 * 86400_000 + 3 * 3600_000), '2 d 3 h')
})

test('"ago" counts from now; no time is "-", a time ahead of the clock is shown as a date', () => {
  const now = Date.parse('2026-01-01T12:00:00Z')
  assert.equal(ago('2026-01-01T11:58:30Z', now), '1 min 30 s ago')
  assert.equal(ago(null, now), '-')
  assert.equal(ago('', now), '-')
  assert.equal(ago('2026-01-01T12:00:05Z', now), new Date('2026-01-01T12:00:05Z').toLocaleString())
})

test('sizes in binary units; none or zero is "-"', () => {
  assert.equal(bytes(0), '-')
  assert.equal(bytes(null), '-')
  assert.equal(bytes(512), '512 B')
  assert.equal(bytes(1536), '1.5 KiB')
  assert.equal(bytes(5 * 1024 * 1024), '5.0 MiB')
  assert.equal(bytes(3 * 1024 ** 4), '3072.0 GiB')
})

test('a step shows how long it took, or how long it has run so far', () => {
  const now = Date.parse('2026-01-01T12:00:10Z')
  assert.equal(stepTime({ startedAt: '2026-01-01T12:00:00Z', endedAt: '2026-01-01T12:00:02Z' }, now), '2 s')
  assert.equal(stepTime({ startedAt: '2026-01-01T12:00:00Z', endedAt: null }, now), '10 s…')
})

test('states read as words', () => {
  assert.equal(stateText('rolled_back'), 'rolled back')
  assert.equal(stateText('succeeded'), 'succeeded')
})

test('an event detail is key=value pairs, empty values left out, long ones cut to 80 characters', () => {
  assert.equal(summary({ release: '0.1.0-abc', none: null, list: [], n: 3, obj: { a: 1 } }), 'release=0.1.0-abc n=3 obj={"a":1}')
  const long = summary({ expr: 'x'.repeat(200) })
  assert.equal(long, `expr=${'x'.repeat(77)}...`)
  // Text stays text: the page puts it into a text node, and this only cuts it.
  assert.equal(summary({ name: '<img src=x onerror=alert(1)>' }), 'name=<img src=x onerror=alert(1)>')
})

test('app names are encoded into API paths and terminal sockets, so no name reaches another path', () => {
  assert.equal(appPath('hello'), '/v1/apps/hello')
  assert.equal(appPath('hello', '/releases'), '/v1/apps/hello/releases')
  assert.equal(appPath('../../v1/token'), '/v1/apps/..%2F..%2Fv1%2Ftoken')
  assert.equal(appPath('a?b#c d'), '/v1/apps/a%3Fb%23c%20d')
  assert.equal(terminalUrl({ protocol: 'http:', host: '127.0.0.1:4100' }, 'hello', 'remote'), 'ws://127.0.0.1:4100/v1/apps/hello/remote')
  assert.equal(terminalUrl({ protocol: 'https:', host: 'berth.example.com' }, 'x/../y', 'attach'), 'wss://berth.example.com/v1/apps/x%2F..%2Fy/attach')
})

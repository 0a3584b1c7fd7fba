// The dashboard's readers of berth's streams, in node: server-sent events cut from partial reads, the end that
// means sign out, and a console recording turned into the player's frames (long pauses cut, resizes kept).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readCast } from '../src/web/cast.js'
import { endsSignIn, takeEvents } from '../src/web/sse.js'

test('events are taken whole; a partial one waits for the next read', () => {
  const first = takeEvents(': berth audit events\n\nevent: audit\ndata: {"app":"hello"}\n\nevent: aud')
  assert.deepEqual(first.events, [{ type: undefined, data: undefined }, { type: 'audit', data: '{"app":"hello"}' }])
  assert.equal(first.rest, 'event: aud')
  const second = takeEvents(`${first.rest}it\ndata: {"app":"other"}\n\n`)
  assert.deepEqual(second.events, [{ type: 'audit', data: '{"app":"other"}' }])
  assert.equal(second.rest, '')
})

test('only an end for a revoked or expired token signs the page out', () => {
  assert.equal(endsSignIn({ type: 'end', data: '{"reason":"token revoked"}' }), true)
  assert.equal(endsSignIn({ type: 'end', data: '{"reason":"token expired"}' }), true)
  assert.equal(endsSignIn({ type: 'end', data: '{"reason":"berth is shutting down"}' }), false)
  assert.equal(endsSignIn({ type: 'overflow', data: '{"reason":"revoked"}' }), false)
})

test('a recording plays with its own timing, pauses over half a second cut, resizes in order', () => {
  const cast = [
    { version: 2, width: 100, height: 30 },
    [0.1, 'o', 'iex> '],
    [0.2, 'i', 'x'],
    [5.2, 'o', '1+1'],
    [5.3, 'r', '120x40'],
    [5.4, 'r', 'bogus'],
    [5.5, 'o', '2'],
  ].map((l) => JSON.stringify(l)).join('\n')
  const { header, frames } = readCast(`${cast}\n`)
  assert.deepEqual(header, { version: 2, width: 100, height: 30 })
  assert.equal(frames.length, 4)
  assert.deepEqual(frames[0], { kind: 'o', waitMs: 100, data: 'iex> ' })
  assert.equal(frames[1]!.kind === 'o' && frames[1]!.waitMs, 500)
  assert.deepEqual(frames[2], { kind: 'r', cols: 120, rows: 40 })
  assert.equal(frames[3]!.kind === 'o' && Math.round(frames[3]!.waitMs), 100)
})

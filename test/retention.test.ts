// Retention as a pure choice: which releases go after a successful deployment, and which always stay.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chooseRetired, type RetentionInput } from '../src/deploy/retention.js'

const base = (over: Partial<RetentionInput>): RetentionInput => ({
  newestFirst: [],
  current: null,
  succeededNewestFirst: [],
  attempted: new Set(),
  inUse: new Set(),
  lastFailed: null,
  keep: 2,
  ...over,
})

test('keeps current and the newest `keep` successes; older successes go', () => {
  const r = chooseRetired(base({ newestFirst: ['e', 'd', 'c', 'b', 'a'], current: 'e', succeededNewestFirst: ['e', 'd', 'c', 'b', 'a'], attempted: new Set(['e', 'd', 'c', 'b', 'a']) }))
  assert.deepEqual(r, ['c', 'b', 'a'])
})

test('a release deployed several times counts once', () => {
  const r = chooseRetired(base({ newestFirst: ['c', 'b', 'a'], current: 'c', succeededNewestFirst: ['c', 'c', 'b', 'b', 'a'], attempted: new Set(['a', 'b', 'c']) }))
  assert.deepEqual(r, ['a'])
})

test('never-deployed uploads stay; failed releases older than current go, newer ones stay', () => {
  const r = chooseRetired(base({ newestFirst: ['new-failed', 'cur', 'old-failed', 'never'], current: 'cur', succeededNewestFirst: ['cur'], attempted: new Set(['new-failed', 'cur', 'old-failed']) }))
  assert.deepEqual(r, ['old-failed'])
})

test('a release an unfinished deployment names is never retired, even past the keep count', () => {
  const r = chooseRetired(base({ newestFirst: ['d', 'c', 'b', 'a'], current: 'd', succeededNewestFirst: ['d', 'c', 'b', 'a'], attempted: new Set(['a', 'b', 'c', 'd']), inUse: new Set(['a']), keep: 1 }))
  assert.deepEqual(r, ['c', 'b'])
})

test('with no current release nothing failed is retired (there is nothing to be older than)', () => {
  const r = chooseRetired(base({ newestFirst: ['b', 'a'], current: null, attempted: new Set(['a', 'b']) }))
  assert.deepEqual(r, [])
})

test('the newest failed release stays for diagnosis, beyond the keep count, until a newer failure replaces it', () => {
  // b failed, c succeeded: b is older than current, yet the newest failure; a (an older failure) goes.
  const r = chooseRetired(base({ newestFirst: ['c', 'b', 'a', 'z'], current: 'c', succeededNewestFirst: ['c', 'z'], attempted: new Set(['a', 'b', 'c', 'z']), lastFailed: 'b', keep: 1 }))
  assert.deepEqual(r, ['a', 'z'])
})

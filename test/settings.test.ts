// Per-app settings and env validation as plain functions: merge, bounds, unknown and inherited keys.
// No daemon: src/apps is pure TypeScript with no dependencies beyond the error catalogue.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { checkEnvSize, envBytes, envLimit, execLimit, validateEnv } from '../src/apps/env.js'
import { DEFAULT_SETTINGS, mergeSettings } from '../src/apps/settings.js'
import { isBerthError } from '../src/errors.js'

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => isBerthError(err) && err.code === 'VALIDATION_FAILED' && pattern.test(err.message))
}

test('a patch changes only the fields it names, and never the defaults object', () => {
  const next = mergeSettings(DEFAULT_SETTINGS, { stableWindowMs: 0, commands: { start: 'foreground' }, restart: { maxRestarts: 2 } })
  assert.equal(next.stableWindowMs, 0)
  assert.equal(next.commands.start, 'foreground')
  assert.equal(next.commands.eval, undefined, 'commands holds overrides only: eval keeps the release kind\'s default')
  assert.equal(next.restart.maxRestarts, 2)
  assert.equal(next.restart.windowMs, DEFAULT_SETTINGS.restart.windowMs)
  assert.deepEqual(DEFAULT_SETTINGS.commands, {})
  assert.equal(DEFAULT_SETTINGS.restart.maxRestarts, 5)
})

test('bounds and types are enforced field by field', () => {
  refused(() => mergeSettings(DEFAULT_SETTINGS, { stableWindowMs: -1 }), /stableWindowMs/)
  refused(() => mergeSettings(DEFAULT_SETTINGS, { keepReleases: 0 }), /keepReleases/)
  refused(() => mergeSettings(DEFAULT_SETTINGS, { bootTimeoutMs: 1.5e3 + 0.5 }), /bootTimeoutMs/)
  refused(() => mergeSettings(DEFAULT_SETTINGS, { migrateExpr: 42 }), /migrateExpr/)
  refused(() => mergeSettings(DEFAULT_SETTINGS, { healthUrl: 'http://example.com/health' }), /loopback/)
  refused(() => mergeSettings(DEFAULT_SETTINGS, { commands: { start: 'start; rm -rf /' } }), /subcommand/)
  assert.equal(mergeSettings(DEFAULT_SETTINGS, { healthUrl: 'http://127.0.0.1:4000/health' }).healthUrl, 'http://127.0.0.1:4000/health')
})

test('unknown keys are refused, inherited ones (toString, constructor, __proto__) included', () => {
  refused(() => mergeSettings(DEFAULT_SETTINGS, { nope: 1 }), /Unknown setting/)
  for (const key of ['toString', 'constructor', 'hasOwnProperty', '__proto__', 'valueOf']) {
    const patch = JSON.parse(`{"${key}": 1}`) as Record<string, unknown>
    refused(() => mergeSettings(DEFAULT_SETTINGS, patch), /Unknown setting/)
    refused(() => mergeSettings(DEFAULT_SETTINGS, { commands: JSON.parse(`{"${key}": "foreground"}`) }), /Unknown command/)
    refused(() => mergeSettings(DEFAULT_SETTINGS, { restart: JSON.parse(`{"${key}": 1}`) }), /Unknown restart setting/)
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched')
})

test('env: names, reserved names and values are checked; values are returned as given', () => {
  assert.deepEqual(validateEnv({ DATABASE_URL: 'ecto://x', _X1: '' }), { DATABASE_URL: 'ecto://x', _X1: '' })
  for (const bad of [null, [], 'A=1', 5]) assert.throws(() => validateEnv(bad), /JSON object/)
  assert.throws(() => validateEnv({ '1ABC': 'x' }), /not a valid variable name/)
  assert.throws(() => validateEnv({ 'A-B': 'x' }), /not a valid variable name/)
  for (const reserved of ['RELEASE_TMP', 'ERL_CRASH_DUMP', 'RELEASE_ROOT', 'ERL_EPMD_ADDRESS', 'BERTH_TOKEN']) assert.throws(() => validateEnv({ [reserved]: 'x' }), /set by berth/)
  assert.throws(() => validateEnv({ A: 'a\0b' }), /NUL/)
  assert.throws(() => validateEnv({ A: 1 }), /must be a string/)
})

test('env size: the exec limit from the stack limit, the half an app may use, and how an environment is counted', () => {
  // The bound, as plain numbers: a quarter of the stack limit, halved for what berth and the scripts add.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-limits-'))
  const limits = (stack: string) => (fs.writeFileSync(path.join(dir, 'limits'), `Limit  Soft Limit  Hard Limit  Units\nMax stack size            ${stack}              unlimited            bytes\n`), execLimit(path.join(dir, 'limits')))
  assert.equal(limits('8388608'), 2 * 1024 * 1024)
  assert.equal(limits('unlimited'), 6 * 1024 * 1024)
  assert.equal(limits('65536'), 128 * 1024)
  fs.rmSync(dir, { recursive: true })
  assert.equal(envLimit(2 * 1024 * 1024), 1024 * 1024)
  assert.equal(envBytes({ A: 'bc' }), 'A=bc'.length + 1 + 8)
  assert.equal(envBytes({ ERL_AFLAGS: 'x' }), 2 * ('ERL_AFLAGS=x'.length + 1 + 8) - 'ERL_AFLAGS='.length, 'ERL_AFLAGS counts again: erl copies it onto its command line')
  assert.throws(() => checkEnvSize({ A: 'x'.repeat(1024 * 1024) }, 2 * 1024 * 1024), (err: any) => err.code === 'ENV_TOO_LARGE' && err.extra.limit === 1024 * 1024)

})

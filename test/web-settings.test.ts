// The settings form's values, in node: how a setting shows in a text field and reads back (null, "", JSON for
// settings of unknown type), and the partial PUT it sends: only what changed, nested keys alone, the proxy whole.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { changedNames, changes, choiceValue, hostsText, readChoice, readHosts, readText, shownText, type FieldValue } from '../src/web/settings-patch.js'

const field = (path: string[], value: unknown, now: unknown = value): FieldValue => ({ path, value, read: () => now })

test('text fields: empty is null, two quotes the empty string, text as typed, unknown types as JSON', () => {
  assert.equal(shownText(null, 'text'), '')
  assert.equal(shownText('', 'text'), '""')
  assert.equal(shownText('Shop.Release.migrate()', 'text'), 'Shop.Release.migrate()')
  assert.equal(shownText({ a: [1] }, null), '{"a":[1]}')
  assert.equal(readText('', 'text', 'x'), null)
  assert.equal(readText('""', 'text', 'x'), '')
  assert.equal(readText('{"a":1}', 'text', null), '{"a":1}')
  assert.deepEqual(readText('{"a":1}', null, { a: 2 }), { a: 1 })
  assert.equal(readText('not json', null, { a: 2 }), 'not json')
  // A string setting stays a string, even when it looks like JSON or markup.
  assert.equal(readText('<script>alert(1)</script>', null, 'old'), '<script>alert(1)</script>')
})

test('only what changed is sent, nested groups key by key', () => {
  const inputs = [field(['keepReleases'], 5, 6), field(['healthUrl'], null), field(['restart', 'maxRestarts'], 5, 7), field(['restart', 'windowMs'], 60000), field(['commands', 'start'], null, 'daemon')]
  const patch = changes({ proxy: null }, inputs)
  assert.deepEqual(patch, { keepReleases: 6, restart: { maxRestarts: 7 }, commands: { start: 'daemon' } })
  assert.deepEqual(changedNames(patch), ['keepReleases', 'restart.maxRestarts', 'commands.start'])
  assert.deepEqual(changes({ proxy: null }, [field(['keepReleases'], 5)]), {})
})

test('the proxy: turned on sends every field given, turned off sends null, changed sends what changed', () => {
  const proxyInputs = (on: boolean, listen: unknown, drain: unknown, shown: boolean): FieldValue[] => [
    field(['proxy', 'listen'], null, listen),
    field(['proxy', 'drainTimeoutMs'], 30000, drain),
    { path: ['proxy'], value: shown, read: () => on, proxySwitch: true },
  ]
  assert.deepEqual(changes({ proxy: null }, proxyInputs(true, '0.0.0.0:80', 30000, false)), { proxy: { listen: '0.0.0.0:80', drainTimeoutMs: 30000 } })
  assert.deepEqual(changes({ proxy: { listen: '0.0.0.0:80', drainTimeoutMs: 30000 } }, proxyInputs(false, '0.0.0.0:80', 30000, true)), { proxy: null })
  assert.deepEqual(changes({ proxy: { listen: '0.0.0.0:80', drainTimeoutMs: 30000 } }, proxyInputs(true, '0.0.0.0:80', 5000, true)), { proxy: { drainTimeoutMs: 5000 } })
  assert.deepEqual(changes({ proxy: null }, proxyInputs(false, null, 30000, false)), {})
  assert.deepEqual(changedNames({ proxy: null }), ['proxy'])
})

test('the edge fields: hosts as one line of names, selects whose empty choice is berth\'s default, listen null', () => {
  assert.equal(hostsText(['shop.example.com', 'www.shop.example.com']), 'shop.example.com, www.shop.example.com')
  assert.equal(hostsText(undefined), '')
  assert.deepEqual(readHosts(' shop.example.com,www.shop.example.com  blog.example.com ,, '), ['shop.example.com', 'www.shop.example.com', 'blog.example.com'])
  assert.deepEqual(readHosts(''), [])
  assert.deepEqual([choiceValue(null), choiceValue(true), choiceValue('acme')], ['', 'true', 'acme'])
  assert.deepEqual([readChoice(''), readChoice('false'), readChoice('custom')], [null, false, 'custom'])
  // An app only on the edge: listen stays null, the hosts and TLS choices that changed are sent.
  const current = { listen: null, hosts: ['shop.example.com'], tls: null, hstsMaxAge: null }
  const inputs: FieldValue[] = [
    field(['proxy', 'listen'], null, null),
    field(['proxy', 'hosts'], current.hosts, ['shop.example.com', 'www.shop.example.com']),
    field(['proxy', 'tls'], null, 'custom'),
    field(['proxy', 'hstsMaxAge'], null, null),
    { path: ['proxy'], value: true, read: () => true, proxySwitch: true },
  ]
  assert.deepEqual(changes({ proxy: current }, inputs), { proxy: { hosts: ['shop.example.com', 'www.shop.example.com'], tls: 'custom' } })
  assert.deepEqual(changes({ proxy: current }, inputs.map((i) => (i.proxySwitch ? i : { ...i, read: () => i.value }))), {})
})

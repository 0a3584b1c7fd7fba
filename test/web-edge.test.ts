// The dashboard's edge panel as text, in node: hostnames as links (http(s) only), the state in one phrase, the
// certificates table (sorted, expiry in words, expiring or failing rows marked) and the pause's Retry-After.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { certificateRows, edgeStateText, expiryText, hostLinks, readRetryAfter, tlsText, type Certificate } from '../src/web/edge-facts.js'
import type { AppEdge } from '../src/web/schemas.js'

const edge = (over: Partial<AppEdge> = {}): AppEdge => ({ hosts: ['shop.example.com'], urls: ['https://shop.example.com/'], tls: 'acme', routed: true, paused: false, retryAfterSeconds: null, ...over })
const NOW = Date.parse('2026-12-07T12:00:00Z')
const cert = (over: Partial<Certificate>): Certificate => ({ host: 'shop.example.com', source: 'acme', state: 'valid', notAfter: '2027-03-07T12:00:00Z', notBefore: '2026-12-07T12:00:00Z', issuer: 'Pebble Intermediate CA', lastError: null, ...over })

test('hostnames link to the URLs berth gives, and never to anything but http(s)', () => {
  assert.deepEqual(hostLinks(edge({ hosts: ['shop.example.com', 'www.shop.example.com'], urls: ['https://shop.example.com/', 'https://www.shop.example.com:8443/'] })), [
    { host: 'shop.example.com', url: 'https://shop.example.com/', href: 'https://shop.example.com/' },
    { host: 'www.shop.example.com', url: 'https://www.shop.example.com:8443/', href: 'https://www.shop.example.com:8443/' },
  ])
  assert.equal(hostLinks(edge({ urls: ['javascript:alert(1)'] }))[0]!.href, null)
  assert.equal(hostLinks(edge({ urls: [] }))[0]!.url, 'shop.example.com')
})

test('the state: serving, paused with its Retry-After, or not routed until the next deploy; TLS in words', () => {
  assert.equal(edgeStateText(edge()), 'serving')
  assert.match(edgeStateText(edge({ paused: true, retryAfterSeconds: 120 })), /^paused: the edge answers 503 with Retry-After 120 s/)
  assert.match(edgeStateText(edge({ routed: false })), /^not on the edge yet/)
  assert.equal(tlsText(edge({ tls: 'off' })), 'plain HTTP only')
})

test('certificates: sorted by host, expiry in words, expiring soon, expired or failing rows marked', () => {
  const rows = certificateRows([
    cert({ host: 'www.shop.example.com', source: 'custom', notAfter: '2026-12-10T12:00:00Z', issuer: null }),
    cert({ nextRenewalAt: '2027-02-05T12:00:00Z' }),
    cert({ host: 'old.example.com', notAfter: '2026-12-05T12:00:00Z', state: 'expired', lastError: 'urn:ietf:params:acme:error:rateLimited' }),
  ], NOW)
  assert.deepEqual(rows.map((r) => [r.host, r.bad]), [['old.example.com', true], ['shop.example.com', false], ['www.shop.example.com', true]])
  assert.equal(rows[1]!.expiry, 'in 90 d 0 h (2027-03-07); renewal from 2027-02-05')
  assert.equal(rows[0]!.expiry, 'expired 2 d 0 h ago (2026-12-05)')
  assert.equal(rows[0]!.lastError, 'urn:ietf:params:acme:error:rateLimited')
  assert.equal(rows[2]!.issuer, '-')
  assert.equal(expiryText(null, NOW), '-')
})

test('Retry-After: empty is berth\'s default, else whole seconds from 1 to 86400', () => {
  assert.equal(readRetryAfter(''), null)
  assert.equal(readRetryAfter(' 120 '), 120)
  for (const bad of ['0', '-5', '1.5', '86401', 'soon']) assert.equal(readRetryAfter(bad), 'invalid', bad)
})

// The app view's edge part (edge/view.ts): hostnames with the URLs users reach them at, by TLS mode and the
// edge's listener ports, whether the edge routes the app yet, and its pause. A stand-in edge: no haproxy.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_PROXY, type ProxySettings } from '../src/apps/proxy-settings.js'
import type { EdgeApp } from '../src/edge/config.js'
import type { Edge } from '../src/edge/edge.js'
import { appEdgeView } from '../src/edge/view.js'

function edge(http: string, https: string | null, routed: Record<string, EdgeApp> = {}, paused: Record<string, number> = {}): Edge {
  return { status: () => ({ http, https }), routedApps: () => new Map(Object.entries(routed)), pausedFor: (app: string) => paused[app] ?? null } as unknown as Edge
}
const proxy = (p: Partial<ProxySettings>): ProxySettings => ({ listen: null, ...DEFAULT_PROXY, ...p })
const edgeApp = (hosts: string[]): EdgeApp => ({ hosts, tls: 'acme', httpsRedirect: true, hstsMaxAge: null, maxBodyBytes: null, timeoutMs: 60_000, drainTimeoutMs: 30_000 })

test('no edge, or no hostnames: nothing to say', () => {
  assert.equal(appEdgeView(null, 'shop', proxy({ hosts: ['shop.example.com'] })), null)
  assert.equal(appEdgeView(edge('0.0.0.0:80', null), 'shop', proxy({ listen: '127.0.0.1:4000' })), null)
  assert.equal(appEdgeView(edge('0.0.0.0:80', null), 'shop', null), null)
})

test('URLs follow the TLS mode in force and leave out default ports', () => {
  const both = edge('0.0.0.0:80', '0.0.0.0:443', { shop: edgeApp(['shop.example.com']) })
  assert.deepEqual(appEdgeView(both, 'shop', proxy({ hosts: ['shop.example.com', 'www.shop.example.com'] })), {
    hosts: ['shop.example.com', 'www.shop.example.com'], urls: ['https://shop.example.com/', 'https://www.shop.example.com/'], tls: 'acme', routed: true, paused: false, retryAfterSeconds: null,
  })
  assert.deepEqual(appEdgeView(both, 'shop', proxy({ hosts: ['shop.example.com'], tls: 'off' }))!.urls, ['http://shop.example.com/'])
  const odd = edge('[::]:8080', '0.0.0.0:8443')
  assert.deepEqual(appEdgeView(odd, 'blog', proxy({ hosts: ['blog.example.com'], tls: 'custom' }))!.urls, ['https://blog.example.com:8443/'])
  // Without an HTTPS listener the default is plain HTTP.
  const plain = appEdgeView(edge('0.0.0.0:8080', null), 'blog', proxy({ hosts: ['blog.example.com'] }))!
  assert.deepEqual([plain.tls, plain.urls, plain.routed], ['off', ['http://blog.example.com:8080/'], false])
})

test('a paused app, and one whose setting lost its hostnames but is still routed until its next deploy', () => {
  const e = edge('0.0.0.0:80', '0.0.0.0:443', { shop: edgeApp(['shop.example.com']) }, { shop: 120 })
  const v = appEdgeView(e, 'shop', proxy({ listen: '127.0.0.1:4000' }))!
  assert.deepEqual([v.hosts, v.paused, v.retryAfterSeconds, v.routed], [['shop.example.com'], true, 120, true])
})

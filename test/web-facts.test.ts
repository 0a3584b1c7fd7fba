// What the dashboard says about an app, in node: warnings, labels, health, instances, the last deployment, and
// the public address, whose link is only ever http(s) (an href is where a javascript: URL would run).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { healthText, instanceText, lastDeploymentText, publicUrl, releaseLabel, uptimeText, warnings } from '../src/web/facts.js'
import { enforcementText, limitsText, usageText } from '../src/web/limits-facts.js'
import type { AppStatus, Deployment, Limits, NodeStatus, Release } from '../src/web/schemas.js'

const node = (over: Partial<NodeStatus> = {}): NodeStatus => ({ state: 'running', release: 'r1', pid: 10, beamPid: 11, startedAt: null, uptimeMs: 1000, restarts: 0, lastExit: null, ...over })
const status = (over: Partial<AppStatus> = {}): AppStatus => ({ name: 'hello', current: 'r1', node: node(), lastDeployment: null, ...over })
const deployment = (over: Partial<Deployment> = {}): Deployment => ({
  id: 'd1', app: 'hello', kind: 'deploy', release: 'r2', previous: 'r1', state: 'succeeded', reason: null, reasonCode: null, warnings: [], steps: [],
  actor: 'ci', rollout: null, createdAt: '2026-01-01T11:00:00Z', finishedAt: '2026-01-01T11:59:00Z', ...over,
})
const proxy = { listen: '0.0.0.0:8080', state: 'running' as const, pid: 5, startedAt: null, restarts: 0, lastExit: null, live: null, starting: null, draining: null }

test('a healthy running app needs no look', () => {
  assert.deepEqual(warnings(status()), [])
})

test('warnings: a crashing node, many restarts, failed health, a failed or rolled-back deployment, a proxy down', () => {
  assert.deepEqual(warnings(status({ node: node({ state: 'backoff', restarts: 4, health: { ok: false, consecutiveFailures: 3 } }) })), ['node backoff', '4 restarts', 'unhealthy'])
  assert.deepEqual(warnings(status({ lastDeployment: deployment({ state: 'rolled_back' }) })), ['deploy rolled back'])
  assert.deepEqual(warnings(status({ lastDeployment: deployment({ kind: 'rollback', state: 'failed' }) })), ['rollback failed'])
  assert.deepEqual(warnings(status({ proxy: { ...proxy, state: 'down' } })), ['proxy down'])
})

test('a release is named by version and id; an unknown id as itself, none as "none"', () => {
  const releases = [{ id: 'r1', version: '0.1.0' }] as Release[]
  assert.equal(releaseLabel(releases, 'r1'), '0.1.0 (r1)')
  assert.equal(releaseLabel(releases, 'gone'), 'gone')
  assert.equal(releaseLabel(releases, null), 'none')
})

test('health and uptime say what is known', () => {
  assert.equal(healthText(node()), 'node check only')
  assert.equal(healthText(node({ health: { ok: null } })), 'not checked yet')
  assert.equal(healthText(node({ health: { ok: true } })), 'healthy')
  assert.equal(healthText(node({ health: { ok: false, consecutiveFailures: 2 } })), 'failing (2)')
  assert.equal(uptimeText(node({ uptimeMs: null })), '-')
  assert.equal(uptimeText(node({ uptimeMs: 65_000 })), '1 min 5 s')
})

test('an instance and the last deployment in one line each', () => {
  assert.equal(instanceText({ slot: 'b', port: 4001, release: null, pid: null, startedAt: null }), '- · slot b · port 4001 · pid -')
  assert.equal(lastDeploymentText(null), 'none yet')
  assert.equal(lastDeploymentText(deployment({ actor: null, state: 'rolled_back' }), Date.parse('2026-01-01T12:00:00Z')), 'deploy of r2: rolled back, 1 min 0 s ago by berth')
})

test('the public address: the setting first, else the proxy listener with a wildcard host made the page host', () => {
  assert.deepEqual(publicUrl({ publicUrl: 'https://shop.example.com/' }, status(), 'berth.local'), { url: 'https://shop.example.com/', from: 'publicUrl setting', href: 'https://shop.example.com/' })
  assert.deepEqual(publicUrl({}, status({ proxy }), 'berth.local'), { url: 'http://berth.local:8080/', from: 'proxy.listen', href: 'http://berth.local:8080/' })
  assert.equal(publicUrl({}, status({ proxy: { ...proxy, listen: '[::]:80' } }), '::1')?.url, 'http://[::1]:80/')
  assert.equal(publicUrl({}, status({ proxy: { ...proxy, listen: '10.0.0.5:80' } }), 'berth.local')?.url, 'http://10.0.0.5:80/')
  assert.equal(publicUrl({ publicUrl: null }, status(), 'berth.local'), null)
})

test('a public address that is not http(s) is shown as text, never as a link', () => {
  for (const url of ['javascript:alert(1)', 'data:text/html,<script>alert(1)</script>', 'not a url', 'JaVaScRiPt:alert(1)']) {
    const p = publicUrl({ publicUrl: url }, status(), 'berth.local')
    assert.equal(p?.url, url)
    assert.equal(p?.href, null, url)
  }
})

test('the shared edge: a paused app is flagged, and its first hostname is where users reach it', () => {
  const edge = { hosts: ['shop.example.com'], urls: ['https://shop.example.com/'], tls: 'acme' as const, routed: true, paused: true, retryAfterSeconds: 60 }
  assert.deepEqual(warnings(status({ edge })), ['paused'])
  assert.deepEqual(publicUrl(null, status({ edge, proxy: { ...proxy, listen: null } }), 'h'), { url: 'https://shop.example.com/', from: 'proxy.hosts', href: 'https://shop.example.com/' })
  // The publicUrl setting still wins; an app only on the edge has no listener to fall back to.
  assert.equal(publicUrl({ publicUrl: 'https://x.test/' } as never, status({ edge }), 'h')!.from, 'publicUrl setting')
  assert.equal(publicUrl(null, status({ proxy: { ...proxy, listen: null } }), 'h'), null)
})

test('limits: what is asked, how it is enforced or that it is not, usage beside the ceiling, OOM kills as a warning', () => {
  const MiB = 1024 ** 2
  const settings = { memoryMax: 512 * MiB, cpuWeight: 50, cpuQuota: 150, tasksMax: 1024 }
  const limits = (over: Partial<Limits> = {}): Limits => ({ settings, hostSupport: 'cgroup v1: …', via: 'cgroup1', enforced: settings, notEnforced: [], usage: { memoryBytes: 120 * MiB, tasks: 35, cpuUsageUsec: 12_000_000 }, oomKills: 0, ...over })
  assert.equal(limitsText(settings), 'memory 512.0 MiB · 1.5 cores · CPU weight 50 · 1024 tasks')
  assert.equal(limitsText(null), 'none')
  assert.equal(enforcementText(limits()), 'memoryMax, cpuWeight, cpuQuota, tasksMax through cgroup v1')
  assert.equal(enforcementText(limits({ via: null, enforced: {} })), 'none enforced here')
  assert.equal(enforcementText(limits({ settings: null, enforced: {} })), 'no limits set')
  assert.match(usageText(limits())!, /^memory 120\.0 MiB of 512\.0 MiB · 35 tasks · CPU 12/)
  assert.equal(usageText(limits({ usage: null })), null)
  assert.deepEqual(warnings(status({ limits: limits({ oomKills: 2, notEnforced: [{ field: 'cpuQuota', reason: 'no cpu hierarchy' }] }) })), ['limits not enforced', '2 OOM kills'])
})

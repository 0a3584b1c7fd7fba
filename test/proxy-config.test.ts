// The proxy setting's validation and haproxy's side of the switch as plain functions: the config a restarted
// haproxy reads, the runtime commands of a switch, how their answers and `show stat` are read. No processes.

import assert from 'node:assert/strict'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import fs from 'node:fs'
import { test } from 'node:test'
import { DEFAULT_SETTINGS, mergeSettings } from '../src/apps/settings.js'
import { isBerthError } from '../src/errors.js'
import { checkSilent, parseSessions, renderConfig, runtimeCommand, switchCommands } from '../src/proxy/haproxy.js'

function refused(fn: () => unknown, field: string): void {
  assert.throws(fn, (err: unknown) => isBerthError(err) && err.code === 'PROXY_SETTING_INVALID' && err.status === 400 && err.extra.field === field)
}

/** The edge fields every proxy setting has, at their defaults (issue 25). */
const EDGE_DEFAULTS = { hosts: [], tls: null, httpsRedirect: null, hstsMaxAge: null, maxBodyBytes: null, timeoutMs: 60_000 }

test('the proxy setting: off by default, listen required, defaults for the rest, bad values refused with a stable code', () => {
  assert.equal(DEFAULT_SETTINGS.proxy, null)
  const on = mergeSettings(DEFAULT_SETTINGS, { proxy: { listen: '127.0.0.1:4000' } })
  assert.deepEqual(on.proxy, { listen: '127.0.0.1:4000', drainTimeoutMs: 30_000, healthPath: '/health', ...EDGE_DEFAULTS })
  // Fields not given keep their value: a second patch changes only what it names.
  const drained = mergeSettings(on, { proxy: { drainTimeoutMs: 500 } })
  assert.deepEqual(drained.proxy, { listen: '127.0.0.1:4000', drainTimeoutMs: 500, healthPath: '/health', ...EDGE_DEFAULTS })
  assert.deepEqual(mergeSettings(DEFAULT_SETTINGS, { proxy: { listen: '[::1]:80', healthPath: '/up?full=1' } }).proxy?.listen, '[::1]:80')
  assert.equal(mergeSettings(on, { proxy: null }).proxy, null)
  refused(() => mergeSettings(DEFAULT_SETTINGS, { proxy: { drainTimeoutMs: 1000 } }), 'proxy.listen')
  for (const listen of ['4000', 'localhost:4000', '127.0.0.1:0', '127.0.0.1:65536', '300.0.0.1:80', '127.0.0.1:80 ', 42]) {
    refused(() => mergeSettings(DEFAULT_SETTINGS, { proxy: { listen } }), 'proxy.listen')
  }
  refused(() => mergeSettings(on, { proxy: { drainTimeoutMs: -1 } }), 'proxy.drainTimeoutMs')
  refused(() => mergeSettings(on, { proxy: { drainTimeoutMs: 1.5 } }), 'proxy.drainTimeoutMs')
  refused(() => mergeSettings(on, { proxy: { healthPath: 'health' } }), 'proxy.healthPath')
  refused(() => mergeSettings(on, { proxy: { healthPath: '/a b' } }), 'proxy.healthPath')
  refused(() => mergeSettings(on, { proxy: { tls: true } }), 'proxy.tls')
  refused(() => mergeSettings(on, { proxy: { listen: null } }), 'proxy.listen')
  refused(() => mergeSettings(on, { proxy: { hosts: 'shop.example.com' } }), 'proxy.hosts')
  refused(() => mergeSettings(on, { proxy: { hstsMaxAge: -1 } }), 'proxy.hstsMaxAge')
  refused(() => mergeSettings(on, { proxy: { timeoutMs: 10 } }), 'proxy.timeoutMs')
  // Hostnames only: the edge may route by them, without the listener.
  const edgeOnly = mergeSettings(on, { proxy: { listen: null, hosts: ['Shop.Example.COM', 'shop.example.com', 'xn--bcher-kva.example'] } })
  assert.deepEqual(edgeOnly.proxy?.hosts, ['shop.example.com', 'xn--bcher-kva.example'])
  assert.equal(edgeOnly.proxy?.listen, null)
  refused(() => mergeSettings(on, { proxy: '127.0.0.1:4000' }), 'proxy')
})

test('the config a restarted haproxy reads enables the live slot only, with forwarding headers and long tunnels', () => {
  const cfg = renderConfig({ listen: '0.0.0.0:80', socket: '/data/apps/x/proxy/admin.sock', live: { slot: 'b', port: 41234 } })
  assert.match(cfg, /^\s+bind 0\.0\.0\.0:80$/m)
  assert.match(cfg, /^\s+server a 127\.0\.0\.1:1 disabled$/m)
  assert.match(cfg, /^\s+server b 127\.0\.0\.1:41234$/m)
  assert.match(cfg, /^\s+option forwardfor$/m)
  assert.match(cfg, /X-Forwarded-Proto http/)
  assert.match(cfg, /^\s+timeout tunnel 24h$/m)
  assert.match(cfg, /stats socket \/data\/apps\/x\/proxy\/admin\.sock mode 600 level admin/)
  assert.doesNotMatch(cfg, /hard-stop-after/)
  // Once told to stop listening (moved to a new address), it stays at most the drain time.
  assert.match(renderConfig({ listen: '0.0.0.0:80', socket: '/s', live: null, hardStopAfterMs: 30_000 }), /^\s+hard-stop-after 30000ms$/m)
  assert.match(renderConfig({ listen: '0.0.0.0:80', socket: '/s', live: null, hardStopAfterMs: 0 }), /^\s+hard-stop-after 1ms$/m)
  // Before the first verified instance nothing takes traffic.
  const none = renderConfig({ listen: '127.0.0.1:4000', socket: '/s', live: null })
  assert.equal(none.match(/ disabled$/gm)?.length, 2)
})

test('a switch readies the new slot before it puts the other in maintenance; answers are read strictly', () => {
  assert.deepEqual(switchCommands({ slot: 'a', port: 5000 }), ['set server instances/a addr 127.0.0.1 port 5000', 'set server instances/a state ready', 'set server instances/b state maint'])
  checkSilent('set server instances/a state ready', '\n')
  checkSilent('set server instances/a addr 127.0.0.1 port 5000', 'IP changed from 127.0.0.1 to 127.0.0.1, port changed from 1 to 5000 by stats socket command\n')
  checkSilent('set server instances/a addr 127.0.0.1 port 5000', "no need to change the addr, no need to change the port by 'stats socket command'\n")
  assert.throws(() => checkSilent('set server instances/c state ready', 'No such server.\n'), (err: unknown) => isBerthError(err) && err.code === 'PROXY_COMMAND_FAILED')
  const csv = '# pxname,svname,qcur,qmax,scur,smax\ninstances,a,0,0,3,9\ninstances,b,0,0,0,1\ninstances,BACKEND,0,0,3,9\npublic,FRONTEND,,,3,9\n'
  assert.deepEqual([...parseSessions(csv)], [['a', 3], ['b', 0]])
})

test('a runtime socket that does not answer fails with PROXY_UNREACHABLE within its timeout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-proxy-unit-'))
  const sock = path.join(dir, 'admin.sock')
  const silent = net.createServer(() => {}).listen(sock)
  try {
    const t0 = Date.now()
    await assert.rejects(runtimeCommand(sock, 'show info', 300), (err: unknown) => isBerthError(err) && err.code === 'PROXY_UNREACHABLE')
    assert.ok(Date.now() - t0 < 2000)
    await assert.rejects(runtimeCommand(path.join(dir, 'missing.sock'), 'show info', 300), (err: unknown) => isBerthError(err) && err.code === 'PROXY_UNREACHABLE')
  } finally {
    silent.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

// The instances module alone owns slot state: ports for new instances come from the configured range,
// recorded in berth.db, never given to two slots, checked free on that very port, and kept across a reopen;
// the route and the live/standby rows are read back as written.

import assert from 'node:assert/strict'
import net from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import pino from 'pino'
import { isBerthError } from '../src/errors.js'
import { Instances } from '../src/instances/instances.js'
import { liveInConfig, renderConfig } from '../src/proxy/haproxy.js'
import { Paths } from '../src/paths.js'
import { openDatabase, type Database } from '../src/store/db.js'
import { freePortRange, tempDir } from './helpers/daemon.js'

const log = pino({ level: 'silent' })

function open(dir: string, ports: { first: number; last: number }, canListen?: (port: number) => Promise<boolean>): { db: Database; instances: Instances } {
  const db = openDatabase(path.join(dir, 'berth.db'), log)
  for (const app of ['hello', 'other']) db.prepare('INSERT INTO apps (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING').run(app, new Date().toISOString())
  return { db, instances: new Instances({ db, paths: new Paths(dir), log, ports, canListen }) }
}

const range = (first: number, last: number) => ({ first, last })

test('ports come from the range, one per slot, never the same one twice', async () => {
  const { db, instances } = open(tempDir(), range(20000, 20009), async () => true)
  try {
    const got = [await instances.allocatePort('hello', 'a'), await instances.allocatePort('hello', 'b'), await instances.allocatePort('other', 'a'), await instances.allocatePort('other', 'b')]
    for (const p of got) assert.ok(p >= 20000 && p <= 20009, `${p} is in the range`)
    assert.equal(new Set(got).size, 4, `four slots, four ports: ${got.join(', ')}`)
    // A slot keeps its port: the next instance there gets the same one.
    assert.equal(await instances.allocatePort('hello', 'a'), got[0])
    assert.equal(instances.portOf('other', 'b'), got[3])
  } finally {
    db.close()
  }
})

test('claims made at the same time get different ports', async () => {
  const { db, instances } = open(tempDir(), range(20000, 20001), async () => true)
  try {
    const [a, b] = await Promise.all([instances.allocatePort('hello', 'a'), instances.allocatePort('other', 'a')])
    assert.notEqual(a, b)
    await assert.rejects(instances.allocatePort('other', 'b'), (err) => isBerthError(err) && err.code === 'INSTANCE_PORTS_EXHAUSTED')
  } finally {
    db.close()
  }
})

test('a port a foreign process listens on is skipped, found by binding that very port', async () => {
  const [first, last] = (await freePortRange(3)).split('-').map(Number) as [number, number]
  const foreign = net.createServer()
  await new Promise<void>((resolve) => foreign.listen(first, '127.0.0.1', resolve))
  const { db, instances } = open(tempDir(), range(first, last))
  try {
    const ports = [await instances.allocatePort('hello', 'a'), await instances.allocatePort('hello', 'b')]
    assert.ok(!ports.includes(first), `${first} is held by another program: got ${ports.join(', ')}`)
    assert.deepEqual(ports.sort(), [first + 1, first + 2])
  } finally {
    db.close()
    foreign.close()
  }
})

test("a slot whose port was taken meanwhile gets another, and the old one is no longer its", async () => {
  const [first, last] = (await freePortRange(3)).split('-').map(Number) as [number, number]
  const { db, instances } = open(tempDir(), range(first, last))
  const foreign = net.createServer()
  try {
    const mine = await instances.allocatePort('hello', 'a')
    await new Promise<void>((resolve) => foreign.listen(mine, '127.0.0.1', resolve))
    const moved = await instances.allocatePort('hello', 'a')
    assert.notEqual(moved, mine)
    assert.equal(instances.portOf('hello', 'a'), moved)
  } finally {
    db.close()
    foreign.close()
  }
})

test('ports, the route and both instance rows survive a reopen of berth.db', async () => {
  const dir = tempDir()
  let { db, instances } = open(dir, range(21000, 21009), async () => true)
  const a = await instances.allocatePort('hello', 'a')
  const b = await instances.allocatePort('hello', 'b')
  instances.route('hello', { slot: 'b', port: b })
  instances.promote('hello', { app: 'hello', releaseId: '0.2.0-000000000002', pid: 10, startTicks: 1, desired: 'running', startedAt: null, restarts: 0, lastExit: null, slot: 'b', port: b }, { app: 'hello', slot: 'a', port: a, releaseId: '0.1.0-000000000001', pid: 9, startTicks: 1, role: 'draining', startedAt: null, drainUntil: new Date().toISOString() })
  db.close()
  ;({ db, instances } = open(dir, range(21000, 21009), async () => true))
  try {
    assert.deepEqual(instances.live('hello'), { slot: 'b', port: b })
    assert.deepEqual(instances.routed('hello'), { slot: 'b', port: b })
    assert.equal(instances.standby('hello')?.slot, 'a')
    assert.equal(instances.standby('hello')?.role, 'draining')
    assert.equal(instances.portOf('hello', 'a'), a)
    // Recorded ports are not handed out again, to another app either.
    const other = await instances.allocatePort('other', 'a')
    assert.ok(other !== a && other !== b)
    instances.route('hello', null)
    assert.equal(instances.routed('hello'), null)
  } finally {
    db.close()
  }
})

test("recovery reads the route from haproxy's config: the one enabled server", () => {
  const cfg = renderConfig({ listen: '127.0.0.1:8080', socket: '/tmp/x.sock', live: { slot: 'b', port: 4512 } })
  assert.deepEqual(liveInConfig(cfg), { slot: 'b', port: 4512 })
  assert.equal(liveInConfig(renderConfig({ listen: '127.0.0.1:8080', socket: '/tmp/x.sock', live: null })), null)
})

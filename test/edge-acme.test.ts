// ACME against a real pebble that validates HTTP-01 for real (through pebble-challtestsrv's DNS, on a port
// where a node:http server answers from Challenges, the lookup the edge's fallback server does): issuance,
// renewal at two thirds of the lifetime, a failed renewal that keeps the old certificate and backs off
// instead of storming, the account kept across restarts, and issuance through pebble's badNonce refusals.
// Time past issuance is an injected clock; pebble and the certificates run on real time.

import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import acme from 'acme-client'
import pino from 'pino'
import { DEFAULT_PROXY, type ProxySettings } from '../src/apps/proxy-settings.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { AcmeManager, type AcmeOptions } from '../src/edge/acme.js'
import { CertificateStore } from '../src/edge/certs.js'
import { Challenges } from '../src/edge/challenges.js'
import { Paths } from '../src/paths.js'
import { openDatabase, type Database } from '../src/store/db.js'
import { EventStore } from '../src/store/events.js'
import { RecordingSink } from './helpers/certs.js'
import { tempDir } from './helpers/daemon.js'
import { serveChallenges, startPebble, type ChallengeServer, type Pebble } from './helpers/pebble.js'

const DAY = 86_400_000
const HOST = 'shop.berth.test'

let dir: string
let pebble: Pebble
let answers: ChallengeServer
let db: Database
let paths: Paths
let events: EventStore
let sink: RecordingSink
let store: CertificateStore
let manager: AcmeManager
let offset = 0
const clock = () => Date.now() + offset
const challenges = new Challenges()
const log = pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' })
const proxies = new Map<string, ProxySettings>([['shop', { listen: null, ...DEFAULT_PROXY, hosts: [HOST], tls: 'acme' }]])
/** Fast polling, a fixed jitter, a one-minute first backoff: what the assertions below count on. */
const OPTIONS: Partial<AcmeOptions> = { pollMinMs: 100, pollMaxMs: 500, backoffBaseMs: 60_000, random: () => 0, maxAttemptsPerHour: 3 }

/** badNonce answers acme-client got (and retried), over every test of this file. */
let badNonces = 0
acme.axios.interceptors.response.use((r) => {
  if (r.status === 400 && String((r.data as { type?: string } | undefined)?.type).endsWith(':badNonce')) badNonces++
  return r
})

function newManager(opts: Partial<AcmeOptions> = OPTIONS, acmeConfig: { directory: string; email: string | null; caFile: string | null } = { directory: pebble.directory, email: 'ops@berth.test', caFile: pebble.caFile }): AcmeManager {
  return new AcmeManager({ db, certs: store, challenges, paths, events, log, acme: acmeConfig, clock, options: opts })
}

const attempts = () => (db.prepare('SELECT COUNT(*) AS n FROM acme_attempts WHERE host = ?').get(HOST) as { n: number }).n
const servedSerial = () => new X509Certificate(fs.readFileSync(store.file(HOST), 'utf8')).serialNumber
/** Within the few seconds an order takes (the backoff counts from its end, the cap from its start). */
const near = (actual: number, expected: number) => assert.ok(actual >= expected && actual - expected < 5000, `${new Date(actual).toISOString()} is not just after ${new Date(expected).toISOString()}`)
const lastEvent = (action: string) => events.list('shop', 200).find((e) => e.action === action)

before(async () => {
  dir = tempDir('berth-acme-')
  pebble = await startPebble(dir, { validitySeconds: 30 * 86_400 })
  answers = await serveChallenges(challenges, pebble.httpPort)
  paths = new Paths(path.join(dir, 'data'))
  fs.mkdirSync(paths.dataDir, { recursive: true })
  db = openDatabase(paths.db, log)
  db.prepare("INSERT INTO apps (name, created_at) VALUES ('shop', '2026-01-01')").run()
  events = new EventStore(db, log)
  sink = new RecordingSink()
  store = new CertificateStore({ db, paths, events, log, sink, proxyOf: (app) => proxies.get(app) ?? null, edgeHasHttps: true, clock })
  manager = newManager()
})
after(async () => {
  manager?.close()
  await answers?.close()
  await pebble?.stop()
  db?.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

describe('ACME with pebble', () => {
  let firstSerial = ''
  let accountUrl = ''

  test('issues a certificate for a hostname of an app with tls acme: 0600, chained to pebble\'s root, covering the host', async () => {
    await manager.sync([{ app: 'shop', host: HOST }])
    const [view] = store.list('shop')
    assert.equal(view!.state, 'valid', `${view!.lastError}\n${pebble.output()}`)
    assert.equal(view!.source, 'acme')
    const file = store.file(HOST)
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    const pem = fs.readFileSync(file, 'utf8')
    const chain = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((c) => new X509Certificate(c))
    const root = new X509Certificate(await pebble.root())
    for (let i = 0; i < chain.length; i++) assert.ok(chain[i]!.verify((chain[i + 1] ?? root).publicKey), `certificate ${i} is signed by the next (the last by pebble's root)`)
    assert.ok(chain[0]!.checkHost(HOST))
    assert.equal(chain[0]!.publicKey.asymmetricKeyType, 'ec')
    // pebble's certificateValidityPeriod (30 days) gives the renewal two thirds of the way: 20 days.
    assert.ok(Math.abs(Date.parse(view!.nextRenewalAt!) - (Date.parse(view!.notBefore!) + 20 * DAY)) < 60_000, view!.nextRenewalAt!)
    assert.ok(answers.hits.length >= 1, 'pebble fetched the challenge from us')
    assert.equal(fs.statSync(path.join(paths.acme, 'account.key')).mode & 0o777, 0o600)
    assert.deepEqual(sink.calls, [`install ${HOST} file`])
    assert.equal(lastEvent('certificate.issue')?.outcome, 'ok')
    firstSerial = servedSerial()
    accountUrl = await manager.accountUrl()
  })

  test('renews at two thirds of the lifetime, not before: a new serial, the old one served until then', async () => {
    offset = 19 * DAY
    await manager.tick()
    assert.equal(servedSerial(), firstSerial, 'not due yet: nothing ordered')
    assert.equal(attempts(), 1)
    offset = 20 * DAY + 3600_000
    await manager.tick()
    assert.notEqual(servedSerial(), firstSerial)
    assert.equal(store.list('shop')[0]!.state, 'valid')
    assert.equal(lastEvent('certificate.renew')?.outcome, 'ok')
    assert.deepEqual(sink.calls, [`install ${HOST} file`, `install ${HOST} file`])
  })

  test('a failed renewal keeps serving the old certificate, records why, and backs off instead of storming', async () => {
    // The renewed certificate is due at once on this clock (its lifetime began on real time).
    const served = servedSerial()
    answers.answering = false
    offset = 21 * DAY
    const t0 = clock()
    const n0 = attempts()
    await manager.tick()
    const failed = store.list('shop')[0]!
    assert.equal(failed.state, 'failed')
    assert.match(failed.lastError!, /./)
    assert.equal(failed.failures, 1)
    assert.equal(servedSerial(), served, 'the old certificate stays in its file')
    assert.equal(sink.calls.length, 2, 'and in the edge')
    const event = lastEvent('certificate.renew')!
    assert.equal(event.outcome, 'failed')
    assert.equal(event.detail!.host, HOST)
    // Backoff: a minute, halved by the fixed jitter; asking again (a restart too) orders nothing until then.
    near(Date.parse(failed.nextRenewalAt!), t0 + 30_000)
    const before = { attempts: attempts(), hits: answers.hits.length }
    for (let i = 0; i < 5; i++) await manager.tick()
    const restarted = newManager()
    await restarted.tick()
    restarted.close()
    assert.deepEqual({ attempts: attempts(), hits: answers.hits.length }, before)
    // Due again: a second failure doubles the delay; the third attempt in the hour reaches the hourly cap.
    offset += 35_000
    const t1 = clock()
    await manager.tick()
    assert.equal(store.list('shop')[0]!.failures, 2)
    near(Date.parse(store.list('shop')[0]!.nextRenewalAt!), t1 + 60_000)
    offset += 65_000
    await manager.tick()
    assert.equal(store.list('shop')[0]!.failures, 3)
    offset += 10 * 60_000
    await manager.tick()
    assert.equal(store.list('shop')[0]!.failures, 3, 'the cap holds the fourth attempt, whatever the backoff says')
    near(manager.nextAllowedAt(store.row(HOST)!), t0 + 3600_000)
    assert.equal(attempts(), n0 + 3, 'three orders in the hour, each recorded')
    // Answering again, after the hour: renewed, failures cleared.
    answers.answering = true
    offset = manager.nextAllowedAt(store.row(HOST)!) - Date.now() + 1000
    await manager.tick()
    const ok = store.list('shop')[0]!
    assert.equal(ok.state, 'valid', ok.lastError ?? '')
    assert.equal(ok.failures, 0)
    assert.notEqual(servedSerial(), served)
  })

  test('a restarted berth keeps its ACME account: the same key, the same account URL', async () => {
    const key = fs.readFileSync(path.join(paths.acme, 'account.key'), 'utf8')
    manager.close()
    manager = newManager()
    assert.equal(await manager.accountUrl(), accountUrl)
    assert.equal(fs.readFileSync(path.join(paths.acme, 'account.key'), 'utf8'), key)
  })

  test('after close, nothing is ordered', async () => {
    manager.close()
    offset += 25 * DAY
    const n = attempts()
    await manager.sync([{ app: 'shop', host: HOST }])
    await manager.tick()
    assert.equal(attempts(), n)
  })

  test('issuance goes through pebble\'s badNonce refusals (a quarter of nonces refused here)', async (t) => {
    const noisy = await startPebble(path.join(dir), { nonceRejectPercent: 25, httpsCa: pebble.httpsCa })
    const noisyAnswers = await serveChallenges(challenges, noisy.httpPort)
    const hosts = ['a.berth.test', 'b.berth.test']
    proxies.set('noisy', { listen: null, ...DEFAULT_PROXY, hosts, tls: 'acme' })
    db.prepare("INSERT INTO apps (name, created_at) VALUES ('noisy', '2026-01-01')").run()
    const m = newManager(OPTIONS, { directory: noisy.directory, email: null, caFile: noisy.caFile })
    try {
      const seen = badNonces
      await m.sync(hosts.map((host) => ({ app: 'noisy', host })))
      assert.deepEqual(store.list('noisy').map((v) => [v.host, v.state, v.lastError]), hosts.map((h) => [h, 'valid', null]))
      assert.ok(badNonces > seen, `pebble refused ${badNonces - seen} nonces and acme-client retried them`)
      t.diagnostic(`badNonce refusals retried: ${seen} at pebble's default 5 % in the tests before, ${badNonces - seen} at 25 % for these two hostnames`)
    } finally {
      m.close()
      await noisyAnswers.close()
      await noisy.stop()
    }
  })
})

test('BERTH_ACME_RENEW_FRACTION sets when renewals are due (two thirds by default), within 0.1 to 0.95', () => {
  const edge = { BERTH_DATA_DIR: '/tmp/x', BERTH_EDGE_HTTP: '127.0.0.1:8080', BERTH_EDGE_HTTPS: '127.0.0.1:8443' }
  assert.equal(loadConfig(edge).edge!.acme.renewFraction, 2 / 3)
  assert.equal(loadConfig({ ...edge, BERTH_ACME_RENEW_FRACTION: '0.5' }).edge!.acme.renewFraction, 0.5)
  for (const bad of ['0.05', '1', 'two thirds', '-0.5']) assert.throws(() => loadConfig({ ...edge, BERTH_ACME_RENEW_FRACTION: bad }), ConfigError, bad)
})

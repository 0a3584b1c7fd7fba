// Custom certificates of the edge, checked with real certificates made by openssl: what is refused (with
// which code), what is stored (leaf first, 0600, in a 0700 directory), what the edge is told, and that no
// key material reaches the database, the events or the log. The edge itself is a recording fake here.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import pino from 'pino'
import { DEFAULT_PROXY, type ProxySettings } from '../src/apps/proxy-settings.js'
import { CertificateStore } from '../src/edge/certs.js'
import { isBerthError } from '../src/errors.js'
import { Paths } from '../src/paths.js'
import { openDatabase, type Database } from '../src/store/db.js'
import { EventStore } from '../src/store/events.js'
import { issue, makeCa, RecordingSink, type TestCa } from './helpers/certs.js'
import { tempDir } from './helpers/daemon.js'

let dir: string
let db: Database
let ca: TestCa
let store: CertificateStore
let sink: RecordingSink
let logs: string[]
const proxies = new Map<string, ProxySettings>()
const proxy = (hosts: string[], tls: ProxySettings['tls']): ProxySettings => ({ listen: null, ...DEFAULT_PROXY, hosts, tls })

async function refused(p: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(p, (err) => {
    assert.ok(isBerthError(err), String(err))
    assert.equal(err.code, code, err.message)
    assert.equal(err.status, status)
    return true
  })
}

before(() => {
  dir = tempDir('berth-certs-')
  const paths = new Paths(dir)
  logs = []
  const log = pino({ level: 'trace' }, { write: (l: string) => void logs.push(l) })
  db = openDatabase(paths.db, log)
  db.prepare("INSERT INTO apps (name, created_at) VALUES ('shop', '2026-01-01'), ('blog', '2026-01-01')").run()
  ca = makeCa(dir)
  sink = new RecordingSink()
  proxies.set('shop', proxy(['shop.example.test', 'www.example.test', 'api.example.test'], 'custom'))
  proxies.set('blog', proxy(['blog.example.test'], null))
  store = new CertificateStore({ db, paths, events: new EventStore(db, log), log, sink, proxyOf: (app) => proxies.get(app) ?? null, edgeHasHttps: true })
})
after(() => {
  db.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

describe('a custom certificate', () => {
  test('is stored leaf first with its key as PKCS#8, mode 0600 in a 0700 directory, and loaded into the edge', async () => {
    const leaf = issue(ca, { names: ['shop.example.test'] })
    const view = await store.putCustom('shop', 'shop.example.test', leaf.cert, leaf.key, 'alice')
    assert.equal(view.source, 'custom')
    assert.equal(view.state, 'valid')
    assert.deepEqual(view.names, ['shop.example.test'])
    assert.match(view.issuer!, /berth test CA/)
    assert.equal(view.nextRenewalAt, null)
    const file = store.file('shop.example.test')
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700)
    const pem = fs.readFileSync(file, 'utf8')
    assert.ok(pem.indexOf('BEGIN CERTIFICATE') < pem.indexOf('BEGIN PRIVATE KEY'), 'chain first, then the key')
    assert.deepEqual(sink.calls, ['install shop.example.test file'])
  })

  test('a chain sent out of order is stored leaf first, then its intermediate', async () => {
    const inter = issue(ca, { cn: 'berth test intermediate', intermediate: true })
    const leaf = issue(inter.asCa(), { names: ['www.example.test'] })
    await store.putCustom('shop', 'www.example.test', `${inter.cert}\n${leaf.cert}`, leaf.key, 'alice')
    const pem = fs.readFileSync(store.file('www.example.test'), 'utf8')
    const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!
    assert.equal(certs.length, 2)
    assert.equal(new (await import('node:crypto')).X509Certificate(certs[0]!).subject, 'CN=www.example.test')
    // A certificate that issues nothing in the chain is refused, not silently served to every client.
    const stray = issue(ca, { names: ['other.example.test'] })
    await refused(store.putCustom('shop', 'www.example.test', `${leaf.cert}${inter.cert}${stray.cert}`, leaf.key, 'alice'), 'CERT_CHAIN_INVALID', 422)
  })

  test('a key of another certificate is CERT_KEY_MISMATCH', async () => {
    const a = issue(ca, { names: ['shop.example.test'] })
    const b = issue(ca, { names: ['shop.example.test'] })
    await refused(store.putCustom('shop', 'shop.example.test', a.cert, b.key, 'alice'), 'CERT_KEY_MISMATCH', 422)
  })

  test('an expired certificate, or one not valid yet, is CERT_EXPIRED', async () => {
    const day = 86_400_000
    const old = issue(ca, { names: ['shop.example.test'], start: Date.now() - 60 * day, end: Date.now() - day })
    await refused(store.putCustom('shop', 'shop.example.test', old.cert, old.key, 'alice'), 'CERT_EXPIRED', 422)
    const early = issue(ca, { names: ['shop.example.test'], start: Date.now() + day, end: Date.now() + 60 * day })
    await refused(store.putCustom('shop', 'shop.example.test', early.cert, early.key, 'alice'), 'CERT_EXPIRED', 422)
  })

  test('the hostname must be among its DNS names; a wildcard covers exactly one label', async () => {
    const other = issue(ca, { names: ['other.example.test'], cn: 'shop.example.test' })
    // The subject's CN is not enough: browsers read subjectAltName only.
    await refused(store.putCustom('shop', 'shop.example.test', other.cert, other.key, 'alice'), 'CERT_HOST_MISMATCH', 422)
    const wild = issue(ca, { names: ['*.example.test'] })
    const view = await store.putCustom('shop', 'api.example.test', wild.cert, wild.key, 'alice')
    assert.deepEqual(view.names, ['*.example.test'])
    proxies.set('shop', proxy([...proxies.get('shop')!.hosts, 'a.b.example.test', 'example.test'], 'custom'))
    await refused(store.putCustom('shop', 'a.b.example.test', wild.cert, wild.key, 'alice'), 'CERT_HOST_MISMATCH', 422)
    await refused(store.putCustom('shop', 'example.test', wild.cert, wild.key, 'alice'), 'CERT_HOST_MISMATCH', 422)
    proxies.set('shop', proxy(proxies.get('shop')!.hosts.slice(0, 3), 'custom'))
  })

  test('unreadable input is CERT_INVALID: no PEM, garbage, an encrypted key, a short RSA key', async () => {
    const good = issue(ca, { names: ['shop.example.test'] })
    await refused(store.putCustom('shop', 'shop.example.test', 'hello', good.key, 'alice'), 'CERT_INVALID', 422)
    await refused(store.putCustom('shop', 'shop.example.test', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', good.key, 'alice'), 'CERT_INVALID', 422)
    await refused(store.putCustom('shop', 'shop.example.test', good.cert, 'not a key', 'alice'), 'CERT_INVALID', 422)
    const crypto = await import('node:crypto')
    const encrypted = crypto.createPrivateKey(good.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string
    await refused(store.putCustom('shop', 'shop.example.test', good.cert, encrypted, 'alice'), 'CERT_INVALID', 422)
    const weak = issue(ca, { names: ['shop.example.test'], rsaBits: 1024 })
    await refused(store.putCustom('shop', 'shop.example.test', weak.cert, weak.key, 'alice'), 'CERT_INVALID', 422)
  })

  test('a hostname the app does not route is HOST_NOT_ROUTED; an app without proxy.tls custom is TLS_MODE_MISMATCH', async () => {
    const leaf = issue(ca, { names: ['blog.example.test'] })
    await refused(store.putCustom('shop', 'blog.example.test', leaf.cert, leaf.key, 'alice'), 'HOST_NOT_ROUTED', 409)
    // blog's tls is null, which is acme with an HTTPS edge: berth would replace the upload at its next renewal.
    await refused(store.putCustom('blog', 'blog.example.test', leaf.cert, leaf.key, 'alice'), 'TLS_MODE_MISMATCH', 409)
  })

  test('when the edge refuses a replacement, the old file stays and so does the row', async () => {
    const before = fs.readFileSync(store.file('shop.example.test'), 'utf8')
    const row = store.row('shop.example.test')!
    const next = issue(ca, { names: ['shop.example.test'] })
    sink.fail = true
    await assert.rejects(store.putCustom('shop', 'shop.example.test', next.cert, next.key, 'alice'), /refused/)
    sink.fail = false
    assert.equal(fs.readFileSync(store.file('shop.example.test'), 'utf8'), before)
    assert.equal(store.row('shop.example.test')!.serial, row.serial)
  })
})

describe('the certificates of an app', () => {
  test('list every hostname of proxy.hosts, those without a certificate too', () => {
    const shop = store.list('shop')
    assert.deepEqual(shop.map((c) => [c.host, c.source, c.state]), [['shop.example.test', 'custom', 'valid'], ['www.example.test', 'custom', 'valid'], ['api.example.test', 'custom', 'valid']])
    assert.deepEqual(store.list('blog').map((c) => [c.host, c.source, c.state]), [['blog.example.test', 'acme', 'pending']])
    proxies.set('blog', proxy(['blog.example.test'], 'custom'))
    assert.deepEqual(store.list('blog').map((c) => [c.host, c.source, c.state]), [['blog.example.test', 'custom', 'missing']])
  })

  test('are loaded into the edge at start; a hostname the app gave up loses its certificate and file', async () => {
    sink.calls = []
    proxies.set('shop', proxy(['shop.example.test', 'www.example.test'], 'custom'))
    assert.equal(await store.installAll(), 2)
    assert.deepEqual(sink.calls, ['remove api.example.test', 'install shop.example.test file', 'install www.example.test file'])
    assert.equal(fs.existsSync(store.file('api.example.test')), false)
    assert.equal(store.row('api.example.test'), null)
  })

  test('a custom one can be deleted; no key material is in the database, the events or the log', async () => {
    await store.deleteCustom('shop', 'www.example.test', 'alice')
    assert.equal(fs.existsSync(store.file('www.example.test')), false)
    await refused(store.deleteCustom('shop', 'www.example.test', 'alice'), 'CERT_NOT_FOUND', 404)
    const dump = JSON.stringify([db.prepare('SELECT * FROM edge_certificates').all(), db.prepare('SELECT * FROM events').all()])
    assert.match(dump, /certificate\.install/)
    assert.match(dump, /certificate\.remove/)
    for (const text of [dump, logs.join('')]) {
      assert.doesNotMatch(text, /PRIVATE KEY|BEGIN CERTIFICATE/)
    }
  })
})

// The edge's access log with a real haproxy: one JSON line per request filed under the app (never the query
// string, a hostile Host still valid JSON), unknown hosts in the edge's own file, forged lines refused, the
// port kept across a restart of the receiver while haproxy runs on, tls on HTTPS, rotation, a full queue.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import dgram from 'node:dgram'
import fs from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import pino from 'pino'
import { AccessFile } from '../src/edge/access-file.js'
import { AccessLog, accessLogConfig, type AccessTransport } from '../src/edge/access-log.js'
import { Paths } from '../src/paths.js'
import { endProcessesUnder, freePort, tempDir } from './helpers/daemon.js'
import { get as getThrough, rawRequest, startBackend, startEdgeStandIn, type Backend, type EdgeStandIn } from './helpers/edge-haproxy.js'
import { until } from './helpers/wait.js'

const silent = pino({ level: 'silent' })

interface Line {
  app: string
  status: number
  durationMs: number
  serverMs: number
  at: string
  host: string
  method: string
  path: string
  bytesIn: number
  bytesOut: number
  tls: boolean
  client: string
  slot: string
  termination: string
}

/** Every line of a file, each parsed as JSON (a line that is not fails the test). */
function lines(file: string): Line[] {
  if (!fs.existsSync(file)) return []
  const text = fs.readFileSync(file, 'utf8')
  assert.ok(text === '' || text.endsWith('\n'), 'every line ends with a newline')
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line)
}

for (const transport of ['ring', 'udp'] as AccessTransport[]) describe(`access lines from a real haproxy, over ${transport}`, () => {
  let dir: string
  let paths: Paths
  let log: AccessLog
  let backend: Backend
  let edge: EdgeStandIn
  const appFile = () => path.join(paths.log('hello'), 'access.log')
  const edgeFile = () => path.join(paths.edge, 'access.log')
  const get = (p: string, host = 'hello.example.com') => getThrough(edge.port, p, host)

  before(async () => {
    dir = tempDir('berth-access-')
    paths = new Paths(dir)
    fs.mkdirSync(paths.app('hello'), { recursive: true })
    log = new AccessLog({ paths, log: silent })
    await log.start()
    backend = await startBackend(await freePort())
    edge = await startEdgeStandIn({ dir, port: await freePort(), backendPort: backend.port, apps: ['hello'], log: log.config(transport) })
  })
  after(async () => {
    await edge.stop()
    await log.close()
    await backend.close()
    assert.deepEqual(await endProcessesUnder(dir), [])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('one JSON line per request under the app, without the query string', async () => {
    assert.equal(await get('/a/b?token=secret&x=1'), 200)
    assert.equal(await get('/404/missing'), 404)
    assert.equal(await get('/500/broken'), 500)
    assert.equal(await rawRequest(edge.port, 'POST /form?token=secret HTTP/1.1\r\nhost: HELLO.example.com:8080\r\ncontent-length: 0'), 200)
    // Characters a URI may carry through haproxy that are special in JSON.
    assert.equal(await rawRequest(edge.port, 'GET /q"x\\y]z HTTP/1.1\r\nhost: hello.example.com'), 200)
    await until('5 lines', async () => (await log.flushed(), lines(appFile()).length >= 5), 10_000)
    const text = fs.readFileSync(appFile(), 'utf8')
    assert.doesNotMatch(text, /secret|token/, 'the query string never reaches the file')
    const got = lines(appFile())
    assert.deepEqual(got.map((l) => [l.method, l.path, l.status]), [['GET', '/a/b', 200], ['GET', '/404/missing', 404], ['GET', '/500/broken', 500], ['POST', '/form', 200], ['GET', '/q"x\\y]z', 200]])
    const first = got[0]!
    assert.equal(first.app, 'hello')
    assert.equal(first.host, 'hello.example.com')
    assert.equal(got[3]!.host, 'hello.example.com', 'lower-cased, without the port')
    assert.equal(first.tls, false)
    assert.equal(first.slot, 'a')
    assert.equal(first.client, '127.0.0.1')
    assert.equal(first.termination, '----')
    assert.ok(first.durationMs >= 0 && first.serverMs >= 0 && first.bytesOut > 0 && first.bytesIn > 0, JSON.stringify(first))
    assert.ok(Math.abs(Date.parse(first.at) - Date.now()) < 60_000 && /\.\d{3}Z$/.test(first.at), first.at)
    const stats = log.requestStats().get('hello')!
    assert.deepEqual([...stats.codes], [0, 3, 0, 1, 1, 0])
    assert.equal(stats.count, 5)
    assert.equal(stats.buckets.reduce((a, b) => a + b, 0), 5, 'every request in a bucket up to 10 s')
  })

  test('a Host with quotes and backslashes stays one valid JSON line, and injects no field', async () => {
    const hostile = 'hello.example.com","app":"other\\"x\\\\'
    assert.equal(await rawRequest(edge.port, `GET /h HTTP/1.1\r\nhost: ${hostile}`), 200)
    const unknown = 'nope"\\.example.org'
    assert.equal(await rawRequest(edge.port, `GET /u?token=secret HTTP/1.1\r\nhost: ${unknown}`), 404)
    await until('the hostile line', async () => (await log.flushed(), lines(appFile()).some((l) => l.path === '/h')), 10_000)
    const line = lines(appFile()).find((l) => l.path === '/h')!
    assert.equal(line.host, hostile.toLowerCase())
    assert.equal(line.app, 'hello')
    await until('the unknown host in the edge\'s file', async () => (await log.flushed(), lines(edgeFile()).some((l) => l.path === '/u')), 10_000)
    const stray = lines(edgeFile()).find((l) => l.path === '/u')!
    assert.deepEqual([stray.app, stray.host, stray.path, stray.status, stray.slot], ['-', unknown, '/u', 404, '<NOSRV>'])
    assert.doesNotMatch(fs.readFileSync(edgeFile(), 'utf8'), /secret/)
    assert.equal(log.requestStats().size, 1, 'requests without an app are not counted per app')
  })

  test('lines without the key, or cut short, are counted and never filed', async () => {
    const before = { ...log.droppedLines() }
    const size = fs.statSync(appFile()).size
    const key = fs.readFileSync(path.join(paths.edge, 'log-key'), 'utf8').trim()
    const forged = '{"app":"hello","status":200,"durationMs":1,"path":"/forged"}\n'
    if (transport === 'udp') {
      const sock = dgram.createSocket('udp4')
      const send = (text: string) => new Promise<void>((resolve, reject) => sock.send(text, log.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())))
      await send(forged)
      await send(`${key} {"app":"hello","status":200,"durationMs":1,"path":"/cut`)
      sock.close()
    } else {
      // A line longer than LINE_MAX is skipped up to its newline.
      const conn = net.connect(log.port, '127.0.0.1')
      await new Promise<void>((resolve) => conn.end(`${forged}${key} {"app":"hello","status":200,"durationMs":1,"path":"/${'x'.repeat(9000)}"}\n`, resolve))
    }
    await until('both counted', () => log.droppedLines().foreign === before.foreign + 1 && log.droppedLines().unparseable === before.unparseable + 1, 5_000)
    await log.flushed()
    assert.equal(fs.statSync(appFile()).size, size)
    assert.equal((fs.statSync(path.join(paths.edge, 'log-key')).mode & 0o777).toString(8), '600')
  })

  test('the port survives a restart of the receiver while haproxy keeps running', async () => {
    const port = log.port
    assert.equal(fs.readFileSync(path.join(paths.edge, 'log-port'), 'utf8').trim(), String(port))
    const pid = edge.child.pid
    await log.close()
    // berth is down: haproxy answers as before. Its line waits in the ring, or is dropped by the kernel (UDP).
    assert.equal(await get('/while-down'), 200)
    log = new AccessLog({ paths, log: silent })
    await log.start()
    assert.equal(log.port, port)
    assert.equal(await get('/after-restart'), 200)
    await until('the line after the restart', async () => (await log.flushed(), lines(appFile()).some((l) => l.path === '/after-restart')), 15_000)
    assert.equal(lines(appFile()).some((l) => l.path === '/while-down'), transport === 'ring')
    assert.equal(edge.child.pid, pid)
    assert.equal(edge.child.exitCode, null, 'haproxy ran on')
  })

  test('access.log rotates at the cap into one old generation', async () => {
    await log.close()
    log = new AccessLog({ paths, log: silent, maxBytes: 3000 })
    await log.start()
    for (let i = 0; i < 40; i++) assert.equal(await get(`/r/${i}`), 200)
    await until('the last line', async () => (await log.flushed(), lines(appFile()).some((l) => l.path === '/r/39')), 10_000)
    for (const f of [appFile(), `${appFile()}.1`]) {
      assert.ok(fs.statSync(f).size <= 3000, `${f}: ${fs.statSync(f).size} bytes`)
      assert.ok(lines(f).length > 0)
    }
    assert.deepEqual(fs.readdirSync(paths.log('hello')).filter((f) => f.startsWith('access')).sort(), ['access.log', 'access.log.1'])
    const kept = [...lines(`${appFile()}.1`), ...lines(appFile())].map((l) => l.path).filter((p) => p.startsWith('/r/'))
    assert.deepEqual(kept, kept.map((_, i) => `/r/${40 - kept.length + i}`), 'the newest lines, in order')
  })
})

test('the config quotes the format for haproxy and names the port', () => {
  const key = 'ab'.repeat(16)
  const udp = accessLogConfig({ host: '127.0.0.1', port: 5140, key, transport: 'udp' })
  assert.deepEqual(udp.sections, [])
  assert.equal(udp.defaults[0], 'log 127.0.0.1:5140 len 8192 format raw local0 info')
  assert.match(udp.defaults[1]!, /^log-format "abab[0-9a-f]* \{\\"app\\":\\"%\[var\(txn\.app\),json\(utf8s\)\]\\",/)
  assert.doesNotMatch(udp.defaults[1]!, /%HP|%r|query/, 'no field carries the query string')
  const ring = accessLogConfig({ host: '127.0.0.1', port: 5140, key, transport: 'ring' })
  assert.ok(ring.sections.includes('  server berth 127.0.0.1:5140'))
  assert.equal(ring.defaults[0], 'log ring@berth-access len 8192 format raw local0 info')
})

test('a request over HTTPS says tls true', async () => {
  const dir = tempDir('berth-access-tls-')
  const paths = new Paths(dir)
  fs.mkdirSync(paths.app('hello'), { recursive: true })
  const log = new AccessLog({ paths, log: silent })
  const backend = await startBackend(await freePort())
  let edge: EdgeStandIn | null = null
  try {
    await log.start()
    const key = path.join(dir, 'key.pem')
    const cert = path.join(dir, 'cert.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=hello.example.com'], { stdio: 'ignore' })
    const pem = path.join(dir, 'site.pem')
    fs.writeFileSync(pem, fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8'))
    const tlsPort = await freePort()
    edge = await startEdgeStandIn({ dir, port: await freePort(), backendPort: backend.port, apps: ['hello'], log: log.config(), tls: { port: tlsPort, pem } })
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port: tlsPort, path: '/secure?token=secret', headers: { host: 'hello.example.com' }, servername: 'hello.example.com', rejectUnauthorized: false }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', reject)
    })
    assert.equal(status, 200)
    const file = path.join(paths.log('hello'), 'access.log')
    await until('the HTTPS line', async () => (await log.flushed(), lines(file).some((l) => l.path === '/secure')), 10_000)
    const line = lines(file).find((l) => l.path === '/secure')!
    assert.equal(line.tls, true)
    assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /secret/)
  } finally {
    await edge?.stop()
    await log.close()
    await backend.close()
    assert.deepEqual(await endProcessesUnder(dir), [])
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a full write queue drops lines and counts them, never growing', async () => {
  const dir = tempDir('berth-access-q-')
  try {
    const f = new AccessFile(path.join(dir, 'log', 'access.log'), { maxBytes: 1 << 20, highWaterBytes: 1000, batchMs: 0, now: Date.now, onWriteError: () => assert.fail('no write error') })
    const line = Buffer.from(`${'x'.repeat(99)}\n`)
    let accepted = 0
    for (let i = 0; i < 50; i++) if (f.write(line)) accepted++
    // The first line leaves the queue at once (its write is on its way); ten more fill the 1000 bytes.
    assert.equal(accepted, 11)
    assert.equal(f.dropped, 39)
    await f.close()
    assert.equal(fs.statSync(path.join(dir, 'log', 'access.log')).size, accepted * 100)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

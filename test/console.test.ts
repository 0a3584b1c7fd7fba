// Consoles over real websockets against a real node: remote IEx evaluates, attach watches the node's own
// console without letting Ctrl+C stop it, auth and Origin are enforced, big output arrives whole with bounded
// memory, sessions are recorded, and the web page works in a real headless Chromium.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture, REPO } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js'

let d: TestDaemon
let port: number
const json = { 'content-type': 'application/json' }

interface Client {
  ws: WebSocket
  out(): string
  bytes(): number
  control: Record<string, unknown>[]
  closed: Promise<{ code: number; reason: string }>
  send(text: string): void
}

function connect(kind: 'remote' | 'attach', opts: { token?: string; origin?: string; authFrame?: string } = {}): Promise<Client> {
  const headers: Record<string, string> = {}
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  if (opts.origin) headers.origin = opts.origin
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/apps/hello/${kind}`, { headers })
  const chunks: Buffer[] = []
  let total = 0
  const control: Record<string, unknown>[] = []
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  ws.on('message', (m: Buffer, binary: boolean) => {
    if (binary) {
      total += m.length
      // Keep only the tail of very large outputs; the byte count is what the big-output test checks.
      chunks.push(m)
      while (chunks.length > 64) chunks.shift()
    } else control.push(JSON.parse(m.toString()) as Record<string, unknown>)
  })
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_q, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })))
    ws.on('error', reject)
    ws.on('open', () => {
      if (opts.authFrame !== undefined) ws.send(JSON.stringify({ type: 'auth', token: opts.authFrame }))
      resolve({ ws, out: () => Buffer.concat(chunks).toString(), bytes: () => total, control, closed, send: (t) => ws.send(Buffer.from(t)) })
    })
  })
}

before(async () => {
  d = await startDaemon({ BERTH_MAX_SESSIONS_PER_APP: '20' })
  port = await freePort()
  await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port) }) })
  await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })
  const res = await upload(d.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken, query: 'deploy=true' })
  assert.equal(res.body.deployment?.state, 'succeeded', res.text)
})
after(async () => {
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

async function nodeServes(): Promise<boolean> {
  return (await (await fetch(`http://127.0.0.1:${port}/`)).text()) === 'hello 0.1.0\n'
}

describe('remote', () => {
  test('evaluates 1+41 → 42; closing the socket ends the session and leaves no process', async () => {
    const c = await connect('remote', { token: d.adminToken })
    await until('prompt', () => /iex\(hello@[^)]+\)1> /.test(c.out()))
    c.send('1+41\r')
    // IEx colours results: strip ANSI before looking for the value.
    await until('42', () => /\b42\b/.test((c.out().split('1+41')[1] ?? '').replace(/\x1b\[[0-9;]*m/g, '')))
    const sessions = (await call(`${d.url}/v1/apps/hello/sessions`, { token: d.adminToken })).body.sessions
    const live = sessions.find((s: { active: boolean }) => s.active)
    assert.ok(live, 'the session is listed as active')
    const remotes = () => processesUnder(path.join(d.dataDir, 'apps', 'hello', 'releases')).filter((p) => / remote|remsh/.test(p.cmd))
    assert.ok(remotes().length > 0, 'the remote shell runs')
    c.ws.close()
    await until('remote shell gone', () => remotes().length === 0, 10_000)
    assert.ok(await nodeServes(), 'the node keeps running')
  })

  test('a shell that exits sends an exit frame before the close', async () => {
    const c = await connect('remote', { token: d.adminToken })
    await until('prompt', () => c.out().includes('iex('))
    // Ctrl+G q quits the local hidden node of `remote`, not the target node.
    c.send('\x07')
    await until('JCL prompt', () => c.out().includes('-->'))
    c.send('q\r')
    const closed = await c.closed
    assert.equal(closed.code, 1000)
    assert.deepEqual(c.control.find((m) => m.type === 'exit'), { type: 'exit', code: 0, reason: 'exited' })
    assert.ok(await nodeServes())
  })

  test('a large output arrives completely while memory stays bounded', async () => {
    const c = await connect('remote', { token: d.adminToken })
    await until('prompt', () => c.out().includes('iex('))
    const size = 30_000_000
    const before = process.memoryUsage().rss
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
    c.send(`Hello.big_output(${size}); :done\r`)
    await until('all bytes', () => c.bytes() >= size && c.out().includes(':done'), 120_000)
    clearInterval(sampler)
    assert.ok(c.bytes() >= size)
    assert.ok(peak - before < 150 * 1024 * 1024, `rss grew by ${Math.round((peak - before) / 1048576)} MiB`)
    c.ws.close()
    await c.closed
  })
})

describe('attach', () => {
  test('sees the node console; Ctrl+C is intercepted and the node keeps running', async () => {
    const a = await connect('attach', { token: d.adminToken })
    const b = await connect('attach', { token: d.adminToken })
    await until('banner', () => a.out().includes('Ctrl+D'))
    a.send('\r')
    a.send('IO.puts("attach-" <> "marker")\r')
    await until('marker on viewer a', () => a.out().includes('attach-marker'))
    await until('marker on viewer b', () => b.out().includes('attach-marker'))
    a.send('\x03')
    await until('notice', () => /Ctrl\+C/.test(a.out().split('attach-marker').pop() ?? ''))
    await new Promise((r) => setTimeout(r, 500))
    assert.ok(await nodeServes(), 'the node survived Ctrl+C')
    a.ws.close()
    b.ws.close()
    await Promise.all([a.closed, b.closed])
    assert.ok(await nodeServes(), 'the node outlives every viewer')
  })
})

describe('auth and origin', () => {
  test('missing, wrong, under-scoped and other-app tokens and a foreign Origin are refused', async () => {
    const noAuth = await connect('remote')
    assert.equal((await noAuth.closed).code, 4401)
    const wrong = await connect('remote', { authFrame: 'berth_0123456789abcdef_' + 'A'.repeat(43) })
    assert.equal((await wrong.closed).code, 4401)
    assert.equal(wrong.control[0]?.code, 'UNAUTHORIZED')
    const reader = d.token('reader', ['read'])
    await assert.rejects(connect('remote', { token: reader }), (e: { status: number }) => e.status === 403)
    const viaFrame = await connect('remote', { authFrame: reader })
    assert.equal((await viaFrame.closed).code, 4403)
    const other = d.token('other-console', ['console'], ['other'])
    await assert.rejects(connect('attach', { token: other }), (e: { status: number }) => e.status === 403)
    await assert.rejects(connect('remote', { token: d.adminToken, origin: 'https://evil.example' }), (e: { status: number }) => e.status === 403)
    const own = await connect('remote', { origin: d.url, authFrame: d.adminToken })
    await until('prompt via frame auth', () => own.out().includes('iex('))
    own.ws.close()
    await own.closed
  })

  test('rpc runs an expression with a timeout', async () => {
    const res = await call(`${d.url}/v1/apps/hello/rpc`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ expr: 'IO.puts(6 * 7)' }) })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.code, 0)
    assert.equal(res.body.output.trim(), '42')
    const slow = await call(`${d.url}/v1/apps/hello/rpc`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ expr: 'Process.sleep(60_000)', timeoutMs: 1500 }) })
    assert.equal(slow.body.timedOut, true)
    const reader = d.token('reader-rpc', ['read'])
    assert.equal((await call(`${d.url}/v1/apps/hello/rpc`, { method: 'POST', token: reader, headers: json, body: '{"expr":"1"}' })).status, 403)
    // D9: the expression is audited for console and admin readers only, and never written to berth.log.
    const rpcExprs = async (token: string) => ((await call(`${d.url}/v1/apps/hello/events?limit=1000`, { token })).body.events as { action: string; detail: { expr?: string } }[]).filter((e) => e.action === 'rpc').map((e) => e.detail.expr ?? null)
    assert.ok((await rpcExprs(d.adminToken)).includes('IO.puts(6 * 7)'), 'admin reads the expression')
    assert.ok((await rpcExprs(d.token('console-rpc', ['read', 'console'], ['hello']))).includes('IO.puts(6 * 7)'), 'the console scope reads it')
    const forReader = await rpcExprs(reader)
    assert.ok(forReader.length >= 2 && forReader.every((x) => x === null), `a read token sees rpc events without expressions: ${JSON.stringify(forReader)}`)
    const berthLog = fs.readFileSync(path.join(d.dataDir, 'apps', 'hello', 'log', 'berth.log'), 'utf8')
    assert.match(berthLog, / rpc ok /)
    assert.ok(!berthLog.includes('6 * 7') && !berthLog.includes('Process.sleep'), 'berth.log holds no expression')
  })
  test("rpc reaches the node from its own release when current has moved on (a deploy between its switch and its restart)", async () => {
    const up = await upload(d.url, 'hello', fs.readFileSync((await fixture('v2')).tarball), { token: d.adminToken })
    assert.equal(up.status, 201, up.text)
    const link = path.join(d.dataDir, 'apps', 'hello', 'current')
    const was = fs.readlinkSync(link)
    // What a deploy's switch step leaves until its restart: v2 is current, the v1 node (v1's cookie) runs.
    fs.symlinkSync(`releases/${up.body.id}`, `${link}.t`)
    fs.renameSync(`${link}.t`, link)
    try {
      const res = await call(`${d.url}/v1/apps/hello/rpc`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ expr: 'IO.puts(Application.spec(:hello, :vsn))' }) })
      assert.equal(res.status, 200, res.text)
      assert.equal(res.body.code, 0, res.body.output)
      assert.equal(res.body.output.trim(), '0.1.0')
    } finally {
      fs.symlinkSync(was, `${link}.t`)
      fs.renameSync(`${link}.t`, link)
    }
  })
})

describe('recordings', () => {
  test('every session is listed with who/when/bytes, and its recording replays the same bytes', async () => {
    const c = await connect('remote', { token: d.adminToken })
    await until('prompt', () => c.out().includes('iex('))
    c.send('String.duplicate("rec", 3)\r')
    await until('result', () => c.out().includes('"recrecrec"'))
    const seen = c.out()
    c.ws.close()
    await c.closed
    let session: { id: string; actor: string; bytesOut: number; endedAt: string | null } | undefined
    await until('session finished', async () => {
      const list = (await call(`${d.url}/v1/apps/hello/sessions`, { token: d.adminToken })).body.sessions
      session = list[0]
      return !!session?.endedAt
    })
    assert.equal(session!.actor, 'initial-admin')
    assert.equal(session!.bytesOut, Buffer.byteLength(seen))
    const cast = await call(`${d.url}/v1/apps/hello/sessions/${session!.id}.cast`, { token: d.adminToken })
    assert.equal(cast.status, 200)
    const [header, ...events] = cast.text.trim().split('\n').map((l) => JSON.parse(l))
    assert.equal(header.version, 2)
    const replay = events.filter((e: unknown[]) => e[1] === 'o').map((e: unknown[]) => e[2]).join('')
    assert.equal(replay, seen)
    assert.ok(!cast.text.includes('String.duplicate("rec", 3)\\r'), 'typed input is not recorded as input')
  })
})

describe('web terminal', () => {
  test('in headless Chromium: a second Connect and switching remote ↔ attach each give a live terminal', async (t) => {
    if (!HAVE_CHROMIUM) return t.skip('chromium not installed')
    const browser = await launchChromium()
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 600 } })
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(String(e)))
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
      await page.goto(`${d.url}/console/hello`)
      await page.fill('#token', d.adminToken)
      const rows = () => page.evaluate(() => document.querySelector('.xterm-rows')?.textContent ?? '')
      // Each round types an expression whose value appears nowhere in the input, so only a live socket shows it.
      const round = async (kind: 'remote' | 'attach', n: number) => {
        await page.check(`input[name=kind][value=${kind}]`)
        await page.click('#go')
        await page.waitForFunction((k) => document.getElementById('status')?.textContent === `connected (${k})`, kind, { timeout: 20_000 })
        if (kind === 'remote') await page.waitForFunction(() => document.querySelector('.xterm-rows')?.textContent?.includes('iex('), null, { timeout: 20_000 })
        else {
          await page.waitForFunction(() => document.querySelector('.xterm-rows')?.textContent?.includes('Ctrl+D'), null, { timeout: 20_000 })
          await page.keyboard.press('Enter')
        }
        await page.keyboard.type(`${n} * 1000 + 7\n`)
        await page.waitForFunction((v) => document.querySelector('.xterm-rows')?.textContent?.includes(v), String(n * 1000 + 7), { timeout: 20_000 })
        assert.equal(await page.textContent('#status'), `connected (${kind})`)
      }
      await round('remote', 1)
      await round('remote', 2)
      await round('attach', 3)
      await round('remote', 4)
      await round('attach', 5)
      assert.ok((await rows()).includes('5007'))
      assert.deepEqual(errors, [])
    } finally {
      await browser.close()
    }
  })

  test('in headless Chromium: authenticate, type 1+41, see 42 (screenshot kept)', async (t) => {
    if (!HAVE_CHROMIUM) return t.skip('chromium not installed')
    const browser = await launchChromium()
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 600 } })
      const errors: string[] = []
      const external: string[] = []
      page.on('pageerror', (e) => errors.push(String(e)))
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
      page.on('request', (r) => !r.url().startsWith(d.url) && !r.url().startsWith(d.url.replace('http', 'ws')) && external.push(r.url()))
      const res = await page.goto(`${d.url}/console/hello`)
      assert.match(res!.headers()['content-security-policy']!, /script-src 'self'/)
      await page.fill('#token', d.adminToken)
      await page.click('#go')
      await page.waitForFunction(() => document.querySelector('.xterm-rows')?.textContent?.includes('iex('), null, { timeout: 20_000 })
      await page.keyboard.type('1+41\n')
      await page.waitForFunction(() => /1\+41.*42/.test(document.querySelector('.xterm-rows')?.textContent ?? ''), null, { timeout: 20_000 })
      assert.equal(await page.evaluate(() => sessionStorage.getItem('berth-token')), d.adminToken)
      assert.ok(!page.url().includes('berth_'), 'the token is not in the URL')
      const dir = path.join(REPO, 'test', '.artifacts')
      fs.mkdirSync(dir, { recursive: true })
      await page.screenshot({ path: path.join(dir, 'console.png') })
      assert.deepEqual(errors, [])
      assert.deepEqual(external, [])
    } finally {
      await browser.close()
    }
  })
})

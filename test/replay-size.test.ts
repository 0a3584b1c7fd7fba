// Session replays in the dashboard at the size the session had: a terminal resized after the session opened
// is recorded as an asciicast "r" event, and the replay must take it, or the output laid out for 132 columns
// wraps at the header's 80.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import type { Browser } from 'playwright-core'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js'
import { until } from './helpers/wait.js'

let d: TestDaemon
let browser: Browser | null = null

before(async () => {
  d = await startDaemon()
  const json = { 'content-type': 'application/json' }
  await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(await freePort()) }) })
  await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })
  const res = await upload(d.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: d.adminToken, query: 'deploy=true' })
  assert.equal(res.body.deployment?.state, 'succeeded', res.text)
})

after(async () => {
  await browser?.close()
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

/** A remote session opened at 80x24 that resizes to 132x40 once its prompt shows, prints a line, and ends. */
async function resizedSession(): Promise<string> {
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/apps/hello/remote`, { headers: { authorization: `Bearer ${d.adminToken}` } })
  let out = ''
  ws.on('message', (m: Buffer, binary: boolean) => void (binary && (out += m.toString())))
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()))
  await new Promise((resolve, reject) => (ws.on('open', resolve), ws.on('error', reject)))
  const seen = async (what: RegExp) => {
    for (const deadline = Date.now() + 30_000; !what.test(out); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > deadline) throw new Error(`no ${what} in: ${out}`)
    }
  }
  await seen(/iex\(/)
  ws.send(JSON.stringify({ type: 'resize', cols: 132, rows: 40 }))
  ws.send(Buffer.from('IO.puts(String.duplicate("w", 100))\n'))
  await seen(/w{100}/)
  ws.close()
  await closed
  // Ended (its recording closed) once the list says it is no longer active.
  const session = await until('the session to end', async () => {
    const s = ((await call(`${d.url}/v1/apps/hello/sessions`, { token: d.adminToken })).body.sessions as { id: string; active: boolean }[])[0]
    return s && !s.active ? s : null
  })
  return session.id
}

test('the dashboard replays a recording at the size recorded in it, resizes included', { skip: !HAVE_CHROMIUM && 'chromium not installed' }, async () => {
  const id = await resizedSession()
  const cast = (await call(`${d.url}/v1/apps/hello/sessions/${id}.cast`, { token: d.adminToken })).text.trim().split('\n').map((l) => JSON.parse(l) as unknown)
  assert.deepEqual([(cast[0] as { width: number }).width, (cast[0] as { height: number }).height], [80, 24], 'opened at 80x24')
  assert.ok(cast.some((e) => Array.isArray(e) && e[1] === 'r' && e[2] === '132x40'), 'the resize is recorded')

  browser = await launchChromium()
  const page = await (await browser.newContext({ viewport: { width: 1600, height: 1200 } })).newPage()
  await page.goto(`${d.url}/`)
  await page.fill('#token', d.adminToken)
  await page.click('#signin-go')
  await page.waitForSelector('#me:not([hidden])', { timeout: 10_000 })
  await page.goto(`${d.url}/#/apps/hello`)
  const replay = page.locator(`#sessions tr[data-session="${id}"] button.replay`)
  await replay.waitFor({ timeout: 15_000 })
  await replay.click()
  await page.waitForFunction(() => document.getElementById('replay-state')?.textContent === 'done', null, { timeout: 20_000 })
  // 40 rows, and the 100 w's on one of them (at 80 columns they wrap onto two).
  const rows = await page.evaluate(() => [...document.querySelectorAll('#replay .xterm-rows > div')].map((r) => r.textContent ?? ''))
  assert.equal(rows.length, 40)
  assert.ok(rows.some((r) => r.includes('w'.repeat(100))), rows.join('\n'))
})

// The operator dashboard in a real headless Chromium against a real berth with real releases: sign-in,
// what each token sees, a rollback from the page that ends with the earlier release serving, live steps,
// live updates and logs, the console opened signed in, recordings; plus the event stream and the API the
// page adds. Every page records errors and every request that would leave berth's origin (none may).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import type { Browser } from 'playwright-core'
import { freePort, processesUnder, startDaemon, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture, REPO } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js'
import { openTab, signIn, type Tab } from './helpers/page.js'

let d: TestDaemon
let port: number
let v1: string
let v2: string
let browser: Browser | null = null
const json = { 'content-type': 'application/json' }
const SECRET = 's3cret-value-never-shown'
const ARTIFACTS = path.join(REPO, 'test', '.artifacts')

before(async () => {
  d = await startDaemon({ BERTH_MAX_SESSIONS_PER_APP: '20' })
  port = await freePort()
  await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port), DASH_SECRET: SECRET }) })
  await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })
  for (const name of ['v1', 'v2'] as const) {
    const res = await upload(d.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken, query: 'deploy=true' })
    assert.equal(res.body.deployment?.state, 'succeeded', res.text)
    if (name === 'v1') v1 = res.body.id
    else v2 = res.body.id
  }
  // A second app, so that app limits have something to hide.
  await call(`${d.url}/v1/apps/other/env`, { method: 'PUT', token: d.adminToken, headers: json, body: '{}' })
  fs.mkdirSync(ARTIFACTS, { recursive: true })
  if (HAVE_CHROMIUM) {
    browser = await launchChromium()
  }
})

after(async () => {
  await browser?.close()
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

async function serves(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/`)).text()
}

/** A fresh browser context (its own sessionStorage) whose pages report errors and off-origin requests. */
function open(opts: { width?: number; height?: number } = {}): Promise<Tab> {
  return openTab(browser!, d.url, opts)
}

function openOn(url: string, opts: { width?: number; height?: number } = {}): Promise<Tab> {
  return openTab(browser!, url, opts)
}

describe('dashboard in headless Chromium', { skip: !HAVE_CHROMIUM && 'chromium not installed' }, () => {
  test('GET / is the page with a strict CSP; sign-in with a bad token fails, a good one shows name, scopes and apps; sign-out forgets it', async () => {
    const tab = await open()
    const { page } = tab
    const res = await page.reload()
    assert.match(res!.headers()['content-security-policy']!, /default-src 'none'; script-src 'self';/)
    await page.fill('#token', 'berth_0123456789abcdef_' + 'A'.repeat(43))
    await page.click('#signin-go')
    await page.waitForFunction(() => /Sign-in failed/.test(document.getElementById('signin-error')?.textContent ?? ''))
    assert.equal(await page.isVisible('#me'), false)
    assert.equal(await page.evaluate(() => sessionStorage.getItem('berth-token')), null)
    assert.equal(await page.locator('.app-card').count(), 0)

    await signIn(page, d.adminToken)
    assert.equal(await page.textContent('#me-name'), 'initial-admin')
    assert.equal(await page.textContent('#me-scopes'), 'admin')
    assert.equal(await page.textContent('#me-apps'), 'every app')
    await page.waitForSelector('.app-card[data-app=hello]')
    // The token is in this tab's sessionStorage and nowhere else a page could leak it from.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('berth-token')), d.adminToken)
    assert.equal(await page.evaluate(() => localStorage.length), 0)
    assert.equal(await page.evaluate(() => document.cookie), '')
    assert.deepEqual(await tab.context.cookies(), [])
    assert.ok(!page.url().includes('berth_'))
    // A reload keeps the tab signed in.
    await page.reload()
    await page.waitForSelector('.app-card[data-app=hello]')
    await page.click('#signout')
    await page.waitForSelector('#signin:not([hidden])')
    assert.equal(await page.evaluate(() => sessionStorage.getItem('berth-token')), null)
    assert.equal(await page.locator('.app-card').count(), 0)
    await tab.close()
  })

  test('the overview shows each app with its current and earlier releases, node and last deployment (laptop and phone width)', async () => {
    const tab = await open()
    const { page } = tab
    await signIn(page, d.adminToken)
    const card = page.locator('.app-card[data-app=hello]')
    await card.waitFor()
    assert.match((await card.locator('.current-release').textContent())!, new RegExp(`0\\.2\\.0 \\(${v2}\\)`))
    assert.match((await card.locator('.earlier-releases').textContent())!, new RegExp(v1))
    assert.match((await card.textContent())!, /running/)
    assert.match((await card.locator('.last-deployment').textContent())!, /deploy of .* succeeded, .* by initial-admin/)
    assert.equal(await page.locator('.app-card[data-app=other]').count(), 1)
    assert.ok((await card.locator('button.action').count()) > 0, 'an admin sees actions')
    assert.doesNotMatch((await page.innerText('#view'))!, /\b(null|undefined|NaN)\b/, 'nothing unrendered shows')
    await page.waitForSelector('#live.live')
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-overview.png') })
    // The README's picture is this screenshot; it is rewritten only when asked, so a test run leaves the tree clean.
    if (process.env.BERTH_UPDATE_SCREENSHOTS === '1') await page.screenshot({ path: path.join(REPO, 'docs', 'dashboard.png') })

    await page.setViewportSize({ width: 390, height: 844 })
    await page.waitForTimeout(100)
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling at phone width')
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true })
    await page.click('.app-card[data-app=hello] h2 a')
    await page.waitForSelector('#releases tr[data-release]')
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the app page fits a phone too')
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-app-phone.png'), fullPage: true })
    await tab.close()
  })

  test('a read-only token sees no action buttons; an app-limited token sees only its app', async () => {
    const reader = d.token('dash-reader', ['read'])
    const tab = await open()
    await signIn(tab.page, reader)
    await tab.page.waitForSelector('.app-card[data-app=hello]')
    assert.equal(await tab.page.textContent('#me-scopes'), 'read')
    assert.equal(await tab.page.locator('button.action').count(), 0)
    await tab.page.click('.app-card[data-app=hello] h2 a')
    await tab.page.waitForSelector('#releases tr[data-release]')
    assert.equal(await tab.page.locator('#view button.action').count(), 0, 'no actions on the app page either')
    assert.match((await tab.page.textContent('#sessions'))!, /console scope/)
    // Revoking the token (as `berth token revoke` does) ends the page's event stream and signs the tab out.
    d.server.services.tokens.revoke('dash-reader')
    await tab.page.waitForSelector('#signin:not([hidden])', { timeout: 5000 })
    assert.match((await tab.page.textContent('#signin-error'))!, /revoked or expired/)
    assert.equal(await tab.page.evaluate(() => sessionStorage.getItem('berth-token')), null)
    await tab.close()

    const limited = d.token('dash-hello-only', ['read', 'operate'], ['hello'])
    const tab2 = await open()
    await signIn(tab2.page, limited)
    await tab2.page.waitForSelector('.app-card[data-app=hello]')
    assert.equal(await tab2.page.textContent('#me-apps'), 'apps: hello')
    assert.deepEqual(await tab2.page.$$eval('.app-card', (els) => els.map((e) => (e as HTMLElement).dataset.app)), ['hello'])
    // operate but not console or deploy: roll back and restart, no console, no deploy.
    const card = tab2.page.locator('.app-card[data-app=hello]')
    assert.equal(await card.locator('button.rollback').count(), 1)
    assert.equal(await card.locator('button.console').count(), 0)
    await tab2.close()
  })

  test('a rollback from the page: migration warnings first, steps appear live, the earlier release serves, the logs follow', async () => {
    assert.equal(await serves(), 'hello 0.2.0\n')
    const tab = await open()
    const { page } = tab
    await signIn(page, d.adminToken)
    await page.goto(`${d.url}/#/apps/hello`)
    await page.waitForSelector('#releases tr[data-release]')
    await page.selectOption('#logs-source', 'berth')
    await page.waitForFunction(() => /deploy succeeded/.test(document.getElementById('logs')?.textContent ?? ''))
    const logsBefore = (await page.textContent('#logs'))!
    assert.ok(!/rollback succeeded/.test(logsBefore))

    await page.click('#status button.rollback')
    await page.waitForSelector('#confirm[open]')
    assert.match((await page.textContent('#confirm-title'))!, /Roll back hello to 0\.1\.0\?/)
    assert.match((await page.textContent('#confirm .plan-warnings'))!, /20240101000000_add_things/)
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-rollback-confirm.png') })
    // Watch every state the progress panel shows, to tell steps shown live from an answer drawn once at the end.
    await page.evaluate(() => {
      const seen: string[] = []
      ;(window as unknown as { seen: string[] }).seen = seen
      new MutationObserver(() => {
        const p = document.getElementById('progress')
        const s = p?.dataset.state
        const running = [...(p?.querySelectorAll('.step.running .step-name') ?? [])].map((e) => e.textContent).join(',')
        const key = `${s}:${running}`
        if (s && seen[seen.length - 1] !== key) seen.push(key)
      }).observe(document.body, { subtree: true, childList: true, attributes: true })
    })
    await page.click('#confirm-ok')
    await page.waitForSelector('#progress[data-state=succeeded]', { timeout: 60_000 })
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen)
    assert.ok(seen.some((s) => /:(switching|starting|verifying)/.test(s)), `a step was shown running: ${seen.join(' ')}`)
    assert.equal(seen[seen.length - 1], 'succeeded:')
    const steps = await page.$$eval('#progress .step', (els) => els.map((e) => `${(e as HTMLElement).dataset.step}=${e.querySelector('.step-state')?.textContent}`))
    assert.deepEqual(steps.filter((s) => !s.startsWith('reverting_migrations')), ['switching=ok', 'starting=ok', 'verifying=ok'])
    // Checked against the app itself, not against berth's word for it.
    assert.equal(await serves(), 'hello 0.1.0\n')
    await page.waitForFunction((id) => document.querySelector('#status .current-release')?.textContent?.includes(id), v1)
    // The followed log got the rollback's lines while the page was open.
    await page.waitForFunction(() => /rollback succeeded by initial-admin/.test(document.getElementById('logs')?.textContent ?? ''), null, { timeout: 10_000 })
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-rollback-done.png'), fullPage: true })

    // The console's own log follows too: a line the node prints shows up without reloading.
    await page.selectOption('#logs-source', 'console')
    await page.waitForFunction(() => (document.getElementById('logs-state')?.textContent ?? '').startsWith('following'))
    await page.waitForTimeout(500)
    const rpc = await call(`${d.url}/v1/apps/hello/rpc`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ expr: 'IO.puts(:user, "dash-" <> "marker")' }) })
    assert.equal(rpc.status, 200, rpc.text)
    await page.waitForFunction(() => /dash-marker/.test(document.getElementById('logs')?.textContent ?? ''), null, { timeout: 10_000 })
    await tab.close()
  })

  test('the overview updates live from the event stream when another client acts', async () => {
    const tab = await open()
    const { page } = tab
    await signIn(page, d.adminToken)
    await page.waitForSelector('#live.live')
    const card = page.locator('.app-card[data-app=hello]')
    await card.waitFor()
    const before = (await card.locator('.current-release').textContent())!
    const target = before.includes(v1) ? v2 : v1
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1))
    const res = await call(`${d.url}/v1/apps/hello/rollback?wait=true`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ to: target }) })
    assert.equal(res.status, 200, res.text)
    // Polling (the fallback) runs every 5 s; the stream brings the change well before that.
    await page.waitForFunction((id) => document.querySelector('.app-card[data-app=hello] .current-release')?.textContent?.includes(id), target, { timeout: 3000 })
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'without a reload')
    await tab.close()
  })

  test('the app page: releases, deployments with steps and output, audit trail, env names without values, settings', async () => {
    const tab = await open()
    const { page } = tab
    await signIn(page, d.adminToken)
    await page.goto(`${d.url}/#/apps/hello`)
    await page.waitForSelector('#releases tr[data-release]')
    const rows = await page.$$eval('#releases tr[data-release]', (els) => els.map((e) => ({ id: (e as HTMLElement).dataset.release, current: e.classList.contains('current'), text: e.textContent })))
    assert.deepEqual(rows.map((r) => r.id).sort(), [v1, v2].sort())
    assert.equal(rows.filter((r) => r.current).length, 1)
    for (const r of rows) assert.match(r.text!, /MiB.*ago.*initial-admin/)
    assert.ok((await page.locator('#deployments li.deployment').count()) >= 3)
    await page.click('#deployments li.deployment:last-child summary')
    const first = (await page.textContent('#deployments li.deployment:last-child'))!
    assert.match(first, /migrating/)
    assert.match(first, /switching/)
    assert.match((await page.textContent('#events'))!, /release\.upload/)
    assert.deepEqual(await page.$$eval('#env .env-names li', (els) => els.map((e) => e.querySelector('code')?.textContent)), ['DASH_SECRET', 'PORT'])
    assert.ok(!(await page.content()).includes(SECRET), 'no env value anywhere on the page')
    assert.match((await page.textContent('#settings'))!, /"stableWindowMs": 300/)

    // Deploying an uploaded release asks first, with its plan (its migration step); cancelling changes nothing.
    const current = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.current
    await page.click('#releases tr:not(.current) button.deploy')
    await page.waitForSelector('#confirm[open]')
    assert.match((await page.textContent('#confirm-title'))!, /^Deploy 0\.[12]\.0-\w+ to hello\?$/)
    assert.match((await page.textContent('#confirm-body'))!, /migrating/)
    await page.click('#confirm-cancel')
    await page.waitForFunction(() => !(document.getElementById('confirm') as HTMLDialogElement).open)
    assert.equal((await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.current, current)
    assert.equal(await page.locator('#progress').count(), 0)

    // Restart from the page: a confirmation, then the operation's steps to the end, the node up again.
    const pid = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node.beamPid
    await page.click('#status button.restart')
    await page.waitForSelector('#confirm[open]')
    await page.click('#confirm-ok')
    await page.waitForSelector('#progress[data-state=succeeded]', { timeout: 60_000 })
    assert.deepEqual(await page.$$eval('#progress .step', (els) => els.map((e) => (e as HTMLElement).dataset.step)), ['stopping', 'starting', 'verifying'])
    const after = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.node
    assert.equal(after.state, 'running')
    assert.notEqual(after.beamPid, pid)
    assert.match(await serves(), /^hello 0\.[12]\.0\n$/)
    await tab.close()
  })

  test('the console opens from the dashboard signed in, and its recording replays on the app page', async () => {
    const tab = await open()
    const { page } = tab
    await signIn(page, d.adminToken)
    await page.goto(`${d.url}/#/apps/hello`)
    await page.waitForSelector('#releases tr[data-release]')
    const [popup] = await Promise.all([tab.context.waitForEvent('page'), page.click('#status button.console')])
    await popup.waitForFunction(() => document.querySelector('.xterm-rows')?.textContent?.includes('iex('), null, { timeout: 30_000 })
    assert.ok(!popup.url().includes('berth_'), 'the token is not in the console URL')
    assert.equal(await popup.evaluate(() => sessionStorage.getItem('berth-token')), d.adminToken)
    await popup.keyboard.type('String.duplicate("ab", 3)\n')
    await popup.waitForFunction(() => document.querySelector('.xterm-rows')?.textContent?.includes('"ababab"'), null, { timeout: 20_000 })
    await popup.screenshot({ path: path.join(ARTIFACTS, 'dashboard-console.png') })
    await popup.close()
    // The session's end is an audit event: the page's sessions table gets the replay button by itself.
    const replay = page.locator('#sessions tr[data-session] button.replay').first()
    await replay.waitFor({ timeout: 15_000 })
    await replay.click()
    await page.waitForFunction(() => document.getElementById('replay-state')?.textContent === 'done', null, { timeout: 20_000 })
    await page.waitForFunction(() => document.querySelector('#replay .xterm-rows')?.textContent?.includes('"ababab"'), null, { timeout: 5000 })
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-replay.png'), fullPage: true })
    await tab.close()
  })

  test('the rollback dialog offers the rollbackExpr only when the app has one; ticked, the plan and the rollback run it', async () => {
    const status = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body
    const target = status.current === v1 ? v2 : v1
    const tab = await open()
    const { page } = tab
    await signIn(page, d.adminToken)
    await page.goto(`${d.url}/#/apps/hello`)
    const button = `#releases tr[data-release="${target}"] button.rollback-to`
    await page.waitForSelector(button)
    await page.click(button)
    // The steps are folded in their <details>: there, not visible.
    await page.waitForSelector('#confirm[open] .plan-step', { state: 'attached' })
    assert.equal(await page.locator('#rollback-revert').count(), 0, 'no box without a rollbackExpr setting')
    await page.click('#confirm-cancel')

    const appData = appDataDir(path.join(d.dataDir, 'hello-data'))
    const env = await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port), DASH_SECRET: SECRET, HELLO_DATA_DIR: appData }) })
    assert.equal(env.status, 200, env.text)
    const expr = 'Hello.Release.rollback("VERSION")'
    const set = await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 300, rollbackExpr: expr }) })
    assert.equal(set.status, 200, set.text)
    const planned = async (runRollbackExpr: boolean) => {
      const res = await call(`${d.url}/v1/apps/hello/rollback?dryRun=true`, { method: 'POST', token: d.adminToken, headers: json, body: JSON.stringify({ to: target, runRollbackExpr }) })
      assert.equal(res.status, 200, res.text)
      return res.body.steps.map((s: { name: string; runs: string; detail: string }) => `${s.name} (${s.runs}): ${s.detail}`)
    }
    const shownSteps = () => page.$$eval('#confirm .plan-step', (els) => els.map((e) => e.textContent))
    try {
      await page.click(button)
      await page.waitForSelector('#confirm[open] #rollback-revert')
      assert.match((await page.textContent('#confirm-body'))!, /Hello\.Release\.rollback\("VERSION"\)/)
      const plain = await planned(false)
      assert.deepEqual(await shownSteps(), plain)
      assert.ok(plain.some((s: string) => s.startsWith('reverting_migrations (skipped)')))
      await page.check('#rollback-revert')
      const reverting = await planned(true)
      assert.notDeepEqual(reverting, plain)
      await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll('#confirm .plan-step')].map((e) => e.textContent)) === want, JSON.stringify(reverting), { timeout: 10_000 })
      assert.ok(!(await page.isDisabled('#confirm-ok')))
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-rollback-expr.png') })
      await page.click('#confirm-ok')
      await page.waitForSelector('#progress[data-state=succeeded]', { timeout: 60_000 })
      const latest = (await call(`${d.url}/v1/apps/hello/deployments`, { token: d.adminToken })).body.deployments[0]
      assert.equal(latest.kind, 'rollback')
      assert.equal(latest.release, target)
      assert.deepEqual(latest.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`), ['reverting_migrations:ok', 'switching:ok', 'starting:ok', 'verifying:ok'])
      const shown = await page.$$eval('#progress .step', (els) => els.map((e) => `${(e as HTMLElement).dataset.step}:${e.querySelector('.step-state')?.textContent}`))
      assert.deepEqual(shown, latest.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`))
      // The expression really ran: the fixture's rollback wrote its line, naming the version gone back to.
      const version = (await serves()).trim().replace(/^hello /, '')
      assert.match(fs.readFileSync(path.join(appData, 'migrations.log'), 'utf8'), new RegExp(`rolled back to ${version.replaceAll('.', '\\.')}`))
      await tab.close()
    } finally {
      await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })
    }
  })
})

describe('the proxy in the dashboard', { skip: !HAVE_CHROMIUM && 'chromium not installed' }, () => {
  test('the card and the app page show the listener, the live instance and a draining one as the API reports them', { timeout: 240_000 }, async () => {
    const p = await startDaemon()
    const ws: WebSocket[] = []
    try {
      const listen = await freePort()
      const put = (what: string, body: unknown) => call(`${p.url}/v1/apps/hello/${what}`, { method: 'PUT', token: p.adminToken, headers: json, body: JSON.stringify(body) })
      assert.equal((await put('env', { PORT: '1' })).status, 200)
      const set = await put('settings', { stableWindowMs: 300, bootTimeoutMs: 30_000, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 45_000 } })
      assert.equal(set.status, 200, set.text)
      const first = await upload(p.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: p.adminToken, query: 'deploy=true' })
      assert.equal(first.body.deployment?.state, 'succeeded', first.text)
      const second = await upload(p.url, 'hello', fs.readFileSync((await fixture('v2')).tarball), { token: p.adminToken })
      assert.ok(second.body.id, second.text)
      const proxy = async () => (await call(`${p.url}/v1/apps/hello`, { token: p.adminToken })).body.proxy
      const instance = (i: { release: string; slot: string; port: number; pid: number }) => `${i.release} · slot ${i.slot} · port ${i.port} · pid ${i.pid}`

      const tab = await openOn(p.url)
      const { page } = tab
      await signIn(page, p.adminToken)
      const card = page.locator('.app-card[data-app=hello]')
      await card.locator('.proxy-live').waitFor()
      const before = await proxy()
      assert.equal(before.state, 'running')
      assert.equal(before.live.release, first.body.id)
      assert.equal(await card.locator('.proxy-listener').textContent(), `${before.listen} running, ${before.restarts} restarts`)
      assert.equal(await card.locator('.proxy-live').textContent(), instance(before.live))
      assert.equal(await card.locator('.proxy-draining').count(), 0)
      assert.equal(await card.locator('.badge.warn').count(), 0)

      // An open websocket keeps the old instance draining for the whole drain time after the switch.
      const socket = new WebSocket(`ws://127.0.0.1:${listen}/ws`)
      ws.push(socket)
      await new Promise((resolve, reject) => (socket.once('message', resolve), socket.once('error', reject)))
      const deploying = await call(`${p.url}/v1/apps/hello/deployments`, { method: 'POST', token: p.adminToken, headers: json, body: JSON.stringify({ release: second.body.id }) })
      assert.equal(deploying.status, 202, deploying.text)
      await until('the old instance to drain', async () => (await proxy())?.draining ? true : null, 90_000)
      await page.goto(`${p.url}/#/apps/hello`)
      await page.waitForSelector('#status .proxy-draining')
      const during = await proxy()
      assert.equal(await page.textContent('#status .proxy-live'), instance(during.live))
      assert.equal(during.live.release, second.body.id)
      const draining = (await page.textContent('#status .proxy-draining'))!
      assert.ok(draining.startsWith(`${instance(during.draining)} · `), draining)
      const left = /· (\d+) s of drain left$/.exec(draining)
      // The page's figure is from its own fetch, a moment before the API's answer here.
      assert.ok(left && Number(left[1]) <= 45 && Number(left[1]) >= Math.floor(during.draining.remainingMs / 1000) - 1, draining)
      assert.doesNotMatch((await page.innerText('#status'))!, /\b(null|undefined|NaN)\b|"listen"/, 'the proxy is not shown as raw JSON')
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-proxy.png'), fullPage: true })
      await tab.close()
      // With the websocket gone the drain ends early and the deployment finishes, so nothing is left mid-step.
      socket.terminate()
      await until('the deploy to finish', async () => (await call(`${p.url}/v1/apps/hello/deployments/${deploying.body.id}`, { token: p.adminToken })).body.state === 'succeeded' || null, 60_000)
    } finally {
      for (const s of ws) s.terminate()
      await p.stop()
      assert.deepEqual(processesUnder(p.dataDir), [], 'no haproxy, BEAM, run_erl or epmd is left')
    }
  })
})

/** Reads a server-sent event stream with a raw socket, so a test can stop reading at will. */
function sse(pathAndQuery: string, token: string): Promise<{ res: http.IncomingMessage; events(): { type: string; data: Record<string, unknown> }[]; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${d.url}${pathAndQuery}`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      const ended = new Promise<void>((r) => res.on('close', () => r()))
      const events = () =>
        text
          .split('\n\n')
          .map((b) => ({ type: /^event: (.*)$/m.exec(b)?.[1], data: /^data: (.*)$/m.exec(b)?.[1] }))
          .filter((e): e is { type: string; data: string } => !!e.type && !!e.data)
          .map((e) => ({ type: e.type, data: JSON.parse(e.data) as Record<string, unknown> }))
      resolve({ res, events, ended })
    })
    req.on('error', reject)
  })
}

describe('the API the dashboard uses', () => {
  test('GET /v1/token shows the token (never its secret); berth whoami prints it', async () => {
    const t = d.token('dash-whoami', ['read', 'deploy'], ['hello'])
    const res = await call(`${d.url}/v1/token`, { token: t })
    assert.equal(res.status, 200)
    assert.deepEqual({ name: res.body.name, scopes: res.body.scopes, apps: res.body.apps }, { name: 'dash-whoami', scopes: ['read', 'deploy'], apps: ['hello'] })
    assert.ok(!res.text.includes(t.split('_')[2]!), 'no secret in the answer')
    assert.equal((await call(`${d.url}/v1/token`)).status, 401)
    const { runCli } = await import('./helpers/daemon.js')
    const cli = await runCli(['whoami', '--url', d.url, '--token', t])
    assert.equal(cli.code, 0, cli.stderr)
    assert.match(cli.stdout, /^dash-whoami\nscopes: +read, deploy\napps: +hello\n/)
  })

  test('berth events --follow prints the events as they happen', async () => {
    const { spawn } = await import('node:child_process')
    const child = spawn(process.execPath, [path.join(REPO, 'bin', 'berth.js'), 'events', '--follow', 'hello', '--json', '--url', d.url, '--token', d.adminToken], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    try {
      // Events recorded before the stream opens are not sent (it is live only): record until one arrives.
      await until('line printed', () => {
        d.server.services.events.record({ app: 'hello', actor: 'test', action: 'settings.update', outcome: 'ok', detail: { marker: 'cli' } })
        return out.includes('"marker":"cli"')
      })
      assert.equal(JSON.parse(out.trim().split('\n')[0]!).action, 'settings.update')
    } finally {
      child.kill()
    }
  })

  test('rollback?dryRun=true answers the plan with the migration warning and changes nothing', async () => {
    const current = (await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.current
    const other = current === v1 ? v2 : v1
    const before = (await call(`${d.url}/v1/apps/hello/deployments`, { token: d.adminToken })).body.deployments.length
    const operator = d.token('dash-operator', ['operate'])
    const res = await call(`${d.url}/v1/apps/hello/rollback?dryRun=true`, { method: 'POST', token: operator, headers: json, body: JSON.stringify({ to: other }) })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.dryRun, true)
    assert.equal(res.body.release, other)
    assert.equal(res.body.migrate.expr, null)
    assert.ok(!res.body.steps.some((s: { name: string }) => s.name === 'migrating'), 'a rollback runs no migration')
    // v2 adds a migration v1 lacks: going back to v1 warns about it, going forward to v2 does not.
    if (other === v1) {
      assert.equal(res.body.migrations.missing.length, 1)
      assert.match(res.body.warnings.join('\n'), /20240101000000_add_things.*A rollback does not undo them/)
    } else assert.deepEqual(res.body.migrations.missing, [])
    const toCurrent = await call(`${d.url}/v1/apps/hello/rollback?dryRun=true`, { method: 'POST', token: operator, headers: json, body: JSON.stringify({ to: current }) })
    assert.deepEqual(toCurrent.body.blockers.map((b: { code: string }) => b.code), ['ROLLBACK_TO_CURRENT'])
    assert.equal((await call(`${d.url}/v1/apps/hello`, { token: d.adminToken })).body.current, current)
    assert.equal((await call(`${d.url}/v1/apps/hello/deployments`, { token: d.adminToken })).body.deployments.length, before)
  })

  test('GET /v1/events streams the audit events of the token\'s apps only', async () => {
    const limited = d.token('dash-sse-hello', ['read'], ['hello'])
    const s = await sse('/v1/events', limited)
    assert.equal(s.res.statusCode, 200)
    assert.match(s.res.headers['content-type']!, /^text\/event-stream/)
    const all = await sse('/v1/events?app=other', d.adminToken)
    d.server.services.events.record({ app: 'other', actor: 'test', action: 'settings.update', outcome: 'ok', detail: { marker: 'o1' } })
    d.server.services.events.record({ app: 'hello', actor: 'test', action: 'settings.update', outcome: 'ok', detail: { marker: 'h1' } })
    await until('hello event', () => s.events().some((e) => e.data.detail && (e.data.detail as { marker?: string }).marker === 'h1'))
    await until('other event', () => all.events().length > 0)
    assert.deepEqual(s.events().map((e) => (e.data.detail as { marker: string }).marker), ['h1'], 'the app-limited token hears nothing of other')
    assert.deepEqual(all.events().map((e) => (e.data.detail as { marker: string }).marker), ['o1'], '?app= keeps one app')
    assert.equal((await call(`${d.url}/v1/events?app=other`, { token: limited })).status, 403)
    s.res.destroy()
    all.res.destroy()
  })

  test('a revoked token ends its event stream; a client that stops reading is dropped, not buffered for', async () => {
    const t = d.token('dash-sse-revoke', ['read'])
    const s = await sse('/v1/events', t)
    const { tokens } = d.server.services
    tokens.revoke('dash-sse-revoke')
    await s.ended
    assert.deepEqual(s.events().at(-1), { type: 'end', data: { reason: 'token revoked' } })

    const slow = await sse('/v1/events', d.adminToken)
    slow.res.pause()
    // ~20 MB of events against a reader that takes none: more than the socket buffers and the 1 MiB limit.
    const detail = { filler: 'x'.repeat(4000) }
    let sent = 0
    for (; sent < 5000; sent++) d.server.services.events.record({ app: 'hello', actor: 'test', action: 'settings.update', outcome: 'ok', detail })
    slow.res.resume()
    await slow.ended
    const got = slow.events()
    assert.equal(got.at(-1)?.type, 'overflow')
    assert.ok(got.length < sent, `the slow client got ${got.length} of ${sent}`)
  })

  test('closing berth ends open event streams at once instead of waiting for them', async () => {
    const small = await startDaemon({ BERTH_SHUTDOWN_GRACE_MS: '30000' })
    let stopped = false
    try {
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${small.url}/v1/events`, { headers: { authorization: `Bearer ${small.adminToken}` } }, resolve).on('error', reject))
      let text = ''
      res.on('data', (c: Buffer) => (text += c))
      const closed = new Promise<void>((r) => res.on('close', () => r()))
      const t0 = Date.now()
      await small.stop()
      stopped = true
      await closed
      assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`)
      assert.match(text, /event: end\ndata: \{"reason":"berth is shutting down"\}/)
    } finally {
      if (!stopped) await small.stop()
    }
  })
})

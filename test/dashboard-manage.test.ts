// The dashboard as a place to manage apps, in a real headless Chromium against a real berth: a release
// uploaded through the file input with its progress and deployed, env names set and unset (values never on
// the page), settings edited with berth's refusals shown by code, the public address, XSS attempts through
// what the page shows, scopes, and a slow-booting rollback behind the proxy during which the card says
// which release serves.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Route } from 'playwright-core'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture, REPO } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { HAVE_CHROMIUM, launchChromium } from './helpers/browser.js'
import { openTab, signIn } from './helpers/page.js'
import { until } from './helpers/wait.js'

let d: TestDaemon
let port: number
let browser: Browser | null = null
const json = { 'content-type': 'application/json' }
const ARTIFACTS = path.join(REPO, 'test', '.artifacts')

before(async () => {
  d = await startDaemon()
  port = await freePort()
  // The app exists (its env creates it) but has no release: the first one comes from the browser.
  await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port) }) })
  await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })
  fs.mkdirSync(ARTIFACTS, { recursive: true })
  if (HAVE_CHROMIUM) browser = await launchChromium()
})

after(async () => {
  await browser?.close()
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

const settingsOf = async (base = d.url, token = d.adminToken) => (await call(`${base}/v1/apps/hello/settings`, { token })).body
const envNames = async () => (await call(`${d.url}/v1/apps/hello/env`, { token: d.adminToken })).body.names as string[]

async function appPage(token = d.adminToken, expected: number[] = []) {
  const tab = await openTab(browser!, d.url, { expected })
  await signIn(tab.page, token)
  await tab.page.goto(`${d.url}/#/apps/hello`)
  await tab.page.waitForSelector('#settings-form')
  return tab
}

describe('managing from the dashboard', { skip: !HAVE_CHROMIUM && 'chromium not installed' }, () => {
  test('a release uploaded through the file input: the progress bar reaches 100%, the release is listed, deployed, and the app serves it', async () => {
    const tab = await appPage()
    const { page } = tab
    // A throttled upload (4 MB/s for the ~5 MB tarball) shows the bar moving, not only its end.
    const cdp = await tab.context.newCDPSession(page)
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 4 * 1024 * 1024 })
    await page.evaluate(() => {
      const seen: number[] = []
      ;(window as unknown as { pcts: number[] }).pcts = seen
      new MutationObserver(() => {
        const pct = Number(document.getElementById('upload-progress')?.dataset.pct)
        if (!Number.isNaN(pct) && seen[seen.length - 1] !== pct) seen.push(pct)
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-pct'] })
    })
    const v1 = await fixture('v1')
    await page.setInputFiles('#upload-file', v1.tarball)
    await page.check('#upload-deploy')
    await page.click('#upload-go')
    await page.waitForSelector('#upload-progress[data-pct="100"]', { timeout: 60_000 })
    const id = await until('the release', async () => (await call(`${d.url}/v1/apps/hello/releases`, { token: d.adminToken })).body.releases[0]?.id, 60_000)
    await page.waitForSelector(`#releases tr[data-release="${id}"]`, { timeout: 30_000 })
    assert.match((await page.textContent('#upload-state'))!, new RegExp(`^Uploaded 0\\.1\\.0 \\(${id}\\)\\.$`))
    const pcts = await page.evaluate(() => (window as unknown as { pcts: number[] }).pcts)
    assert.equal(pcts.at(-1), 100)
    assert.ok(pcts.some((p) => p > 0 && p < 100), `the bar moved through the upload: ${pcts.join(' ')}`)
    // Deploy right after: the deployment's steps show on the page, and the app itself answers.
    await page.waitForSelector('#progress[data-state=succeeded]', { timeout: 90_000 })
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.1.0\n')
    const release = (await call(`${d.url}/v1/apps/hello/releases/${id}`, { token: d.adminToken })).body
    assert.equal(release.sha256, (await import('node:crypto')).createHash('sha256').update(fs.readFileSync(v1.tarball)).digest('hex'), 'the bytes arrived whole')
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-upload.png'), fullPage: true })
    await tab.close()
  })

  test('env: a name set through the page is listed by the API and its value is nowhere on the page; unset removes it', async () => {
    const secret = 'dash-manage-secret-value-81f3'
    const tab = await appPage()
    const { page } = tab
    await page.fill('#env-name', 'DASH_NEW')
    await page.fill('#env-value', secret)
    await page.click('#env-set-go')
    await page.waitForSelector('#env .env-names li[data-name=DASH_NEW]')
    assert.match((await page.textContent('#env-result'))!, /^DASH_NEW set; it takes effect at the next start or restart\.$/)
    assert.deepEqual(await envNames(), ['DASH_NEW', 'PORT'])
    assert.equal(d.server.services.apps.env('hello').DASH_NEW, secret, 'the value reached berth')
    const inputs = await page.evaluate(() => [...document.querySelectorAll('input')].map((i) => i.value))
    assert.ok(!inputs.some((v) => v.includes(secret)), 'no field keeps the value')
    assert.ok(!(await page.content()).includes(secret), 'the value is nowhere in the DOM')
    assert.ok(!(await call(`${d.url}/v1/apps/hello/env`, { token: d.adminToken })).text.includes(secret), 'GET env gives names only')

    // A name already set is replaced, and the button says so before it is pressed.
    await page.fill('#env-name', 'DASH_NEW')
    assert.equal(await page.textContent('#env-set-go'), 'Replace')
    await page.fill('#env-value', `${secret}-2`)
    await page.click('#env-set-go')
    await page.waitForFunction(() => /^DASH_NEW replaced/.test(document.getElementById('env-result')?.textContent ?? ''))
    assert.equal(d.server.services.apps.env('hello').DASH_NEW, `${secret}-2`)

    await page.click('#env li[data-name=DASH_NEW] button.env-unset')
    await page.waitForSelector('#confirm[open]')
    assert.equal(await page.textContent('#confirm-title'), 'Unset DASH_NEW on hello?')
    await page.click('#confirm-ok')
    await page.waitForSelector('#env .env-names li[data-name=DASH_NEW]', { state: 'detached' })
    assert.match((await page.textContent('#env-result'))!, /^DASH_NEW unset/)
    assert.deepEqual(await envNames(), ['PORT'])
    assert.ok(!(await page.content()).includes(secret))
    await tab.close()
  })

  test('settings: edits are saved with PUT and persisted; a refused value shows the API\'s code and marks its field', async () => {
    const tab = await appPage(d.adminToken, [400])
    const { page } = tab
    await page.fill('#set-stableWindowMs', '450')
    await page.fill('#set-restart-maxRestarts', '4')
    await page.click('#settings-save')
    await page.waitForSelector('#settings-result')
    assert.equal(await page.textContent('#settings-result'), 'Saved: stableWindowMs, restart.maxRestarts.')
    const saved = await settingsOf()
    assert.equal(saved.stableWindowMs, 450)
    assert.equal(saved.restart.maxRestarts, 4)
    assert.equal(saved.restart.windowMs, 5 * 60_000, 'the rest of the group kept its value')
    // A reload reads them back from berth.
    await page.reload()
    await page.waitForSelector('#settings-form')
    assert.equal(await page.inputValue('#set-stableWindowMs'), '450')

    const refused = async (selector: string, value: string, code: RegExp) => {
      await page.fill(selector, value)
      await page.click('#settings-save')
      await page.waitForFunction(() => (document.getElementById('settings-error')?.textContent ?? '') !== '')
      assert.match((await page.textContent('#settings-error'))!, code)
      assert.equal(await page.getAttribute(selector, 'aria-invalid'), 'true', `${selector} is marked`)
      if (selector === '#set-proxy-listen') await page.locator('#settings').screenshot({ path: '/tmp/dashboard-settings-error.png' })
      await page.click('#settings button:has-text("Discard changes")')
    }
    await refused('#set-healthUrl', 'http://example.com/health', /^VALIDATION_FAILED: Setting healthUrl must be an http:\/\/ URL on the loopback interface/)
    await refused('#set-publicUrl', 'javascript:alert(1)', /^VALIDATION_FAILED: Setting publicUrl must be an http:\/\/ or https:\/\/ URL/)
    await page.check('#set-proxy-on')
    await refused('#set-proxy-listen', 'nowhere', /^PROXY_SETTING_INVALID: Setting proxy\.listen must be IPV4:PORT/)
    const after = await settingsOf()
    assert.equal(after.healthUrl, null)
    assert.equal(after.publicUrl, null)
    assert.equal(after.proxy, null)

    // The public address: unknown without publicUrl or the proxy; the setting's URL once it is set.
    assert.match((await page.textContent('#status'))!, /public address\s*unknown: set publicUrl/)
    await page.fill('#set-publicUrl', 'https://hello.example.test/shop')
    await page.click('#settings-save')
    await page.waitForSelector('#status a.public-url')
    assert.equal(await page.getAttribute('#status a.public-url', 'href'), 'https://hello.example.test/shop')
    assert.equal((await settingsOf()).publicUrl, 'https://hello.example.test/shop')
    await page.goto(`${d.url}/#/`)
    assert.equal(await page.getAttribute('.app-card[data-app=hello] a.public-url', 'href'), 'https://hello.example.test/shop')
    await page.screenshot({ path: '/tmp/dashboard-overview-manage.png' })
    // An emptied field is null again.
    await page.goto(`${d.url}/#/apps/hello`)
    await page.waitForSelector('#settings-form')
    await page.fill('#set-publicUrl', '')
    await page.click('#settings-save')
    await page.waitForSelector('#settings-result')
    assert.equal((await settingsOf()).publicUrl, null)
    await tab.close()
  })

  test('XSS through a setting value, the public URL or an env name is shown as text and never runs', async () => {
    const expr = '"><img src=x id=xss1 onerror="window.__xss=1"><script>window.__xss=2</script>'
    const url = 'https://x.test/"><img/id=xss3/src=x/onerror=window.__xss=3>'
    const set = await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ rollbackExpr: expr, publicUrl: url }) })
    assert.equal(set.status, 200, set.text)
    try {
      const tab = await appPage(d.adminToken, [400])
      const { page } = tab
      assert.equal(await page.inputValue('#set-rollbackExpr'), expr)
      assert.ok((await page.textContent('#settings pre'))!.includes(JSON.stringify(expr)), 'shown as text (in JSON)')
      assert.equal(await page.textContent('#status a.public-url'), url)
      // The page's own pattern check is what a hostile client skips: the API's refusal is shown, as text.
      await page.evaluate(() => document.getElementById('env-name')!.removeAttribute('pattern'))
      await page.fill('#env-name', '<img src=x id=xss4 onerror=window.__xss=4>')
      await page.fill('#env-value', 'x')
      await page.click('#env-set-go')
      await page.waitForFunction(() => /VALIDATION_FAILED/.test(document.getElementById('env-error')?.textContent ?? ''))
      // Shown as text; the API prints a refused name's spaces and other non-graphic characters as '?' (D14).
      assert.match((await page.textContent('#env-error'))!, /<img\?src=x\?id=xss4/)
      await page.goto(`${d.url}/#/`)
      await page.waitForSelector('.app-card[data-app=hello] .public-url')
      await page.goto(`${d.url}/#/apps/hello`)
      await page.waitForSelector('#settings-form')
      assert.equal(await page.evaluate(() => document.querySelectorAll('#xss1, #xss3, #xss4, img[src=x], #view script').length), 0, 'no element was made from the text')
      assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined)
      await tab.close()
    } finally {
      await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ rollbackExpr: null, publicUrl: null }) })
    }
  })

  test('scopes: read sees names and settings without forms; deploy may upload but not manage; the API refuses anyway', async () => {
    const reader = d.token('manage-reader', ['read'])
    const tab = await appPage(reader)
    const { page } = tab
    assert.equal(await page.locator('#env-set, .env-unset, #settings-save, #upload').count(), 0)
    assert.notEqual(await page.getAttribute('#settings fieldset', 'disabled'), null)
    assert.equal(await page.isDisabled('#set-stableWindowMs'), true, 'fields in a disabled fieldset')
    assert.match((await page.textContent('#settings'))!, /Changing settings needs the admin scope/)
    assert.match((await page.textContent('#env'))!, /Setting variables needs the admin scope/)
    await tab.close()

    const deployer = d.token('manage-deployer', ['read', 'deploy'])
    const tab2 = await appPage(deployer)
    assert.equal(await tab2.page.locator('#upload-file').count(), 1)
    assert.equal(await tab2.page.locator('#env-set, .env-unset, #settings-save').count(), 0)
    await tab2.close()
    const refused = await call(`${d.url}/v1/apps/hello/env`, { method: 'PATCH', token: deployer, headers: json, body: JSON.stringify({ set: { X: '1' } }) })
    assert.equal(refused.status, 403)
  })
})

describe('the shared edge, in the dashboard', { skip: !HAVE_CHROMIUM && 'chromium not installed' }, () => {
  test('the edge fields of the settings form; hostnames, pause (with Retry-After) and resume, and certificates on the app page', async () => {
    // This berth runs no edge, so its answers about one are refused (409) and its certificates route is not
    // there (404): both are shown. The app view's edge part and a pause that works are then answered by the
    // test, in the shape openapi.yaml gives them.
    const tab = await appPage(d.adminToken, [404, 409])
    const { page } = tab
    try {
      await page.check('#set-proxy-on')
      await page.fill('#set-proxy-hosts', 'Hello.Example.test,  www.hello.example.test')
      await page.selectOption('#set-proxy-tls', 'custom')
      await page.fill('#set-proxy-hstsMaxAge', '300')
      assert.equal(await page.inputValue('#set-proxy-listen'), '', 'listen may stay empty (null) with hosts')
      await page.click('#settings-save')
      await page.waitForSelector('#settings-result')
      const proxy = (await settingsOf()).proxy
      assert.deepEqual([proxy.listen, proxy.hosts, proxy.tls, proxy.hstsMaxAge, proxy.httpsRedirect, proxy.maxBodyBytes], [null, ['hello.example.test', 'www.hello.example.test'], 'custom', 300, null, null])
      assert.equal(await page.inputValue('#set-proxy-hosts'), 'hello.example.test, www.hello.example.test')
      assert.equal(await page.inputValue('#set-proxy-httpsRedirect'), '', 'null shows as berth\'s default')

      let paused: number | null = null
      const pauses: unknown[] = []
      const edge = () => ({ hosts: proxy.hosts, urls: proxy.hosts.map((h: string) => `https://${h}/`), tls: 'custom', routed: true, paused: paused !== null, retryAfterSeconds: paused })
      const withEdge = async (route: Route) => {
        const res = await route.fetch()
        return route.fulfill({ response: res, json: { ...(await res.json()), edge: edge() } })
      }
      await page.route(/\/v1\/apps\/hello$/, withEdge)
      await page.reload()
      await page.waitForSelector('#edge[data-paused=false]')
      assert.deepEqual(await page.locator('#edge a.edge-host').evaluateAll((as) => as.map((a) => a.getAttribute('href'))), ['https://hello.example.test/', 'https://www.hello.example.test/'])
      // berth's certificates route lists each hostname; none has a certificate yet.
      const certs = await page.locator('#edge .edge-certs tr').evaluateAll((rows) => rows.map((r) => r.textContent))
      assert.ok(certs.some((t) => /^hello\.example\.testcustommissing/.test(t ?? '')), JSON.stringify(certs))
      assert.equal(await page.getAttribute('#status a.public-url', 'href'), 'https://hello.example.test/', 'users reach it at its first hostname')

      // Through berth itself: it has no edge to pause, and says so.
      await page.click('#edge button.pause')
      await page.click('#confirm-ok')
      await page.waitForSelector('#notice:not([hidden])')
      assert.match((await page.textContent('#notice'))!, /^EDGE_NOT_CONFIGURED: /)

      await page.route(/\/v1\/apps\/hello\/(pause|resume)$/, async (route) => {
        const body = route.request().postDataJSON() as { retryAfterSeconds?: number } | null
        pauses.push(body)
        paused = route.request().url().endsWith('/pause') ? body?.retryAfterSeconds ?? 60 : null
        return route.fulfill({ json: { app: 'hello', paused: paused !== null, retryAfterSeconds: paused } })
      })
      await page.route(/\/v1\/apps\/hello\/certificates$/, (route) => route.fulfill({ json: { certificates: [
        { host: 'www.hello.example.test', source: 'custom', state: 'valid', notAfter: new Date(Date.now() + 3 * 86_400_000).toISOString(), notBefore: null, issuer: 'Test CA', lastError: null },
        { host: 'hello.example.test', source: 'custom', state: 'valid', notAfter: new Date(Date.now() + 60 * 86_400_000).toISOString(), notBefore: null, issuer: 'Test CA', lastError: null },
      ] } }))
      await page.click('#edge button.pause')
      assert.equal(await page.textContent('#confirm-title'), 'Pause hello?')
      await page.fill('#pause-retry-after', '120')
      await page.click('#confirm-ok')
      await page.waitForSelector('#edge[data-paused=true]')
      assert.match((await page.textContent('#edge .edge-state'))!, /^paused: the edge answers 503 with Retry-After 120 s/)
      assert.match((await page.textContent('#view h1'))!, /paused/, 'the warning badge')
      assert.deepEqual(await page.locator('#edge .edge-certs tbody tr').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-host'), r.className])), [['hello.example.test', ''], ['www.hello.example.test', 'bad']])
      await page.click('#edge button.resume')
      await page.click('#confirm-ok')
      await page.waitForSelector('#edge[data-paused=false]')
      assert.deepEqual(pauses, [{ retryAfterSeconds: 120 }, null])
      await page.locator('#edge').screenshot({ path: path.join(ARTIFACTS, 'dashboard-edge.png') })

      // A read-only token sees the hostnames and state, and no button.
      const reader = await appPage(d.token('edge-reader', ['read']), [404])
      await reader.page.route(/\/v1\/apps\/hello$/, withEdge)
      await reader.page.reload()
      await reader.page.waitForSelector('#edge')
      assert.equal(await reader.page.locator('#edge button').count(), 0)
      await reader.close()
      await tab.close()
    } finally {
      await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ proxy: null }) })
    }
  })
})

describe('serving now, in the dashboard', { skip: !HAVE_CHROMIUM && 'chromium not installed' }, () => {
  test('during a slow-booting rollback behind the proxy the card shows the release still serving, then the new one', { timeout: 240_000 }, async () => {
    const p = await startDaemon()
    try {
      const listen = await freePort()
      const put = (what: string, body: unknown, method = 'PUT') => call(`${p.url}/v1/apps/hello/${what}`, { method, token: p.adminToken, headers: json, body: JSON.stringify(body) })
      assert.equal((await put('env', { PORT: '1' })).status, 200)
      const set = await put('settings', { stableWindowMs: 300, bootTimeoutMs: 60_000, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 1000 } })
      assert.equal(set.status, 200, set.text)
      const ids: string[] = []
      for (const name of ['v1', 'v2'] as const) {
        const res = await upload(p.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token: p.adminToken, query: 'deploy=true' })
        assert.equal(res.body.deployment?.state, 'succeeded', res.text)
        ids.push(res.body.id)
      }
      const [v1, v2] = ids as [string, string]
      const serves = async () => (await fetch(`http://127.0.0.1:${listen}/`)).text()
      assert.equal(await serves(), 'hello 0.2.0\n')
      // The next instance sleeps 8 s in Application.start before it answers its health path.
      assert.equal((await put('env', { set: { HELLO_BOOT_DELAY_MS: '8000' } }, 'PATCH')).status, 200)

      const overview = await openTab(browser!, p.url)
      await signIn(overview.page, p.adminToken)
      const card = overview.page.locator('.app-card[data-app=hello]')
      await card.locator('.serving-now').waitFor()
      assert.equal(await card.locator('.serving-now').textContent(), `0.2.0 (${v2}) · slot ${(await call(`${p.url}/v1/apps/hello`, { token: p.adminToken })).body.proxy.live.slot}`)
      assert.equal(await card.locator('a.public-url').getAttribute('href'), `http://127.0.0.1:${listen}/`)

      const actor = await openTab(browser!, p.url)
      await signIn(actor.page, p.adminToken)
      await actor.page.goto(`${p.url}/#/apps/hello`)
      await actor.page.waitForSelector('#status button.rollback')
      await actor.page.click('#status button.rollback')
      await actor.page.waitForSelector('#confirm[open]')
      await actor.page.click('#confirm-ok')

      // While the new instance boots, the old one serves: the card says so, as the API and the app do.
      await overview.page.waitForFunction((target) => {
        const t = document.querySelector('.app-card[data-app=hello] .serving-now')?.textContent ?? ''
        return t.includes('rollback to') && t.includes(target)
      }, v1, { timeout: 30_000 })
      const shown = (await card.locator('.serving-now').textContent())!
      const during = (await call(`${p.url}/v1/apps/hello`, { token: p.adminToken })).body
      assert.equal(during.proxy.live.release, v2)
      assert.equal(during.lastDeployment.finishedAt, null, 'the rollback is still running')
      assert.match(shown, new RegExp(`^0\\.2\\.0 \\(${v2}\\) · slot ${during.proxy.live.slot} \\(rollback to ${v1}: (pending|switching|starting|verifying)\\)$`))
      assert.equal(await serves(), 'hello 0.2.0\n')
      await overview.page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-serving-now.png') })
      await overview.page.screenshot({ path: '/tmp/dashboard-serving-now.png' })
      assert.match((await actor.page.textContent('#status .serving-now'))!, new RegExp(`^0\\.2\\.0 \\(${v2}\\)`))

      // Once the new instance is verified it takes traffic, and when the rollback is done the card says only
      // that, without a reload.
      await overview.page.waitForFunction((id) => /^0\.1\.0 \(([^)]+)\) · slot [ab]$/.exec(document.querySelector('.app-card[data-app=hello] .serving-now')?.textContent ?? '')?.[1] === id, v1, { timeout: 90_000 })
      assert.equal(await serves(), 'hello 0.1.0\n')
      await actor.page.waitForSelector('#progress[data-state=succeeded]', { timeout: 60_000 })
      await overview.close()
      await actor.close()
    } finally {
      await p.stop()
      assert.deepEqual(processesUnder(p.dataDir), [], 'no haproxy, BEAM, run_erl or epmd is left')
    }
  })
})

describe('what the managing page relies on', () => {
  test('the publicUrl setting takes http(s) URLs only, without credentials, and null', async () => {
    const put = (publicUrl: unknown) => call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ publicUrl }) })
    for (const bad of ['javascript:alert(1)', 'data:text/html,x', 'ftp://x.test/', 'https://user:pw@x.test/', 'https://x.test/\nSet-Cookie: a', 'not a url', 'https://x.test/\u0000', 42, `https://x.test/${'a'.repeat(2000)}`]) {
      const res = await put(bad)
      assert.equal(res.status, 400, `${JSON.stringify(bad)}: ${res.text}`)
      assert.equal(res.body.code, 'VALIDATION_FAILED')
      assert.equal(res.body.field, 'publicUrl')
    }
    for (const good of ['https://shop.example.com/', 'http://10.0.0.5:8080/app?x=1', null]) {
      const res = await put(good)
      assert.equal(res.status, 200, res.text)
      assert.equal(res.body.publicUrl, good)
    }
  })

  test('every module the dashboard imports is served, as JavaScript, under the page\'s CSP', async () => {
    const seen = new Set<string>()
    const queue = ['dashboard.js']
    while (queue.length) {
      const name = queue.shift()!
      if (seen.has(name)) continue
      seen.add(name)
      const res = await fetch(`${d.url}/assets/${name}`)
      assert.equal(res.status, 200, name)
      assert.match(res.headers.get('content-type')!, /^text\/javascript/, name)
      const text = await res.text()
      // esbuild writes double quotes; an import of a package (a bare name) could not load in the browser at all.
      assert.doesNotMatch(text, /^import .* from ["'][^./]/m, name)
      for (const m of text.matchAll(/^import .* from ["']\.\/([\w.-]+)["'];?$/gm)) queue.push(m[1]!)
    }
    // The size rule for the page's modules (src/web, bundled into what /assets serves): new features go into
    // modules of their own.
    const web = path.join(REPO, 'src', 'web')
    for (const f of fs.readdirSync(web).filter((f) => f.endsWith('.ts'))) assert.ok(fs.readFileSync(path.join(web, f), 'utf8').split('\n').length <= 450, f)
  })
})

// Findings of the outside attack on berth's inputs (issue 23 §7, D1 validation, D7, D14, D15), each as the
// attack made it, against a real berth on a real port: URLs aimed at berth's own listener, a health URL that
// redirects, NUL bytes and newlines where they cannot go, and an environment too large to start a node with.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { after, test } from 'node:test'
import { freePort, processesUnder, runCli, startDaemon, type TestDaemon, appDataDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

const daemons: TestDaemon[] = []
const servers: http.Server[] = []

after(async () => {
  for (const s of servers) {
    s.closeAllConnections()
    s.close()
  }
  for (const d of daemons) {
    const dir = d.dataDir
    await d.stop()
    assert.deepEqual(processesUnder(dir), [], 'no BEAM, epmd or run_erl is left behind')
  }
})

function api(d: TestDaemon, method: string, pathname: string, body?: unknown) {
  return call(`${d.url}${pathname}`, { method, token: d.adminToken, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
}

async function listen(handler: http.RequestListener): Promise<number> {
  const s = http.createServer(handler)
  servers.push(s)
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  return (s.address() as AddressInfo).port
}

test("D1: a healthUrl or webhook on berth's own listener is refused with TARGET_IS_BERTH, in every spelling", async () => {
  // Private targets allowed (BERTH_WEBHOOK_ALLOW_PRIVATE), so that a loopback hook on another port is accepted:
  // berth's own listener is refused all the same.
  const d = await startDaemon({ BERTH_WEBHOOK_ALLOW_PRIVATE: '1' })
  daemons.push(d)
  const port = Number(new URL(d.url).port)
  assert.equal((await api(d, 'PUT', '/v1/apps/hello/env', {})).status, 200)
  for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
    const res = await api(d, 'PUT', '/v1/apps/hello/settings', { healthUrl: `http://${host}:${port}/v1/apps` })
    assert.equal(res.status, 400, `${host}: ${res.text}`)
    assert.equal(res.body.code, 'TARGET_IS_BERTH')
    assert.equal(res.body.field, 'healthUrl')
  }
  assert.equal((await api(d, 'GET', '/v1/apps/hello/settings')).body.healthUrl, null)
  // Another port on loopback is the app's business.
  assert.equal((await api(d, 'PUT', '/v1/apps/hello/settings', { healthUrl: `http://127.0.0.1:${await freePort()}/health` })).status, 200)

  for (const url of [`http://127.0.0.1:${port}/v1/apps`, `http://localhost:${port}/`, `http://[::1]:${port}/`, `http://0.0.0.0:${port}/`, `https://127.0.0.1:${port}/`, `http://127.1:${port}/`, `http://2130706433:${port}/`, `http://[::ffff:127.0.0.1]:${port}/`, `http://berth.localhost:${port}/`]) {
    const res = await api(d, 'POST', '/v1/webhooks', { url })
    assert.equal(res.status, 400, `${url}: ${res.text}`)
    assert.equal(res.body.code, 'TARGET_IS_BERTH', url)
  }
  assert.deepEqual((await api(d, 'GET', '/v1/webhooks')).body.webhooks, [], 'none was stored')
  assert.equal((await api(d, 'POST', '/v1/webhooks', { url: `http://127.0.0.1:${await freePort()}/hook` })).status, 201)
})

test('D14: NUL bytes and newlines are refused at validation (400), and nothing of the value is logged', async () => {
  const d = await startDaemon({}, { keepLogs: true })
  daemons.push(d)
  assert.equal((await api(d, 'PUT', '/v1/apps/hello/env', {})).status, 200)
  const marker = 'Secret' + 'Marker42'
  const cases: [Record<string, unknown>, string][] = [
    [{ migrateExpr: `Hello.Release.migrate(${marker})\0` }, 'migrateExpr'],
    [{ rollbackExpr: `\0${marker}` }, 'rollbackExpr'],
    [{ healthUrl: `http://127.0.0.1:4000/health\n${marker}` }, 'healthUrl'],
    [{ healthUrl: `http://127.0.0.1:4000/health\0${marker}` }, 'healthUrl'],
    [{ healthUrl: `http://127.0.0.1:4000/he\talth${marker}` }, 'healthUrl'],
  ]
  for (const [patch, field] of cases) {
    const res = await api(d, 'PUT', '/v1/apps/hello/settings', patch)
    assert.equal(res.status, 400, `${JSON.stringify(patch)}: ${res.text}`)
    assert.equal(res.body.code, 'VALIDATION_FAILED')
    assert.match(res.body.detail, new RegExp(field))
    assert.doesNotMatch(res.text, new RegExp(marker), 'the answer does not echo the value')
  }
  const settings = (await api(d, 'GET', '/v1/apps/hello/settings')).body
  assert.equal(settings.migrateExpr, null, 'nothing was stored')
  assert.equal(settings.healthUrl, null)
  // Multi-line expressions are fine: Elixir takes them, and so does an argv.
  assert.equal((await api(d, 'PUT', '/v1/apps/hello/settings', { migrateExpr: 'Hello.Release.migrate()\n:ok' })).status, 200)

  for (const body of [{ [`A${marker}`]: 'x\0y' }, { A: `${marker}\0` }]) {
    const res = await api(d, 'PUT', '/v1/apps/hello/env', body)
    assert.equal(res.status, 400, res.text)
    assert.equal(res.body.code, 'VALIDATION_FAILED')
    assert.match(res.body.detail, /NUL/)
    assert.doesNotMatch(res.text, new RegExp(`${marker}\\\\u0000|x\\\\u0000y`), 'the value is not echoed')
  }
  // A newline is a valid env value (a PEM key): exec passes it as it is.
  assert.equal((await api(d, 'PATCH', '/v1/apps/hello/env', { set: { PEM: '-----BEGIN-----\nAAAA\n-----END-----\n' } })).status, 200)

  // Webhook URLs: the URL parser would silently drop a newline or tab; refused instead.
  for (const url of [`http://127.0.0.1:9/a\n${marker}`, `http://127.0.0.1:9/a\t${marker}`]) {
    const res = await api(d, 'POST', '/v1/webhooks', { url })
    assert.equal(res.status, 400, res.text)
    assert.equal(res.body.code, 'VALIDATION_FAILED')
  }
  // rpc: a NUL is refused before anything runs (it used to reach spawn: 500, the expression in berth's log).
  const rpc = await api(d, 'POST', '/v1/apps/hello/rpc', { expr: `IO.puts("${marker}")\0` })
  assert.equal(rpc.status, 400, rpc.text)
  assert.equal(rpc.body.code, 'VALIDATION_FAILED')
  assert.equal(rpc.body.field, 'expr')
  assert.doesNotMatch(d.logs(), new RegExp(marker), "no value from a refused body is in berth's log")
})

test('D15: the environment is checked against the exec limit when it is set (PATCH, PUT and berth env set)', async () => {
  const d = await startDaemon()
  daemons.push(d)
  // The attack: 2.7 MB in three PATCHes of 900 kB, each under the 1 MiB body limit. All three were accepted,
  // then every start failed with `spawn E2BIG`.
  const chunk = (n: number) => Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`BIG_${n}_${i}`, 'x'.repeat(60_000)]))
  const answers = []
  for (let n = 0; n < 3; n++) answers.push(await api(d, 'PATCH', '/v1/apps/hello/env', { set: chunk(n) }))
  assert.equal(answers[0]!.status, 200, answers[0]!.text)
  const refused = answers.find((a) => a.status !== 200)
  assert.ok(refused, `the environment grew to ${answers.filter((a) => a.status === 200).length * 900} kB unchecked`)
  assert.equal(refused.status, 413, refused.text)
  assert.equal(refused.body.code, 'ENV_TOO_LARGE')
  const { size, limit } = refused.body as { size: number; limit: number }
  assert.ok(size > limit && limit >= 64 * 1024, refused.text)
  assert.match(refused.body.detail, new RegExp(`${size} bytes.*${limit}`))
  const names = (await api(d, 'GET', '/v1/apps/hello/env')).body.names as string[]
  assert.ok(names.length * 60_000 <= limit, 'what is stored stays within the limit')

  // One value over what a single variable can hold at exec (128 KiB), counted in bytes: 60,000 "€" are 180 kB.
  const euro = await api(d, 'PUT', '/v1/apps/hello/env', { CERT: '€'.repeat(60_000) })
  assert.equal(euro.status, 413, euro.text)
  assert.equal(euro.body.code, 'ENV_TOO_LARGE')
  assert.equal(euro.body.field, 'CERT')

  // The CLI says the same: its `env set --from-file` is the PATCH.
  const file = path.join(d.dataDir, 'big.env')
  fs.writeFileSync(file, Array.from({ length: 10 }, (_, i) => `MORE_${i}=${'y'.repeat(60_000)}`).join('\n'))
  const cli = await runCli(['env', 'hello', 'set', '--from-file', file], { BERTH_URL: d.url, BERTH_TOKEN: d.adminToken })
  assert.notEqual(cli.code, 0, cli.stdout)
  assert.match(cli.stderr, /ENV_TOO_LARGE|over the \d+ an app may use/)
})

test('D7: a health URL that redirects is not healthy, in verification and in the health monitor; the redirect is never followed', { timeout: 240_000 }, async () => {
  const d = await startDaemon()
  daemons.push(d)
  // The target the attack reached through the redirect (169.254.169.254), played by a local server.
  let targetHits = 0
  const target = await listen((_req, res) => (targetHits++, res.end('instance metadata\n')))
  let redirecting = false
  const health = await listen((_req, res) => {
    if (redirecting) res.writeHead(302, { location: `http://127.0.0.1:${target}/latest/meta-data/` }).end()
    else res.end('ok\n')
  })
  const appData = path.join(d.dataDir, 'hello-data')
  appDataDir(appData)
  assert.equal((await api(d, 'PUT', '/v1/apps/hello/env', { PORT: String(await freePort()), HELLO_DATA_DIR: appData })).status, 200)
  const set = await api(d, 'PUT', '/v1/apps/hello/settings', { stableWindowMs: 500, bootTimeoutMs: 45_000, healthUrl: `http://127.0.0.1:${health}/health`, healthIntervalMs: 200, healthFailures: 1000 })
  assert.equal(set.status, 200, set.text)
  const ids: Record<string, string> = {}
  for (const name of ['v1', 'v2'] as const) ids[name] = (await upload(d.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })).body.id
  const first = await api(d, 'POST', '/v1/apps/hello/deployments?wait=true', { release: ids.v1 })
  assert.equal(first.body.state, 'succeeded', first.text)

  // The monitor: a 302 is a failed check, with the status in lastError.
  redirecting = true
  await until('the health monitor to report the redirect', async () => {
    const h = (await api(d, 'GET', '/v1/apps/hello')).body.node.health
    return h?.ok === false && /HTTP 302/.test(h.lastError ?? '')
  }, 15_000)
  assert.equal(targetHits, 0, 'the monitor did not follow the redirect')

  // Verification: a release whose health URL redirects is not verified. Once its check has failed, the URL
  // answers 200 again, so that the rollback to v1 verifies and the deployment ends.
  const started = await api(d, 'POST', '/v1/apps/hello/deployments', { release: ids.v2 })
  assert.equal(started.status, 202, started.text)
  const byId = async () => (await api(d, 'GET', `/v1/apps/hello/deployments/${started.body.id}`)).body
  await until('the verification of v2 to fail', async () => {
    const now = await byId()
    return (now.steps as { name: string; state: string }[]).some((s) => s.name === 'verifying' && s.state === 'failed') || ['succeeded', 'failed', 'rolled_back'].includes(now.state)
  }, 120_000)
  redirecting = false
  let dep = await byId()
  await until('the deployment to end', async () => ['succeeded', 'failed', 'rolled_back'].includes((dep = await byId()).state), 120_000)
  assert.notEqual(dep.state, 'succeeded', JSON.stringify(dep))
  assert.equal(dep.reasonCode, 'HEALTH_CHECK_FAILED', JSON.stringify(dep))
  assert.match(dep.reason, /HTTP 302/)
  assert.equal(targetHits, 0, 'verification did not follow the redirect')
})

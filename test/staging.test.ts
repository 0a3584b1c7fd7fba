// One release, two apps on one host (issue 23 §4, D10, D11): `storefront` and `storefront-staging` run the same
// tarball (releaseName), each with its own node name, cookie, RELEASE_TMP, data and distribution port, with no
// epmd anywhere; the relx release the same; and an rpc expression never shows in any process's command line.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { freePort, processesUnder, startDaemon, type TestDaemon , appDataDir } from './helpers/daemon.js'
import { fixture, type FixtureName } from './helpers/fixtures.js'
import { call, upload, type Answer } from './helpers/http.js'
import { listening } from './helpers/ports.js'
import { until } from './helpers/wait.js'

let d: TestDaemon
const json = { 'content-type': 'application/json' }
const ports: Record<string, number> = {}
const releases: Record<string, string> = {}

function put(pathname: string, body: unknown): Promise<Answer> {
  return call(`${d.url}${pathname}`, { method: 'PUT', token: d.adminToken, body: JSON.stringify(body), headers: json })
}

function post(pathname: string, body: unknown = {}): Promise<Answer> {
  return call(`${d.url}${pathname}`, { method: 'POST', token: d.adminToken, body: JSON.stringify(body), headers: json })
}

async function rpc(app: string, expr: string): Promise<string> {
  const res = await post(`/v1/apps/${app}/rpc`, { expr })
  assert.equal(res.status, 200, res.text)
  assert.equal(res.body.code, 0, `${app}: ${res.text}`)
  return String(res.body.output).trim()
}

async function setUp(app: string, name: FixtureName, releaseName: string | null): Promise<void> {
  const port = await freePort()
  const marker = path.join(d.dataDir, `${app}-marker`)
  appDataDir(marker)
  assert.equal((await put(`/v1/apps/${app}/env`, { PORT: String(port), MARKER_DIR: marker })).status, 200)
  const settings = await put(`/v1/apps/${app}/settings`, { stableWindowMs: 300, healthUrl: `http://127.0.0.1:${port}/`, ...(releaseName ? { releaseName } : {}) })
  assert.equal(settings.status, 200, settings.text)
  const up = await upload(d.url, app, fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
  assert.equal(up.status, 201, up.text)
  ports[app] = port
  releases[app] = up.body.id
  const dep = await post(`/v1/apps/${app}/deployments?wait=true`, { release: up.body.id })
  assert.equal(dep.body.state, 'succeeded', dep.text)
}

async function remote(app: string, input: string, expect: RegExp): Promise<string> {
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/apps/${app}/remote`, { headers: { authorization: `Bearer ${d.adminToken}` } })
  const chunks: Buffer[] = []
  ws.on('message', (m: Buffer, binary: boolean) => binary && chunks.push(m))
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve())
    ws.on('error', reject)
  })
  const out = () => Buffer.concat(chunks).toString()
  try {
    await until(`${app}'s remote shell prompt`, () => /\)\d+> ?$|> $/m.test(out()), 30_000)
    ws.send(Buffer.from(input))
    await until(`${app}'s remote shell to answer`, () => expect.test(out()), 15_000)
    return out()
  } finally {
    ws.close()
  }
}

before(async () => {
  d = await startDaemon()
  await setUp('storefront', 'storefront', null)
  await setUp('storefront-staging', 'storefront', 'storefront')
})

after(async () => {
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [], 'no BEAM, run_erl or epmd is left behind')
})

describe('the releaseName setting', () => {
  test('an app whose name is not the release name refuses it until releaseName names it', async () => {
    const tarball = fs.readFileSync((await fixture('storefront')).tarball)
    const refused = await upload(d.url, 'shop-preview', tarball, { token: d.adminToken })
    assert.equal(refused.status, 422, refused.text)
    assert.equal(refused.body.code, 'RELEASE_NAME_MISMATCH')
    assert.match(refused.body.detail, /releaseName/)
    assert.equal((await put('/v1/apps/shop-preview/env', {})).status, 200, 'PUT env creates the app')
    const bad = await put('/v1/apps/shop-preview/settings', { releaseName: 'Bad-Name' })
    assert.equal(bad.status, 400, bad.text)
    assert.equal(bad.body.code, 'VALIDATION_FAILED')
    assert.equal((await put('/v1/apps/shop-preview/settings', { releaseName: 'storefront' })).status, 200)
    assert.equal((await upload(d.url, 'shop-preview', tarball, { token: d.adminToken })).status, 201)
    const got = await call(`${d.url}/v1/apps/shop-preview/settings`, { token: d.adminToken })
    assert.equal(got.body.releaseName, 'storefront')
  })

  test('app names take single hyphens inside, not at the ends or doubled', async () => {
    for (const name of ['-shop', 'shop-', 'shop--a', 'Shop']) {
      const res = await put(`/v1/apps/${name}/env`, {})
      assert.ok(res.status === 400 || res.status === 404, `${name}: ${res.status} ${res.text}`)
    }
  })
})

describe('two apps of one release on one host', () => {
  test('both serve, each from bin/storefront, migrated once each into its own data', async () => {
    for (const app of ['storefront', 'storefront-staging']) {
      assert.equal(await (await fetch(`http://127.0.0.1:${ports[app]}/`)).text(), 'shop 2.0.0\n')
      assert.deepEqual(fs.readFileSync(path.join(d.dataDir, `${app}-marker`, 'migrations.log'), 'utf8').trim().split('\n'), ['shop migrated 2.0.0'])
    }
    const dep = (await call(`${d.url}/v1/apps/storefront-staging/deployments`, { token: d.adminToken })).body.deployments[0]
    assert.match(dep.steps[0].output, /\$ bin\/storefront eval "Shop\.Release\.migrate\(\)"/)
  })

  test('distinct node names, cookies and RELEASE_TMP, read from each node', async () => {
    const seen: Record<string, { node: string; cookie: string; tmp: string }> = {}
    for (const app of ['storefront', 'storefront-staging']) {
      const [node, cookie, tmp] = (await rpc(app, 'IO.puts(node()); IO.puts(Node.get_cookie()); IO.puts(System.get_env("RELEASE_TMP"))')).split('\n')
      seen[app] = { node: node!, cookie: cookie!, tmp: tmp! }
      assert.equal(tmp, path.join(d.dataDir, 'apps', app, 'shared', 'tmp'))
      // The app's own cookie, not the release's releases/COOKIE that both apps' releases hold.
      const shared = fs.readFileSync(path.join(d.dataDir, 'apps', app, 'releases', releases[app]!, 'releases', 'COOKIE'), 'utf8').trim()
      assert.notEqual(cookie, shared)
      const file = path.join(d.dataDir, 'apps', app, 'shared', '.erlang.cookie')
      assert.equal(fs.readFileSync(file, 'utf8'), cookie)
      assert.equal(fs.statSync(file).mode & 0o077, 0, 'the cookie file is for its owner only')
    }
    assert.match(seen.storefront!.node, /^storefront@/)
    assert.match(seen['storefront-staging']!.node, /^storefront-staging@/)
    assert.notEqual(seen.storefront!.cookie, seen['storefront-staging']!.cookie)
  })

  test('no epmd: nothing listens on the epmd port, each node on its own distribution port, and rpc works', async () => {
    assert.equal(await listening(d.config.epmdPort), false, 'no epmd on the daemon’s ERL_EPMD_PORT')
    const dist = (JSON.parse(fs.readFileSync(path.join(d.dataDir, 'dist-ports.json'), 'utf8')) as { ports: Record<string, number> }).ports
    assert.notEqual(dist.storefront, dist['storefront-staging'])
    for (const app of ['storefront', 'storefront-staging']) {
      const port = dist[app]!
      assert.ok(port >= d.config.distPorts.first && port <= d.config.distPorts.last, `${app}: ${port} is in BERTH_DIST_PORTS`)
      assert.equal(await listening(port), true)
      assert.equal(/\{:ok, \[\[(?:'|~c")(\d+)/.exec(await rpc(app, 'IO.inspect(:init.get_argument(:erl_epmd_port))'))?.[1], String(port))
      const status = (await call(`${d.url}/v1/apps/${app}`, { token: d.adminToken })).body.node
      assert.equal(status.state, 'running')
    }
    // Still none after every command above.
    assert.equal(await listening(d.config.epmdPort), false)
    assert.deepEqual(processesUnder(d.dataDir).filter((p) => /\bepmd\b/.test(p.cmd.split(' ')[0] ?? '')), [])
  })

  test('a remote console works in each, on its own node', async () => {
    for (const app of ['storefront', 'storefront-staging']) {
      const out = await remote(app, 'IO.puts("on=" <> Atom.to_string(node()))\r', new RegExp(`on=${app}@`))
      assert.match(out, new RegExp(`on=${app}@`))
    }
  })
})

/**
 * Runs an rpc whose expression holds `secret` and scans every process's command line while its command runs
 * (from when its process is seen); answers what matched, and the rpc's answer.
 */
async function rpcWatched(app: string, expr: string, secret: string): Promise<{ seen: string[]; scans: number; res: Answer }> {
  const running = post(`/v1/apps/${app}/rpc`, { expr })
  const seen: string[] = []
  let done = false
  void running.finally(() => (done = true))
  let scans = 0
  while (!done) {
    let commandSeen = false
    for (const pid of fs.readdirSync('/proc').filter((f) => /^\d+$/.test(f))) {
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
        if (cmd.includes(secret)) seen.push(`${pid}: ${cmd.replaceAll('\0', ' ')}`)
        // The rpc command's processes: bin/NAME from the app's release, and the BEAM it runs.
        if (cmd.includes(path.join(d.dataDir, 'apps', app, 'releases')) && /\0(?:rpc|eval)\0|--rpc-eval/.test(cmd)) commandSeen = true
      } catch {
        // gone meanwhile
      }
    }
    if (commandSeen) scans++
    await new Promise((r) => setTimeout(r, 50))
  }
  return { seen, scans, res: await running }
}

describe('an rpc expression (D11)', () => {
  test('is in no process’s command line while it runs', async () => {
    const secret = `s3cret-${Date.now().toString(36)}`
    const { seen, scans, res } = await rpcWatched('storefront-staging', `Process.sleep(3000); IO.puts(String.length("${secret}"))`, secret)
    assert.equal(res.body.code, 0, res.text)
    assert.equal(res.body.output.trim(), String(secret.length))
    assert.ok(scans > 3, `scanned /proc ${scans} times while the rpc command ran`)
    assert.deepEqual(seen, [])
    // In the app's gate (releases/expr-file.ts): o+x only with isolation (the tests run as root, so it is on).
    assert.deepEqual(fs.readdirSync(path.join(d.dataDir, 'apps', 'storefront-staging', 'expr')), [], 'the expression file is gone')
    assert.equal(fs.statSync(path.join(d.dataDir, 'apps', 'storefront-staging', 'expr')).mode & 0o777, 0o711)
  })
})

describe('two apps of one relx release', () => {
  test('each node has its app’s cookie (not vm.args’s), its own distribution port, and answers rpc and remote without epmd', async () => {
    await setUp('relx_hello', 'relx', null)
    await setUp('relx-staging', 'relx', 'relx_hello')
    const dist = (JSON.parse(fs.readFileSync(path.join(d.dataDir, 'dist-ports.json'), 'utf8')) as { ports: Record<string, number> }).ports
    const cookies: string[] = []
    for (const app of ['relx_hello', 'relx-staging']) {
      const cookie = (await rpc(app, 'erlang:get_cookie().')).replace(/^'|'$/g, '')
      assert.equal(cookie, fs.readFileSync(path.join(d.dataDir, 'apps', app, 'shared', '.erlang.cookie'), 'utf8'))
      assert.notEqual(cookie, 'relx_hello_cookie', "not the cookie the release's vm.args.src names")
      cookies.push(cookie)
      assert.equal(await rpc(app, "{ok, [[P]]} = init:get_argument(erl_epmd_port), list_to_integer(P)."), String(dist[app]))
      assert.equal(await (await fetch(`http://127.0.0.1:${ports[app]}/`)).text(), 'relx_hello 0.3.0\n')
      await remote(app, 'io:format("on=~s~n", [os:getpid()]).\r', /on=\d+/)
    }
    assert.notEqual(cookies[0], cookies[1])
    // relx's eval (berth's rpc for relx) takes the expression from a file too.
    const secret = `relx-s3cret-${Date.now().toString(36)}`
    const { seen, scans, res } = await rpcWatched('relx-staging', `timer:sleep(3000), length("${secret}").`, secret)
    assert.equal(res.body.code, 0, res.text)
    assert.equal(res.body.output.trim(), String(secret.length))
    assert.ok(scans > 3, `scanned /proc ${scans} times while the rpc command ran`)
    assert.deepEqual(seen, [])
    assert.notEqual(dist.relx_hello, dist['relx-staging'])
    assert.equal(await listening(d.config.epmdPort), false, 'still no epmd')
  })
})

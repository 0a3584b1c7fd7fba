// The daemon and CLI as shipped: bin/berth.js runs the esbuild bundle (dist/bundle/), not dist/src. Most test
// files run berth in-process from dist/src; this one runs the bundle as a child process and uses what the bundle
// could break: files found from berth's root, the packages left out of it and loaded from node_modules (swagger-ui,
// prom-client, better-sqlite3, node-pty, pino), multipart, and a websocket terminal on a real node.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import { freePort, killProcessesUnder, processesUnder, runCli, spawnDaemon, tempDir, type ChildDaemon } from './helpers/daemon.js'
import { fixture, REPO } from './helpers/fixtures.js'
import { call } from './helpers/http.js'
import { until } from './helpers/wait.js'

let d: ChildDaemon
let token = ''
const dataDir = tempDir('berth-bundle-')

before(async () => {
  d = await spawnDaemon(dataDir)
  token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
})

after(async () => {
  await call(`${d.url}/v1/apps/hello/stop?wait=true`, { method: 'POST', token }).catch(() => {})
  await d.stop()
  killProcessesUnder(dataDir)
  await until('every process to exit', () => processesUnder(dataDir).length === 0, 10_000).catch(() => {})
  assert.deepEqual(processesUnder(dataDir), [])
  fs.rmSync(dataDir, { recursive: true, force: true })
})

test('bin/berth.js runs the bundle, built from the current dist/src', () => {
  assert.match(fs.readFileSync(path.join(REPO, 'bin', 'berth.js'), 'utf8'), /path\.join\(root, 'dist', 'bundle', 'main\.js'\)/)
  const newest = (dir: string): number => {
    let t = 0
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs)
    }
    return t
  }
  const bundle = fs.statSync(path.join(REPO, 'dist', 'bundle', 'main.js')).mtimeMs
  assert.ok(bundle >= newest(path.join(REPO, 'dist', 'src')), 'dist/bundle is older than dist/src: run `npm run build` (tsc, then scripts/bundle.mjs)')
})

test('the bundled daemon serves its files, the packages left out of the bundle, and multipart', async () => {
  // Files found from berth's root.
  assert.match((await call(`${d.url}/openapi.yaml`)).text, /^openapi: 3\./)
  const page = await fetch(`${d.url}/`, { headers: { accept: 'text/html' } })
  assert.equal(page.status, 200)
  assert.match(await page.text(), /<html/i)
  const consolePage = await fetch(`${d.url}/console/hello`)
  assert.match(await consolePage.text(), /\/assets\/console\.js/)
  for (const asset of ['xterm.js', 'addon-fit.js', 'console.js', 'xterm.css', 'console.css', 'dashboard.js', 'dashboard.css']) assert.equal((await fetch(`${d.url}/assets/${asset}`)).status, 200, asset)
  // swagger-ui (its own static files) and prom-client, loaded from node_modules.
  const docs = await fetch(`${d.url}/docs/`)
  assert.equal(docs.status, 200)
  assert.match(await docs.text(), /swagger/i)
  const metrics = await call(`${d.url}/metrics`, { token })
  assert.equal(metrics.status, 200)
  assert.match(metrics.text, /^berth_/m)
  // Multipart (bundled) into tar (bundled) and SQLite (native).
  const v1 = await fixture('v1')
  const form = new FormData()
  form.set('release', new Blob([new Uint8Array(fs.readFileSync(v1.tarball))]), 'hello.tar.gz')
  const up = await call(`${d.url}/v1/apps/hello/releases`, { method: 'POST', body: form, token })
  assert.equal(up.status, 201, up.text)
  assert.equal(up.body.version, '0.1.0')
  // The CLI from the same bundle.
  const cli = await runCli(['releases', 'hello'], { BERTH_URL: d.url, BERTH_TOKEN: token })
  assert.equal(cli.code, 0, cli.stderr)
  assert.match(cli.stdout, /0\.1\.0/)
})

test('the bundled daemon deploys a real node and opens a remote IEx over a websocket (ws, node-pty)', async () => {
  const port = await freePort()
  const json = { 'content-type': 'application/json' }
  assert.equal((await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token, headers: json, body: JSON.stringify({ PORT: String(port) }) })).status, 200)
  assert.equal((await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })).status, 200)
  const release = (await call(`${d.url}/v1/apps/hello/releases`, { token })).body.releases[0].id
  const dep = await call(`${d.url}/v1/apps/hello/deployments?wait=true`, { method: 'POST', token, headers: json, body: JSON.stringify({ release }) })
  assert.equal(dep.body.state, 'succeeded', dep.text)
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.1.0\n')
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/v1/apps/hello/remote`, { headers: { authorization: `Bearer ${token}` } })
  let out = ''
  ws.on('message', (m: Buffer, binary: boolean) => binary && (out += m.toString()))
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve())
    ws.on('error', reject)
  })
  try {
    await until('the IEx prompt', () => /iex\(hello@[^)]+\)1> /.test(out), 20_000)
    ws.send(Buffer.from('6 * 7\r'))
    await until('42', () => /\b42\b/.test((out.split('6 * 7')[1] ?? '').replace(/\x1b\[[0-9;]*m/g, '')), 10_000)
  } finally {
    const closed = new Promise((resolve) => ws.on('close', resolve))
    ws.close()
    await closed
  }
})

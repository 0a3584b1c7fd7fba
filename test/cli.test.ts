// The berth command itself: help texts, config validation, and graceful shutdown of `berth serve`
// with an upload in flight (it finishes or is aborted cleanly, and nothing is left in uploads/).

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { test } from 'node:test'
import { runCli, spawnDaemon, tempDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { until } from './helpers/wait.js'

test('--help on every command', async () => {
  const top = await runCli(['--help'])
  assert.equal(top.code, 0)
  assert.match(top.stdout, /serve/)
  const serve = await runCli(['serve', '--help'])
  assert.equal(serve.code, 0)
  for (const v of ['BERTH_DATA_DIR', 'BERTH_LISTEN', 'BERTH_MAX_UPLOAD_BYTES', 'BERTH_LOG_LEVEL', '--data-dir']) assert.ok(serve.stdout.includes(v), v)
  const token = await runCli(['token', '--help'])
  assert.equal(token.code, 0)
  assert.match(token.stdout, /token create --name NAME --scopes/)
})

test('bad configuration is refused with the setting named', async () => {
  const listen = await runCli(['serve'], { BERTH_LISTEN: 'nonsense', BERTH_DATA_DIR: tempDir() })
  assert.equal(listen.code, 2)
  assert.match(listen.stderr, /BERTH_LISTEN must be HOST:PORT/)
  const limit = await runCli(['serve', '--max-files', 'lots'], { BERTH_DATA_DIR: tempDir() })
  assert.equal(limit.code, 2)
  assert.match(limit.stderr, /BERTH_MAX_FILES must be a whole number/)
  const unknown = await runCli(['frobnicate'])
  assert.equal(unknown.code, 2)
})

async function slowUpload(url: string, token: string, body: Buffer, bytesPerTick: number): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.request(`${url}/v1/apps/hello/releases`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': body.length } }, (res) => {
      let text = ''
      res.on('data', (c) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode!, body: text }))
    })
    req.on('error', (err) => resolve({ error: String(err) }))
    let off = 0
    const tick = setInterval(() => {
      if (req.destroyed) return clearInterval(tick)
      req.write(body.subarray(off, off + bytesPerTick))
      off += bytesPerTick
      if (off >= body.length) {
        clearInterval(tick)
        req.end()
      }
    }, 50)
  })
}

test('SIGTERM during a slow upload: aborted cleanly after the grace period, uploads/ left empty', async () => {
  const dataDir = tempDir()
  const daemon = await spawnDaemon(dataDir, { BERTH_SHUTDOWN_GRACE_MS: '500' })
  const token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  const body = fs.readFileSync((await fixture('v1')).tarball)
  // ~200 KB/s: the 5 MB release would take ~25 s, far longer than the grace period.
  const upload = slowUpload(daemon.url, token, body, 10 * 1024)
  // A failed look must not leave the daemon running (a loaded host once left one for an hour).
  await until('the upload is in flight', () => fs.readdirSync(path.join(dataDir, 'uploads')).length === 1, 10_000, 50).catch(async (err: unknown) => {
    await daemon.stop('SIGKILL')
    throw err
  })
  const started = Date.now()
  const code = await daemon.stop('SIGTERM')
  assert.equal(code, 0)
  assert.ok(Date.now() - started < 10_000)
  const result = await upload
  if ('status' in result) {
    assert.equal(result.status, 503)
    assert.equal(JSON.parse(result.body).code, 'SHUTTING_DOWN')
  }
  assert.deepEqual(fs.readdirSync(path.join(dataDir, 'uploads')), [])
  assert.ok(!fs.existsSync(path.join(dataDir, 'apps', 'hello', 'releases')) || fs.readdirSync(path.join(dataDir, 'apps', 'hello', 'releases')).length === 0)
  assert.match(daemon.output(), /berth stopped/)
  fs.rmSync(dataDir, { recursive: true, force: true })
})

test('SIGTERM lets a fast upload finish', async () => {
  const dataDir = tempDir()
  const daemon = await spawnDaemon(dataDir, { BERTH_SHUTDOWN_GRACE_MS: '20000' })
  const token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  const body = fs.readFileSync((await fixture('v1')).tarball)
  const upload = slowUpload(daemon.url, token, body, 512 * 1024)
  await new Promise((r) => setTimeout(r, 150))
  const code = await daemon.stop('SIGTERM')
  assert.equal(code, 0)
  const result = await upload
  assert.ok('status' in result && result.status === 201, JSON.stringify(result))
  assert.deepEqual(fs.readdirSync(path.join(dataDir, 'uploads')), [])
  assert.equal(fs.readdirSync(path.join(dataDir, 'apps', 'hello', 'releases')).length, 1)
  fs.rmSync(dataDir, { recursive: true, force: true })
})

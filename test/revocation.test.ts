// Revoking a token (the real CLI on the daemon's data directory) or letting it expire ends what it has open
// within a second: a remote console (websocket closed with 4401 and an error frame, the shell hung up), a
// log follow stream, and an upload in progress (401). Timings are printed.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import { endProcessesUnder, freePort, processesUnder, runCli, spawnDaemon, tempDir, type ChildDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { until } from './helpers/wait.js'

const json = { 'content-type': 'application/json' }
let dataDir: string
let daemon: ChildDaemon
let admin: string

before(async () => {
  dataDir = tempDir()
  daemon = await spawnDaemon(dataDir)
  admin = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  const port = await freePort()
  await call(`${daemon.url}/v1/apps/hello/env`, { method: 'PUT', token: admin, headers: json, body: JSON.stringify({ PORT: String(port) }) })
  await call(`${daemon.url}/v1/apps/hello/settings`, { method: 'PUT', token: admin, headers: json, body: JSON.stringify({ stableWindowMs: 300 }) })
  const res = await upload(daemon.url, 'hello', fs.readFileSync((await fixture('v1')).tarball), { token: admin, query: 'deploy=true' })
  assert.equal(res.body.deployment?.state, 'succeeded', res.text)
})

after(async () => {
  await daemon.stop()
  // berth leaves the nodes running on shutdown (a restarted agent re-adopts them); the test ends them.
  assert.deepEqual(await endProcessesUnder(dataDir), [])
  fs.rmSync(dataDir, { recursive: true, force: true })
})


interface Opened {
  /** When it was seen to end, in Date.now() ms. */
  endedAt: Promise<number>
}

/** A remote IEx over a real websocket, at its prompt and evaluating. */
async function openConsole(token: string): Promise<Opened & { code: Promise<number>; frames: Record<string, unknown>[]; alive(): Promise<boolean> }> {
  const ws = new WebSocket(`${daemon.url.replace('http', 'ws')}/v1/apps/hello/remote`, { headers: { authorization: `Bearer ${token}` } })
  let out = ''
  const frames: Record<string, unknown>[] = []
  ws.on('message', (m: Buffer, binary: boolean) => (binary ? (out += m.toString()) : frames.push(JSON.parse(m.toString()) as Record<string, unknown>)))
  const closed = new Promise<{ code: number; at: number }>((resolve) => ws.on('close', (code) => resolve({ code, at: Date.now() })))
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve())
    ws.on('error', reject)
  })
  await until('the iex prompt', () => /iex\([^)]*\)1> /.test(out))
  ws.send(Buffer.from('6*7\r'))
  await until('42', () => /\b42\b/.test((out.split('6*7')[1] ?? '').replace(/\x1b\[[0-9;]*m/g, '')))
  return {
    endedAt: closed.then((c) => c.at),
    code: closed.then((c) => c.code),
    frames,
    alive: async () => ws.readyState === ws.OPEN,
  }
}

/** GET logs?follow=true, headers received. */
async function openFollow(token: string): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${daemon.url}/v1/apps/hello/logs?follow=true&lines=1`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      assert.equal(res.statusCode, 200)
      res.resume()
      const endedAt = new Promise<number>((r) => res.on('close', () => r(Date.now())))
      resolve({ endedAt })
    })
    req.on('error', reject)
  })
}

/** An upload that declared 10 MB and sent 10 bytes: it waits for the rest (the idle limit is 30 s). */
function openUpload(token: string): Opened & { answer: Promise<{ status: number; body: { code?: string; detail?: string } }> } {
  const req = http.request(`${daemon.url}/v1/apps/hello/releases`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': 10_000_000 } })
  let at = 0
  const answer = new Promise<{ status: number; body: { code?: string; detail?: string } }>((resolve) => {
    req.on('response', (res) => {
      at = Date.now()
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(body || '{}') }))
    })
    req.on('error', () => resolve({ status: 0, body: {} }))
  })
  req.write(Buffer.alloc(10))
  return { answer, endedAt: answer.then(() => at) }
}

async function remoteShells(): Promise<number> {
  return processesUnder(path.join(dataDir, 'apps', 'hello', 'releases')).filter((p) => / remote|remsh/.test(p.cmd)).length
}

/** When it ended, or Infinity if it still runs after `ms` (so old code fails instead of hanging). */
function ended(what: Opened, ms = 5000): Promise<number> {
  return Promise.race([what.endedAt, new Promise<number>((r) => setTimeout(() => r(Infinity), ms).unref())])
}

function report(what: string, t0: number, ended: Record<string, number>): void {
  const parts = Object.entries(ended).map(([k, at]) => `${k} ${at - t0} ms`)
  console.log(`# ${what}: ${parts.join(', ')}`)
}

test('revoking a token with the CLI closes its console, its log stream and its upload within a second', async () => {
  const created = await runCli(['token', 'create', '--name', 'ops', '--scopes', 'console,read,deploy', '--app', 'hello'], { BERTH_DATA_DIR: dataDir })
  assert.equal(created.code, 0, created.stderr)
  const token = created.stdout.trim()
  const shells = await remoteShells()
  const consoleWs = await openConsole(token)
  const logs = await openFollow(token)
  const up = openUpload(token)
  await new Promise((r) => setTimeout(r, 300))
  assert.ok(await consoleWs.alive())
  assert.equal(await remoteShells(), shells + 1, 'the remote shell runs')

  const started = Date.now()
  const revoked = await runCli(['token', 'revoke', 'ops'], { BERTH_DATA_DIR: dataDir })
  const t0 = Date.now()
  assert.equal(revoked.code, 0, revoked.stderr)
  const ends = { console: await ended(consoleWs), logs: await ended(logs), upload: await ended(up) }
  report('revocation (from the CLI\'s exit)', t0, ends)
  report('revocation (from starting the CLI)', started, ends)
  for (const [what, at] of Object.entries(ends)) assert.ok(at - t0 < 1000, `${what} ended ${at - t0} ms after the revocation`)

  assert.equal(await consoleWs.code, 4401)
  const error = consoleWs.frames.find((f) => f.type === 'error')!
  assert.equal(error.code, 'UNAUTHORIZED')
  assert.match(String(error.detail), /Token "ops" was revoked/)
  const answer = await up.answer
  assert.equal(answer.status, 401)
  assert.match(String(answer.body.detail), /revoked/)
  await until('the remote shell is gone', async () => (await remoteShells()) === shells, 5000)
  const sessions = (await call(`${daemon.url}/v1/apps/hello/sessions`, { token: admin })).body.sessions as { actor: string; endReason: string; active: boolean }[]
  assert.deepEqual(sessions.filter((s) => s.actor === 'ops').map((s) => [s.endReason, s.active]), [['token revoked', false]])
  assert.deepEqual(fs.readdirSync(path.join(dataDir, 'uploads')), [], 'the abandoned upload left nothing')
  assert.equal((await call(`${daemon.url}/v1/apps/hello/logs`, { token })).status, 401)
})

test('an expired token is refused and what it had open is closed within a second of its expiry', async () => {
  const created = await runCli(['token', 'create', '--name', 'brief', '--scopes', 'console,read', '--expires', '8s'], { BERTH_DATA_DIR: dataDir })
  assert.equal(created.code, 0, created.stderr)
  const token = created.stdout.trim()
  const listed = JSON.parse((await runCli(['token', 'list', '--json'], { BERTH_DATA_DIR: dataDir })).stdout) as { name: string; expiresAt: string | null }[]
  const expiresAt = Date.parse(listed.find((t) => t.name === 'brief')!.expiresAt!)
  assert.ok(Math.abs(expiresAt - (Date.now() + 8000)) < 3000, 'expires about 8 s from now')
  const consoleWs = await openConsole(token)
  const logs = await openFollow(token)
  assert.ok(Date.now() < expiresAt, 'opened before the expiry')

  const ends = { console: await ended(consoleWs, 15_000), logs: await ended(logs, 15_000) }
  report('expiry (from expiresAt)', expiresAt, ends)
  for (const [what, at] of Object.entries(ends)) {
    assert.ok(at >= expiresAt - 50, `${what} ended only at the expiry`)
    assert.ok(at - expiresAt < 1000, `${what} ended ${at - expiresAt} ms after the expiry`)
  }
  assert.equal(await consoleWs.code, 4401)
  assert.match(String(consoleWs.frames.find((f) => f.type === 'error')?.detail), /Token "brief" expired at/)
  const refused = await call(`${daemon.url}/v1/apps`, { token })
  assert.equal(refused.status, 401)
  assert.equal(refused.body.code, 'UNAUTHORIZED')
  assert.match(refused.body.detail, /^Token "brief" expired at \S+; create a new one/)
  const table = (await runCli(['token', 'list'], { BERTH_DATA_DIR: dataDir })).stdout
  assert.match(table, /^NAME\s+SCOPES\s+APPS\s+CREATED\s+EXPIRES\s+LAST USED/)
  assert.match(table, /brief\s+console,read\s+\*\s+\S+\s+\S+ \(expired\)/)
  assert.match(table, /initial-admin\s+admin\s+\*\s+\S+\s+never/)
})

test('--expires takes s, m, h or d', async () => {
  for (const bad of ['30', '2w', '0s', '1.5h', '4000d', 'd']) {
    const r = await runCli(['token', 'create', '--name', `bad-${bad.replace(/\W/g, '')}`, '--scopes', 'read', '--expires', bad], { BERTH_DATA_DIR: dataDir })
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`)
    assert.match(r.stderr, /--expires must be a whole number of s, m, h or d/)
  }
  const r = await runCli(['token', 'create', '--name', 'month', '--scopes', 'read', '--expires', '30d'], { BERTH_DATA_DIR: dataDir })
  assert.equal(r.code, 0, r.stderr)
  const month = (JSON.parse((await runCli(['token', 'list', '--json'], { BERTH_DATA_DIR: dataDir })).stdout) as { name: string; expiresAt: string }[]).find((t) => t.name === 'month')!
  assert.ok(Math.abs(Date.parse(month.expiresAt) - (Date.now() + 30 * 86_400_000)) < 60_000)
  assert.equal((await call(`${daemon.url}/v1/apps`, { token: r.stdout.trim() })).status, 200)
})

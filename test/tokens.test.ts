// Tokens from the CLI against a running daemon on the same data directory: create prints only the token,
// it works at once, list shows no secrets, revoke takes effect, and secrets are stored hashed only.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import Sqlite from 'better-sqlite3'
import { runCli, spawnDaemon, tempDir, type ChildDaemon } from './helpers/daemon.js'
import { call } from './helpers/http.js'

let dataDir: string
let daemon: ChildDaemon

before(async () => {
  dataDir = tempDir()
  daemon = await spawnDaemon(dataDir)
})
after(async () => {
  await daemon.stop()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

test('first start writes an admin token to a 0600 file and logs the path, never the token', async () => {
  const file = path.join(dataDir, 'initial-admin-token')
  const token = fs.readFileSync(file, 'utf8').trim()
  // berth_ + 16 hex + _ = 23 characters; the secret (base64url, may itself hold "_") is the rest.
  assert.match(token, /^berth_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/)
  assert.equal(fs.statSync(file).mode & 0o777, 0o600)
  assert.ok(daemon.output().includes(file))
  assert.ok(!daemon.output().includes(token.slice(23)), 'the secret is not in the log')
  const res = await call(`${daemon.url}/v1/apps`, { token })
  assert.equal(res.status, 200)
})

test('create / list / revoke while the daemon runs', async () => {
  const env = { BERTH_DATA_DIR: dataDir }
  const created = await runCli(['token', 'create', '--name', 'ci', '--scopes', 'read,deploy', '--app', 'hello'], env)
  assert.equal(created.code, 0, created.stderr)
  const token = created.stdout.trim()
  assert.equal(created.stdout, `${token}\n`, 'stdout holds the token and nothing else')
  assert.match(token, /^berth_/)

  const ok = await call(`${daemon.url}/v1/apps`, { token })
  assert.equal(ok.status, 200)
  const forbidden = await call(`${daemon.url}/v1/apps/other/releases`, { token })
  assert.equal(forbidden.status, 403)
  assert.equal(forbidden.body.code, 'FORBIDDEN_APP')

  const list = await runCli(['token', 'list', '--json'], env)
  const tokens = JSON.parse(list.stdout) as { name: string; scopes: string[]; apps: string[] | null }[]
  const ci = tokens.find((t) => t.name === 'ci')!
  assert.deepEqual(ci.scopes, ['read', 'deploy'])
  assert.deepEqual(ci.apps, ['hello'])
  assert.ok(!list.stdout.includes(token.slice(23)))
  const table = await runCli(['token', 'list'], env)
  assert.match(table.stdout, /^NAME\s+SCOPES/)
  assert.match(table.stdout, /ci\s+read,deploy\s+hello/)

  const dup = await runCli(['token', 'create', '--name', 'ci', '--scopes', 'read'], env)
  assert.equal(dup.code, 2)
  assert.match(dup.stderr, /already exists/)
  const badScope = await runCli(['token', 'create', '--name', 'x', '--scopes', 'read,root'], env)
  assert.equal(badScope.code, 2)
  assert.match(badScope.stderr, /unknown scope "root"/)

  const revoked = await runCli(['token', 'revoke', 'ci'], env)
  assert.equal(revoked.code, 0)
  const after = await call(`${daemon.url}/v1/apps`, { token })
  assert.equal(after.status, 401)
  const missing = await runCli(['token', 'revoke', 'ci'], env)
  assert.equal(missing.code, 1)
})

test('the database never holds a token in clear', async () => {
  const created = await runCli(['token', 'create', '--name', 'probe', '--scopes', 'read'], { BERTH_DATA_DIR: dataDir })
  const secret = created.stdout.trim().slice(23)
  const db = new Sqlite(path.join(dataDir, 'berth.db'), { readonly: true })
  const rows = db.prepare('SELECT * FROM tokens').all() as Record<string, unknown>[]
  db.close()
  const dump = JSON.stringify(rows)
  assert.ok(!dump.includes(secret))
  for (const f of fs.readdirSync(dataDir).filter((f) => f.startsWith('berth.db'))) {
    assert.ok(!fs.readFileSync(path.join(dataDir, f)).includes(secret), `${f} has no clear secret`)
  }
})

test('failed authentication is rate limited per address', async () => {
  let last = 0
  for (let i = 0; i < 40; i++) {
    last = (await call(`${daemon.url}/v1/apps`, { token: 'berth_0123456789abcdef_' + 'x'.repeat(43) })).status
  }
  assert.equal(last, 429)
  const admin = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  const blocked = await call(`${daemon.url}/v1/apps`, { token: 'berth_0123456789abcdef_' + 'y'.repeat(43) })
  assert.equal(blocked.status, 429, 'failures from the address are limited for the window')
  assert.equal(blocked.body.code, 'AUTH_RATE_LIMITED')
  assert.ok(Number(blocked.headers.get('retry-after')) > 0)
  // Only failures are limited: a valid token from the same address is never refused for others' failures.
  assert.equal((await call(`${daemon.url}/v1/apps`, { token: admin })).status, 200)
})

// Release intake over a real listening port: raw and multipart uploads of a real `mix release` tarball,
// checksums, limits, auth, and the promise that a refused upload leaves nothing behind.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture, type Fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'
import { releaseSkeleton, tarBytes } from './helpers/tar.js'
import zlib from 'node:zlib'

let d: TestDaemon
let v1: Fixture
let v1Bytes: Buffer

function uploadsEmpty(): void {
  assert.deepEqual(fs.readdirSync(path.join(d.dataDir, 'uploads')), [])
}

/** Directories under `dir` (itself included) that are not 0555. */
function writableDirs(dir: string): string[] {
  const bad = (fs.statSync(dir).mode & 0o777) === 0o555 ? [] : [dir]
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) bad.push(...writableDirs(path.join(dir, e.name)))
  return bad
}

before(async () => {
  d = await startDaemon({ BERTH_MAX_UPLOAD_BYTES: String(64 * 1024 * 1024) })
  v1 = await fixture('v1')
  v1Bytes = fs.readFileSync(v1.tarball)
})
after(async () => d.stop())

describe('upload of a real release', () => {
  test('raw body: 201, unpacked read-only under apps/APP/releases/ID, listed', async () => {
    const res = await upload(d.url, 'hello', v1Bytes, { token: d.adminToken })
    assert.equal(res.status, 201, res.text)
    assert.equal(res.body.id, `0.1.0-${v1.sha256.slice(0, 12)}`)
    assert.equal(res.body.version, '0.1.0')
    assert.equal(res.body.sha256, v1.sha256)
    assert.equal(res.body.size, v1.size)
    assert.equal(res.body.current, false)
    assert.equal(res.headers.get('location'), `/v1/apps/hello/releases/${res.body.id}`)
    const dir = path.join(d.dataDir, 'apps', 'hello', 'releases', res.body.id)
    assert.ok(fs.statSync(path.join(dir, 'bin', 'hello')).mode & 0o100, 'bin/hello stays executable')
    assert.equal(fs.statSync(dir).mode & 0o777, 0o555)
    assert.equal(fs.statSync(path.join(dir, 'releases')).mode & 0o777, 0o555)
    assert.equal(fs.statSync(path.join(dir, 'releases', 'start_erl.data')).mode & 0o222, 0, 'files are read-only')
    assert.deepEqual(writableDirs(dir), [], 'every directory of the release is read-only')
    assert.equal(fs.readFileSync(path.join(dir, 'releases', 'start_erl.data'), 'utf8').trim().split(' ')[1], '0.1.0')
    const list = await call(`${d.url}/v1/apps/hello/releases`, { token: d.adminToken })
    assert.equal(list.status, 200)
    assert.deepEqual(list.body.releases.map((r: { id: string }) => r.id), [res.body.id])
    uploadsEmpty()
  })

  test('a release inside one wrapper directory: the wrapper becomes the release, every directory read-only', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-wrapped-'))
    try {
      const top = path.join(tmp, 'hello-0.1.0')
      fs.mkdirSync(top)
      execFileSync('tar', ['xzf', v1.tarball, '-C', top])
      // Another build of the same version, so that it is a new release and not the one the test above stored.
      fs.writeFileSync(path.join(top, 'lib', 'wrapped.txt'), 'wrapped\n')
      const bytes = zlib.gzipSync(execFileSync('tar', ['cf', '-', '-C', tmp, 'hello-0.1.0'], { maxBuffer: 256 * 1024 * 1024 }))
      const res = await upload(d.url, 'hello', bytes, { token: d.adminToken })
      assert.equal(res.status, 201, res.text)
      const dir = path.join(d.dataDir, 'apps', 'hello', 'releases', res.body.id)
      assert.equal(fs.readFileSync(path.join(dir, 'lib', 'wrapped.txt'), 'utf8'), 'wrapped\n')
      assert.deepEqual(writableDirs(dir), [])
      assert.equal((await call(`${d.url}/v1/apps/hello/releases/${res.body.id}`, { method: 'DELETE', token: d.adminToken })).status, 200)
      uploadsEmpty()
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })

  test('the same bytes again: 200 with the existing release, nothing new on disk', async () => {
    const res = await upload(d.url, 'hello', v1Bytes, { token: d.adminToken, method: 'PUT' })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.id, `0.1.0-${v1.sha256.slice(0, 12)}`)
    assert.equal(fs.readdirSync(path.join(d.dataDir, 'apps', 'hello', 'releases')).length, 1)
    uploadsEmpty()
  })

  test('multipart with ?sha256, newest first, lookup by bare version', async () => {
    const v2 = await fixture('v2')
    const form = new FormData()
    form.set('release', new Blob([new Uint8Array(fs.readFileSync(v2.tarball))]), 'whatever-name-1.2.3.tar.gz')
    const res = await call(`${d.url}/v1/apps/hello/releases?sha256=${v2.sha256.toUpperCase()}`, { method: 'POST', body: form, token: d.adminToken })
    assert.equal(res.status, 201, res.text)
    assert.equal(res.body.version, '0.2.0', 'version comes from the content, not the file name')
    const list = await call(`${d.url}/v1/apps/hello/releases`, { token: d.adminToken })
    assert.deepEqual(list.body.releases.map((r: { version: string }) => r.version), ['0.2.0', '0.1.0'])
    const one = await call(`${d.url}/v1/apps/hello/releases/0.2.0`, { token: d.adminToken })
    assert.equal(one.status, 200)
    assert.equal(one.body.id, res.body.id)
    const apps = await call(`${d.url}/v1/apps`, { token: d.adminToken })
    assert.deepEqual(apps.body.apps.map((a: { name: string; releases: number }) => [a.name, a.releases]), [['hello', 2]])
  })

  test('Content-Digest is verified', async () => {
    const bad = crypto.createHash('sha256').update('not it').digest('base64')
    const res = await upload(d.url, 'hello', v1Bytes, { token: d.adminToken, headers: { 'content-digest': `sha-256=:${bad}:` } })
    assert.equal(res.status, 422)
    assert.equal(res.body.code, 'CHECKSUM_MISMATCH')
    const good = Buffer.from(v1.sha256, 'hex').toString('base64')
    const ok = await upload(d.url, 'hello', v1Bytes, { token: d.adminToken, headers: { 'content-digest': `sha-512=:AAAA:, sha-256=:${good}:` } })
    assert.equal(ok.status, 200, ok.text)
    const unsupported = await upload(d.url, 'hello', v1Bytes, { token: d.adminToken, headers: { 'content-digest': 'sha-512=:AAAA:' } })
    assert.equal(unsupported.body.code, 'DIGEST_UNSUPPORTED')
    uploadsEmpty()
  })

  test('checksum mismatch in ?sha256 is refused and leaves nothing', async () => {
    const other = await fixture('crash_on_boot')
    const res = await upload(d.url, 'hello', fs.readFileSync(other.tarball), { token: d.adminToken, query: `sha256=${'0'.repeat(64)}` })
    assert.equal(res.status, 422)
    assert.equal(res.headers.get('content-type'), 'application/problem+json')
    assert.equal(res.body.code, 'CHECKSUM_MISMATCH')
    assert.equal(res.body.actual, other.sha256)
    const list = await call(`${d.url}/v1/apps/hello/releases`, { token: d.adminToken })
    assert.ok(!list.body.releases.some((r: { sha256: string }) => r.sha256 === other.sha256))
    uploadsEmpty()
  })

  test('a release of another app is refused with the name in the sentence', async () => {
    const res = await upload(d.url, 'other_app', v1Bytes, { token: d.adminToken })
    assert.equal(res.status, 422)
    assert.equal(res.body.code, 'RELEASE_NAME_MISMATCH')
    assert.match(res.body.detail, /release of "hello".*"other_app"/)
    assert.ok(!fs.existsSync(path.join(d.dataDir, 'apps', 'other_app')))
    uploadsEmpty()
  })

  test('over-size: refused from Content-Length and while streaming without one', async () => {
    // A well-formed release bigger than the limit, so that only the size can be the reason for refusal.
    const big = zlib.gzipSync(tarBytes([...releaseSkeleton(), { path: 'lib/big.bin', body: crypto.randomBytes(65 * 1024 * 1024) }]), { level: 1 })
    // Like curl does for big bodies, wait for the answer before sending the rest: berth refuses on the
    // Content-Length alone (sending all 65 MB would race the early answer and the connection close).
    const declared = await new Promise<{ status: number; body: { code: string } }>((resolve, reject) => {
      const req = http.request(`${d.url}/v1/apps/hello/releases`, { method: 'POST', headers: { authorization: `Bearer ${d.adminToken}`, 'content-type': 'application/octet-stream', 'content-length': big.length } }, (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => {
          req.destroy()
          resolve({ status: res.statusCode!, body: JSON.parse(text) })
        })
      })
      req.on('error', reject)
      req.write(big.subarray(0, 64 * 1024))
    })
    assert.equal(declared.status, 413)
    assert.equal(declared.body.code, 'UPLOAD_TOO_LARGE')
    // A chunked body has no Content-Length: the limit is counted as bytes arrive.
    const chunks = (async function* () {
      for (let i = 0; i < big.length; i += 1 << 20) yield big.subarray(i, i + (1 << 20))
    })()
    const streamed = await call(`${d.url}/v1/apps/hello/releases`, { method: 'POST', body: chunks as unknown as BodyInit, token: d.adminToken, headers: { 'content-type': 'application/gzip' } }).catch((err) => ({ status: 0, body: { code: String(err) } }))
    // The server answers early and may close the connection while the client still sends: accept either view.
    if (streamed.status !== 0) {
      assert.equal(streamed.status, 413)
      assert.equal(streamed.body.code, 'UPLOAD_TOO_LARGE')
    }
    await waitFor(() => fs.readdirSync(path.join(d.dataDir, 'uploads')).length === 0)
  })

  test('empty body and not-a-tarball', async () => {
    const empty = await upload(d.url, 'hello', Buffer.alloc(0), { token: d.adminToken })
    assert.equal(empty.body.code, 'UPLOAD_EMPTY')
    const zip = await upload(d.url, 'hello', Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), crypto.randomBytes(2000)]), { token: d.adminToken })
    assert.equal(zip.status, 415)
    assert.equal(zip.body.code, 'NOT_A_TARBALL')
    assert.match(zip.body.detail, /zip/)
    const text = await upload(d.url, 'hello', Buffer.from('hello world '.repeat(100)), { token: d.adminToken })
    assert.equal(text.body.code, 'NOT_A_TARBALL')
    uploadsEmpty()
  })

  test('truncated gzip of the real release', async () => {
    const res = await upload(d.url, 'hello', v1Bytes.subarray(0, Math.floor(v1Bytes.length / 2)), { token: d.adminToken })
    assert.equal(res.status, 422)
    assert.equal(res.body.code, 'GZIP_TRUNCATED')
    uploadsEmpty()
  })

  test('trailing garbage after the gzip stream', async () => {
    const res = await upload(d.url, 'hello', Buffer.concat([v1Bytes, Buffer.from('garbage after the end')]), { token: d.adminToken })
    assert.equal(res.body.code, 'TARBALL_TRAILING_DATA')
    uploadsEmpty()
  })

  test('multipart without a release field', async () => {
    const form = new FormData()
    form.set('other', new Blob([new Uint8Array(v1Bytes)]), 'x.tar.gz')
    const res = await call(`${d.url}/v1/apps/hello/releases`, { method: 'POST', body: form, token: d.adminToken })
    assert.equal(res.status, 400)
    assert.equal(res.body.code, 'MULTIPART_NO_FILE')
  })
})

describe('auth on upload', () => {
  test('401 without a token and with a bad one; 403 for missing scope or another app', async () => {
    const none = await upload(d.url, 'hello', v1Bytes)
    assert.equal(none.status, 401)
    assert.equal(none.body.code, 'UNAUTHORIZED')
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="berth"')
    const bad = await upload(d.url, 'hello', v1Bytes, { token: 'berth_0000000000000000_' + 'A'.repeat(43) })
    assert.equal(bad.status, 401)
    const readOnly = d.token('reader', ['read'])
    const scope = await upload(d.url, 'hello', v1Bytes, { token: readOnly })
    assert.equal(scope.status, 403)
    assert.equal(scope.body.code, 'FORBIDDEN_SCOPE')
    assert.match(scope.body.detail, /"deploy"/)
    const otherApp = d.token('ci-other', ['deploy', 'read'], ['other'])
    const app = await upload(d.url, 'hello', v1Bytes, { token: otherApp })
    assert.equal(app.status, 403)
    assert.equal(app.body.code, 'FORBIDDEN_APP')
    const ci = d.token('ci-hello', ['deploy'], ['hello'])
    const ok = await upload(d.url, 'hello', v1Bytes, { token: ci })
    assert.equal(ok.status, 200)
    const list = await call(`${d.url}/v1/apps`, { token: otherApp })
    assert.deepEqual(list.body.apps, [], 'a token limited to other apps sees none of hello')
    uploadsEmpty()
  })
})

describe('delete', () => {
  test('deletes a release, refuses the current one', async () => {
    const v2 = await fixture('v2')
    const id2 = `0.2.0-${v2.sha256.slice(0, 12)}`
    const id1 = `0.1.0-${v1.sha256.slice(0, 12)}`
    const reader = d.token('reader2', ['read', 'deploy'])
    const denied = await call(`${d.url}/v1/apps/hello/releases/${id2}`, { method: 'DELETE', token: reader })
    assert.equal(denied.status, 403)
    // current is normally switched by a deployment; made by hand here to exercise the guard.
    fs.symlinkSync(`releases/${id1}`, path.join(d.dataDir, 'apps', 'hello', 'current'))
    const cur = await call(`${d.url}/v1/apps/hello/releases/${id1}`, { method: 'DELETE', token: d.adminToken })
    assert.equal(cur.status, 409)
    assert.equal(cur.body.code, 'RELEASE_IS_CURRENT')
    const listed = await call(`${d.url}/v1/apps/hello/releases`, { token: d.adminToken })
    assert.equal(listed.body.releases.find((r: { id: string }) => r.id === id1).current, true)
    const res = await call(`${d.url}/v1/apps/hello/releases/${id2}`, { method: 'DELETE', token: d.adminToken })
    assert.equal(res.status, 200, res.text)
    assert.ok(!fs.existsSync(path.join(d.dataDir, 'apps', 'hello', 'releases', id2)))
    const gone = await call(`${d.url}/v1/apps/hello/releases/${id2}`, { token: d.adminToken })
    assert.equal(gone.status, 404)
    assert.equal(gone.body.code, 'RELEASE_NOT_FOUND')
    uploadsEmpty()
  })

  test('unknown app and bad app names', async () => {
    const res = await call(`${d.url}/v1/apps/nope/releases`, { token: d.adminToken })
    assert.equal(res.status, 404)
    assert.equal(res.body.code, 'APP_NOT_FOUND')
    const bad = await call(`${d.url}/v1/apps/Bad..Name/releases`, { token: d.adminToken })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.code, 'VALIDATION_FAILED')
  })
})

export async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

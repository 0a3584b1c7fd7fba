// The data directory's mode is enforced at start: it is all that keeps other local users away from every
// release's Erlang cookie (releases/COOKIE), so a directory that existed before berth must not stay open.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { spawnDaemon, startDaemon, tempDir } from './helpers/daemon.js'

test('a pre-existing 0755 data directory is made 0750 at start (isolation off)', async () => {
  const dataDir = tempDir()
  fs.chmodSync(dataDir, 0o755)
  const d = await startDaemon({ BERTH_DATA_DIR: dataDir, BERTH_APP_ISOLATION: 'off' })
  try {
    assert.equal(fs.statSync(dataDir).mode & 0o777, 0o750)
    assert.equal(fs.statSync(path.join(dataDir, 'uploads')).mode & 0o777, 0o700)
  } finally {
    await d.stop()
  }
})

test('with isolation (root: on by default), 0751: app users pass through to their own gate, and list nothing', async () => {
  const dataDir = tempDir()
  fs.chmodSync(dataDir, 0o755)
  const d = await startDaemon({ BERTH_DATA_DIR: dataDir })
  try {
    assert.equal(fs.statSync(dataDir).mode & 0o777, 0o751)
    assert.equal(fs.statSync(path.join(dataDir, 'apps')).mode & 0o777, 0o751)
    assert.equal(fs.statSync(path.join(dataDir, 'uploads')).mode & 0o777, 0o700)
  } finally {
    await d.stop()
  }
})

test('a 0700 data directory is left as it is (isolation off)', async () => {
  const dataDir = tempDir()
  fs.chmodSync(dataDir, 0o700)
  const d = await startDaemon({ BERTH_DATA_DIR: dataDir, BERTH_APP_ISOLATION: 'off' })
  try {
    assert.equal(fs.statSync(dataDir).mode & 0o777, 0o700)
  } finally {
    await d.stop()
  }
})

test('an open data directory berth cannot chmod: berth refuses to start and names the fix', async (t) => {
  const dataDir = tempDir()
  fs.mkdirSync(path.join(dataDir, 'apps'))
  fs.mkdirSync(path.join(dataDir, 'uploads'))
  fs.chmodSync(dataDir, 0o755)
  // Even root cannot chmod an immutable directory: the stand-in for one berth's user does not own.
  if (spawnSync('chattr', ['+i', dataDir]).status !== 0) {
    fs.rmSync(dataDir, { recursive: true, force: true })
    t.skip('chattr +i is not available here')
    return
  }
  try {
    await assert.rejects(spawnDaemon(dataDir), (err: Error) => {
      assert.match(err.message, /DATA_DIR_EXPOSED|other local users/)
      assert.match(err.message, new RegExp(`chmod 751 ${dataDir}`), 'with isolation on, others keep x only')
      return true
    })
    assert.equal(fs.statSync(dataDir).mode & 0o777, 0o755)
  } finally {
    spawnSync('chattr', ['-i', dataDir])
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
})

// A full disk: the data directory on a small tmpfs. berth refuses before unpacking when the estimate does
// not fit, answers 507 when the disk fills mid-unpack, leaves nothing partial, and recovers once space is freed.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { test } from 'node:test'
import { startDaemon, tempDir } from './helpers/daemon.js'
import { call, upload } from './helpers/http.js'
import { releaseSkeleton, tarBytes, tgz } from './helpers/tar.js'

test('disk full: 507 with nothing partial, and recovery when space is freed', async (t) => {
  const mnt = tempDir('berth-tmpfs-')
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=80m', 'tmpfs', mnt]).status !== 0) {
    fs.rmSync(mnt, { recursive: true, force: true })
    t.skip('cannot mount a tmpfs here (needs root)')
    return
  }
  try {
    const d = await startDaemon({ BERTH_DATA_DIR: path.join(mnt, 'data'), BERTH_MAX_GZIP_RATIO: '2000' })
    try {
      const uploads = path.join(d.dataDir, 'uploads')
      const releases = () => (fs.existsSync(path.join(d.dataDir, 'apps/hello/releases')) ? fs.readdirSync(path.join(d.dataDir, 'apps/hello/releases')) : [])
      // 1 KiB of noise repeated: tiny compressed, 100 MiB unpacked, more than the 80 MiB disk.
      const block = crypto.randomBytes(1024)
      const big = zlib.gzipSync(tarBytes([...releaseSkeleton(), { path: 'lib/blob', body: Buffer.concat(Array(100 * 1024).fill(block)) }]))
      const full = await upload(d.url, 'hello', big, { token: d.adminToken })
      assert.equal(full.status, 507, full.text)
      assert.equal(full.body.code, 'INSUFFICIENT_STORAGE')
      assert.deepEqual(fs.readdirSync(uploads), [])
      assert.deepEqual(releases(), [])
      // The same with many small files, which are written on another thread than the large one above.
      const smalls = Array.from({ length: 600 }, (_, i) => ({ path: `lib/many/f${i}`, body: Buffer.concat(Array(200).fill(block)) }))
      const fullSmall = await upload(d.url, 'hello', zlib.gzipSync(tarBytes([...releaseSkeleton(), ...smalls])), { token: d.adminToken })
      assert.equal(fullSmall.status, 507, fullSmall.text)
      assert.equal(fullSmall.body.code, 'INSUFFICIENT_STORAGE')
      assert.deepEqual(fs.readdirSync(uploads), [])
      assert.deepEqual(releases(), [])
      // Something else fills the disk: refused before a byte is unpacked, with the numbers in the sentence.
      const filler = path.join(mnt, 'filler')
      fs.writeFileSync(filler, Buffer.alloc(30 * 1024 * 1024))
      const pre = await upload(d.url, 'hello', tgz(releaseSkeleton()), { token: d.adminToken })
      assert.equal(pre.status, 507, pre.text)
      assert.match(pre.body.detail, /MiB free; this upload needs about \d+ MiB/)
      fs.rmSync(filler)
      const ok = await upload(d.url, 'hello', tgz(releaseSkeleton()), { token: d.adminToken })
      assert.equal(ok.status, 201, ok.text)
      assert.deepEqual(fs.readdirSync(uploads), [])
      assert.equal((await call(`${d.url}/healthz`)).status, 200)
    } finally {
      await d.stop()
    }
  } finally {
    const um = spawnSync('umount', [mnt])
    if (um.status !== 0) spawnSync('umount', ['-l', mnt])
    fs.rmSync(mnt, { recursive: true, force: true })
  }
})

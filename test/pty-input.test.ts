// Terminal input written to the pty on receipt (src/sessions/pty-input.ts), with real ptys: what the kernel
// cannot take while the program does not read is delivered later, whole and in order; once node-pty has
// closed the fd, input goes nowhere, not to the file that now has the fd's number.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import pty from 'node-pty'
import { ptyInput } from '../src/sessions/pty-input.js'
import { sleep } from '../src/supervision/proc.js'
import { tempDir } from './helpers/daemon.js'

/** Output of the pty until pred holds (or the program ends). */
function until(p: pty.IPty, pred: (s: string) => boolean): Promise<string> {
  let acc = ''
  return new Promise((resolve) => {
    const data = p.onData((b) => {
      acc += Buffer.from(b as unknown as Buffer).toString('latin1')
      if (pred(acc)) {
        data.dispose()
        resolve(acc)
      }
    })
    p.onExit(() => resolve(acc))
  })
}

test('input the program does not read yet is queued and arrives whole and in order', async (t) => {
  const dir = tempDir()
  const go = path.join(dir, 'go')
  // Raw mode, no echo; nothing is read until the test creates `go`, so the kernel's buffer fills up.
  const script = `stty raw -echo; echo READY; while [ ! -e "${go}" ]; do sleep 0.02; done; head -c 1000000 | sha256sum`
  const p = pty.spawn('sh', ['-c', script], { cols: 80, rows: 24, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: null })
  t.after(() => {
    p.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  })
  await until(p, (s) => s.includes('READY'))
  const input = ptyInput(p)
  assert.ok(input, 'node-pty internals as expected (else berth falls back to pty.write)')
  const data = Buffer.from(crypto.randomBytes(500_000).toString('hex')) // 1,000,000 printable bytes
  const answer = until(p, (s) => /[0-9a-f]{64}/.test(s))
  for (let i = 0; i < data.length; i += 10_000) input.write(data.subarray(i, i + 10_000))
  assert.ok(input.pending > 0, 'the kernel did not take everything at once, so the queue is exercised')
  fs.writeFileSync(go, '')
  const out = await answer
  assert.equal(/[0-9a-f]{64}/.exec(out)?.[0], crypto.createHash('sha256').update(data).digest('hex'))
  assert.equal(input.pending, 0)
  input.close()
})

test('after node-pty closed the fd, input is dropped rather than written to whatever reuses its number', async (t) => {
  const dir = tempDir()
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const p = pty.spawn('sh', ['-c', 'sleep 30'], { cols: 80, rows: 24, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: null })
  const input = ptyInput(p)
  assert.ok(input)
  const { fd } = p as unknown as { fd: number }
  const exited = new Promise((resolve) => p.onExit(resolve))
  ;(p as unknown as { destroy(): void }).destroy()
  // The lowest free number: the pty's, freed just now (the point of this test).
  const file = path.join(dir, 'victim')
  const other = fs.openSync(file, 'w')
  try {
    assert.equal(other, fd, 'the file got the pty fd number')
    input.write('rm -rf /\r')
    assert.equal(fs.readFileSync(file, 'utf8'), '')
  } finally {
    fs.closeSync(other)
  }
  p.kill('SIGKILL')
  await Promise.race([exited, sleep(2000)])
})

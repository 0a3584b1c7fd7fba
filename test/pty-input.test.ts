// Terminal input written to the pty on receipt (src/sessions/pty-input.ts), with real ptys: what the kernel
// cannot take while the program does not read is delivered later, whole and in order, with backpressure up to
// the websocket; once node-pty has closed the fd, input goes nowhere, not to the file that now has its number.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import type { AddressInfo } from 'node:net'
import pty from 'node-pty'
import { WebSocket, WebSocketServer } from 'ws'
import type { TokenInfo } from '../src/auth/tokens.js'
import { problem } from '../src/errors.js'
import { serveTerminal } from '../src/http/terminal-socket.js'
import type { Session } from '../src/sessions/manager.js'
import { INPUT_HIGH_WATER_MARK, ptyInput } from '../src/sessions/pty-input.js'
import { TerminalSession } from '../src/sessions/terminal.js'
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

/**
 * A pty running a raw-mode program that reads nothing until `open()` is called, then hashes the first `bytes`
 * of its input: until then the kernel's buffer fills up and berth's queue is exercised. Killed after the test.
 */
async function gatedReader(t: { after(fn: () => void): void }, bytes: number): Promise<{ p: pty.IPty; open(): void }> {
  const dir = tempDir()
  const go = path.join(dir, 'go')
  const script = `stty raw -echo; echo READY; while [ ! -e "${go}" ]; do sleep 0.02; done; head -c ${bytes} | sha256sum`
  const p = pty.spawn('sh', ['-c', script], { cols: 80, rows: 24, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: null })
  t.after(() => {
    p.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  })
  await until(p, (s) => s.includes('READY'))
  return { p, open: () => fs.writeFileSync(go, '') }
}

test('input the program does not read yet is queued and arrives whole and in order', async (t) => {
  const { p, open } = await gatedReader(t, 1_000_000)
  const input = ptyInput(p)
  assert.ok(input, 'node-pty internals as expected (else berth falls back to pty.write)')
  const data = Buffer.from(crypto.randomBytes(500_000).toString('hex')) // 1,000,000 printable bytes
  const answer = until(p, (s) => /[0-9a-f]{64}/.test(s))
  for (let i = 0; i < data.length; i += 10_000) input.write(data.subarray(i, i + 10_000))
  assert.ok(input.pending > 0, 'the kernel did not take everything at once, so the queue is exercised')
  open()
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

test('write() answers false over the input limit and onDrain fires once the program has read it all', async (t) => {
  const { p, open } = await gatedReader(t, 400_000)
  let drains = 0
  const input = ptyInput(p, () => drains++)
  assert.ok(input)
  const data = Buffer.from(crypto.randomBytes(200_000).toString('hex'))
  const answers: boolean[] = []
  for (let i = 0; i < data.length; i += 8_000) answers.push(input.write(data.subarray(i, i + 8_000)))
  const refused = answers.indexOf(false)
  assert.ok(refused > 0, 'accepted at first, refused once over the limit')
  assert.ok(answers.slice(refused).every((a) => !a), 'refused until drained')
  assert.ok(input.pending > INPUT_HIGH_WATER_MARK)
  const answer = until(p, (s) => /[0-9a-f]{64}/.test(s))
  open()
  assert.equal(/[0-9a-f]{64}/.exec(await answer)?.[0], crypto.createHash('sha256').update(data).digest('hex'), 'every byte, in order')
  assert.equal(drains, 1)
  assert.equal(input.write('x'), true)
  input.close()
})

test('through the websocket: berth stops reading a client that sends faster than the program reads, and resumes', async (t) => {
  const dir = tempDir()
  const go = path.join(dir, 'go')
  const script = `stty raw -echo; echo READY; while [ ! -e "${go}" ]; do sleep 0.02; done; head -c 2000000 | sha256sum; sleep 30`
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => wss.once('listening', resolve))
  let server: WebSocket | null = null
  let term: TerminalSession | null = null
  t.after(async () => {
    await term?.close('test over')
    for (const c of wss.clients) c.terminate()
    await new Promise((resolve) => wss.close(resolve))
    fs.rmSync(dir, { recursive: true, force: true })
  })
  wss.on('connection', (socket) => {
    server = socket
    serveTerminal(socket, {
      token: { name: 't' } as unknown as TokenInfo,
      authorize: () => {
        throw problem('UNAUTHORIZED', 'not used: the token is given')
      },
      logError: () => {},
      open: async (_token, size, sink) => {
        term = new TerminalSession({ file: 'sh', args: ['-c', script], cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, ...size, sink, idleMs: 0 })
        const s = term
        return { input: (d: Buffer) => s.input(d), drained: () => s.drained(), close: (r?: string) => s.close(r), resize: () => {} } as unknown as Session
      },
    })
  })
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`)
  let out = ''
  client.on('message', (d, isBinary) => {
    if (isBinary) out += Buffer.from(d as Buffer).toString('latin1')
  })
  await new Promise((resolve) => client.once('open', resolve))
  while (!out.includes('READY')) await sleep(20)
  const data = Buffer.from(crypto.randomBytes(1_000_000).toString('hex'))
  for (let i = 0; i < data.length; i += 16_000) client.send(data.subarray(i, i + 16_000))
  let paused = false
  for (let i = 0; i < 100 && !paused; i++) {
    paused = (server as WebSocket | null)?.isPaused === true
    if (!paused) await sleep(20)
  }
  assert.ok(paused, 'the server side stopped reading the client')
  fs.writeFileSync(go, '')
  while (!/[0-9a-f]{64}/.test(out)) await sleep(20)
  assert.equal(/[0-9a-f]{64}/.exec(out)?.[0], crypto.createHash('sha256').update(data).digest('hex'), 'all 2 MB arrived, in order')
  assert.equal((server as WebSocket | null)?.isPaused, false, 'and reading resumed')
  client.close()
})

// No command BEAM outlives berth: a migration's eval dies with a kill -9 of berth (parent-death signal), and
// the ledger lets a restarted berth end what is left, touching only processes it can prove are its own.

import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { describe, test } from 'node:test'
import { CommandLedger } from '../src/supervision/ledger.js'
import { isSameProcess, pdeathsigWrapper, procInfo, sleep, waitUntil } from '../src/supervision/proc.js'
import { freePort, killProcessesUnder, processesUnder, spawnDaemon, tempDir } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'

const json = { 'content-type': 'application/json' }

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn().catch(() => null)
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(200)
  }
}

describe('orphaned commands', () => {
  test('kill -9 of berth during a migration leaves no eval BEAM, now or after the restart', async () => {
    const dataDir = tempDir()
    const epmd = String(await freePort())
    const port = await freePort()
    let daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd })
    try {
      const token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
      assert.equal((await call(`${daemon.url}/v1/apps/hello/env`, { method: 'PUT', token, headers: json, body: JSON.stringify({ PORT: String(port) }) })).status, 200)
      assert.equal((await call(`${daemon.url}/v1/apps/hello/settings`, { method: 'PUT', token, headers: json, body: JSON.stringify({ migrateTimeoutMs: 600_000 }) })).status, 200)
      const up = await upload(daemon.url, 'hello', fs.readFileSync((await fixture('migrate_hang')).tarball), { token })
      assert.equal(up.status, 201, up.text)
      const releaseDir = path.join(dataDir, 'apps', 'hello', 'releases', up.body.id)
      const started = await call(`${daemon.url}/v1/apps/hello/deployments`, { method: 'POST', token, headers: json, body: JSON.stringify({ release: up.body.id }) })
      assert.equal(started.status, 202, started.text)
      const evalBeam = () => processesUnder(releaseDir).filter((p) => p.cmd.includes('beam.smp') && p.cmd.includes('--eval'))
      await until('the migration BEAM', async () => evalBeam().length > 0, 60_000)
      assert.equal(fs.readdirSync(path.join(dataDir, 'run')).length, 1, 'the running eval is on the ledger')
      await daemon.stop('SIGKILL')
      if (pdeathsigWrapper()) {
        const gone = await waitUntil(() => evalBeam().length === 0, 2000, 50)
        assert.ok(gone, `the eval BEAM died with berth: ${JSON.stringify(evalBeam())}`)
      }
      daemon = await spawnDaemon(dataDir, { BERTH_EPMD_PORT: epmd })
      assert.deepEqual(processesUnder(releaseDir), [], 'nothing from the migration runs after the restart')
      assert.deepEqual(fs.readdirSync(path.join(dataDir, 'run')), [], 'the ledger is clear')
      const dep = (await call(`${daemon.url}/v1/apps/hello/deployments/${started.body.id}`, { token })).body
      assert.equal(dep.state, 'failed')
      assert.equal(dep.reason, 'agent restarted during migrating')
    } finally {
      await daemon.stop('SIGKILL')
      killProcessesUnder(dataDir)
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  })

  test('the ledger sweep ends what a dead berth left, and nothing else', async () => {
    const dir = tempDir('berth-ledger-')
    const procs: number[] = []
    const sleeper = () => {
      const c = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' })
      c.unref()
      procs.push(c.pid!)
      return c.pid!
    }
    try {
      // A berth that is gone: a process that has exited (its pid is free or someone else's now).
      const gone = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim()
      const deadOwner = { pid: Number(gone), startTicks: 1 }
      const write = (pid: number, startTicks: number, owner: { pid: number; startTicks: number }) =>
        fs.writeFileSync(path.join(dir, `cmd-${pid}.json`), JSON.stringify({ pid, startTicks, owner, app: 'hello', command: 'hello eval', startedAt: new Date().toISOString() }))
      const orphan = sleeper()
      const reused = sleeper()
      const live = sleeper()
      await waitUntil(() => [orphan, reused, live].every((p) => procInfo(p) !== null), 2000, 20)
      write(orphan, procInfo(orphan)!.startTicks, deadOwner)
      // Same pid, other start time: the recorded process is gone and this one merely reuses its number.
      write(reused, procInfo(reused)!.startTicks + 1, deadOwner)
      const ledger = new CommandLedger(dir, pino({ level: 'silent' }))
      // Recorded by a live berth (this process): its own business.
      ledger.started(live, 'hello', 'hello eval')
      fs.writeFileSync(path.join(dir, 'cmd-7.json'), '{"pid": 7')
      assert.equal(ledger.sweep(), 1)
      assert.ok(await waitUntil(() => !isSameProcess(orphan, null), 2000, 20), 'the orphan is ended')
      assert.ok(isSameProcess(reused, null), 'a reused pid is left alone')
      assert.ok(isSameProcess(live, null), "a live berth's command is left alone")
      assert.deepEqual(fs.readdirSync(dir), [`cmd-${live}.json`])
      ledger.ended(live)
      assert.deepEqual(fs.readdirSync(dir), [])
    } finally {
      for (const p of procs) {
        try {
          process.kill(p, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

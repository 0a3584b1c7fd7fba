// The process layer on its own: a tree is signalled to its last descendant, a BEAM is found under its
// run_erl by name, and a forced stop escalates from SIGTERM to SIGKILL only when the first is ignored.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { descendants, isSameProcess, procInfo, waitUntil } from '../src/process/proc.js'
import { escalateStop, killTree, signalTree } from '../src/process/run-erl.js'

function shellTree(script: string): { pid: number; startTicks: number } {
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' })
  child.unref()
  return { pid: child.pid!, startTicks: procInfo(child.pid!)?.startTicks ?? 0 }
}

test('killTree ends a process and every descendant', async () => {
  const root = shellTree('sleep 60 & sleep 60 & wait')
  assert.ok(await waitUntil(() => descendants(root.pid).length >= 2, 5000, 20))
  const tree = descendants(root.pid)
  killTree(root.pid)
  assert.ok(await waitUntil(() => !isSameProcess(root.pid, root.startTicks) && tree.every((p) => !isSameProcess(p.pid, p.startTicks)), 5000, 20))
})

test('escalateStop sends SIGKILL only to a tree that ignored SIGTERM', async () => {
  const polite = shellTree('sleep 60')
  const sent: string[] = []
  const gone = (p: { pid: number; startTicks: number }) => (ms: number) => waitUntil(() => !isSameProcess(p.pid, p.startTicks), ms, 20)
  assert.equal(await escalateStop(polite.pid, gone(polite), (sig) => sent.push(sig)), 'SIGTERM')
  assert.deepEqual(sent, ['SIGTERM'])
  const stubborn = shellTree("trap '' TERM; while :; do sleep 0.05; done")
  // A sleep under the shell means it has run its trap: signalled sooner, the shell dies of the SIGTERM.
  assert.ok(await waitUntil(() => descendants(stubborn.pid).length >= 1, 5000, 20))
  sent.length = 0
  assert.equal(await escalateStop(stubborn.pid, gone(stubborn), (sig) => sent.push(sig)), 'SIGKILL')
  assert.deepEqual(sent, ['SIGTERM', 'SIGKILL'])
})

test('signalTree answers the pids it signalled, the root first', async () => {
  const root = shellTree('sleep 60 & wait')
  assert.ok(await waitUntil(() => descendants(root.pid).length >= 1, 5000, 20))
  const pids = signalTree(root.pid, 'SIGKILL')
  assert.equal(pids[0], root.pid)
  assert.ok(pids.length >= 2)
  assert.ok(await waitUntil(() => !isSameProcess(root.pid, root.startTicks), 5000, 20))
})

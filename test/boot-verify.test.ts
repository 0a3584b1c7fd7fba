// "Verified" means the release booted (issue 23): a node that answers `pid` while Application.start is still
// running is not verified, whatever the stable window, even with both cores busy; a slow healthy boot is,
// and says how long it took; restarts and the proxy's second instance wait the same way. A failed boot's
// output is that boot's alone, and the logs API marks where each boot begins.

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import { after, before, test } from 'node:test'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture } from './helpers/fixtures.js'
import { call, upload } from './helpers/http.js'

let d: TestDaemon
let port: number
const ids: Record<string, string> = {}
const busy: ChildProcess[] = []

async function api(method: string, pathname: string, body?: unknown) {
  return call(`${d.url}/v1/apps/hello${pathname}`, { method, token: d.adminToken, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
}

const deploy = (release: string) => api('POST', '/deployments?wait=true', { release })
const env = (extra: Record<string, string> = {}) => api('PUT', '/env', { PORT: String(port), ...extra })
const settings = (s: Record<string, unknown>) => api('PUT', '/settings', s)
const serving = async (at = port) => (await fetch(`http://127.0.0.1:${at}/`)).text()

/** Both cores busy for the length of `fn`: two processes spinning, killed (and waited for) after. */
async function underLoad<T>(fn: () => Promise<T>): Promise<T> {
  const spinners = [0, 1].map(() => spawn(process.execPath, ['-e', 'while (true) {}'], { stdio: 'ignore' }))
  busy.push(...spinners)
  await Promise.all(spinners.map((c) => new Promise((resolve) => c.once('spawn', resolve))))
  try {
    return await fn()
  } finally {
    await Promise.all(spinners.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : (c.once('exit', resolve), c.kill('SIGKILL'))))))
  }
}

before(async () => {
  d = await startDaemon()
  port = await freePort()
  assert.equal((await env()).status, 200)
  // No health URL: booted must come from the node itself, not from an HTTP check that happens to fail.
  assert.equal((await settings({ stableWindowMs: 0, bootTimeoutMs: 60_000 })).status, 200)
  for (const name of ['v1', 'slow_raise'] as const) {
    const res = await upload(d.url, 'hello', fs.readFileSync((await fixture(name)).tarball), { token: d.adminToken })
    assert.equal(res.status, 201, res.text)
    ids[name] = res.body.id
  }
})

after(async () => {
  for (const c of busy) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [], 'no BEAM, epmd or run_erl is left behind')
})

test('a slow healthy boot is verified once it has booted, and the verification says how long the boot took', async () => {
  await env({ HELLO_BOOT_DELAY_MS: '3000' })
  const res = await deploy(ids.v1!)
  assert.equal(res.body.state, 'succeeded', res.text)
  const verifying = res.body.steps.find((s: { name: string }) => s.name === 'verifying')
  const took = Number(/booted in (\d+) ms: init has started and the applications of releases\/[^/]+\/hello\.rel run \([^)]*\bhello\b/.exec(verifying.output)?.[1])
  assert.ok(took >= 3000, verifying.output)
  // Verified means booted: the application serves the moment the deployment is reported succeeded.
  assert.equal(await serving(), 'hello 0.1.0\n')
})

test('a restart is verified only once the node has booted', async () => {
  const res = await api('POST', '/restart?wait=true')
  assert.equal(res.body.state, 'succeeded', res.text)
  assert.match(res.body.steps.find((s: { name: string }) => s.name === 'verifying').output, /booted in \d+ ms/)
  assert.equal(await serving(), 'hello 0.1.0\n')
  await env()
})

for (const stableWindowMs of [0, 500]) {
  test(`a release that answers pid for 4 s and then fails Application.start is never verified (stable window ${stableWindowMs} ms, both cores busy)`, async () => {
    assert.equal((await settings({ stableWindowMs })).status, 200)
    const res = await underLoad(() => deploy(ids.slow_raise!))
    assert.equal(res.body.code, 'DEPLOYMENT_ROLLED_BACK', res.text)
    const dep = res.body.deployment
    assert.equal(dep.state, 'rolled_back')
    const verifying = dep.steps.find((s: { name: string }) => s.name === 'verifying')
    assert.equal(verifying.state, 'failed')
    assert.equal(dep.reasonCode, 'NODE_EXITED', JSON.stringify(dep))
    assert.match(dep.reason, /exited during boot/)
    assert.match(verifying.output, /Application\.start failed: slow_raise/)
    assert.equal(dep.steps.at(-1).name, 'rollback')
    assert.equal(dep.steps.at(-1).state, 'ok')
    assert.equal(await serving(), 'hello 0.1.0\n', 'v1 serves again')
  })
}

test("a failed boot's output is that boot's alone, and the logs API marks each boot", async () => {
  await settings({ stableWindowMs: 0 })
  const outputs: string[] = []
  for (const error of ['first-boot-error', 'second-boot-error']) {
    await env({ HELLO_BOOT_ERROR: error, HELLO_BOOT_DELAY_MS: '500' })
    const res = await deploy(ids.slow_raise!)
    assert.equal(res.body.code, 'DEPLOYMENT_ROLLED_BACK', res.text)
    outputs.push(res.body.deployment.steps.find((s: { name: string }) => s.name === 'verifying').output)
  }
  await env()
  assert.match(outputs[0]!, /first-boot-error/)
  assert.match(outputs[1]!, /this boot's output \(boot [0-9a-f]+\), last \d+ lines of the node's console log:\n[^]*second-boot-error/)
  assert.doesNotMatch(outputs[1]!, /first-boot-error/, "the first boot's error is not shown as the second's")
  assert.doesNotMatch(outputs[1]!, /hello 0\.1\.0/, "nor v1's boot between them")

  // JSON lines: each boot starts with an entry carrying its id and time; the lines after it are that boot's.
  const logs = await call(`${d.url}/v1/apps/hello/logs?format=json&lines=2000`, { token: d.adminToken })
  assert.equal(logs.status, 200)
  const entries = logs.text.trim().split('\n').map((l) => JSON.parse(l) as { at: string; line: string; clock: string; boot?: string })
  const boots = entries.flatMap((e, i) => (e.boot ? [i] : []))
  assert.ok(boots.length >= 6, `every start is marked (${boots.length})`)
  for (const i of boots) {
    assert.equal(entries[i]!.clock, 'line')
    assert.match(entries[i]!.line, new RegExp(`^--- boot ${entries[i]!.boot} of \\S+ at ${entries[i]!.at} ---$`))
  }
  // The boots: …, slow_raise (first error), v1 (the rollback), slow_raise (second error), v1 (the rollback).
  const last = entries.slice(boots.at(-2)! + 1, boots.at(-1))
  assert.ok(last.some((e) => e.line.includes('second-boot-error')) && !last.some((e) => e.line.includes('first-boot-error')), JSON.stringify(last))
  assert.ok(entries.every((e) => !Number.isNaN(Date.parse(e.at))))
})

test("with the proxy, the second instance of a release that fails Application.start is never verified and the old one serves", async () => {
  const listen = await freePort()
  assert.equal((await settings({ stableWindowMs: 0, proxy: { listen: `127.0.0.1:${listen}`, drainTimeoutMs: 500 } })).status, 200)
  const first = await deploy(ids.v1!)
  assert.equal(first.body.state, 'succeeded', first.text)
  const res = await underLoad(() => deploy(ids.slow_raise!))
  assert.equal(res.body.code, 'DEPLOYMENT_ROLLED_BACK', res.text)
  const verifying = res.body.deployment.steps.find((s: { name: string }) => s.name === 'verifying')
  assert.equal(verifying.state, 'failed')
  assert.match(verifying.output, /Application\.start failed/)
  assert.equal(await serving(listen), 'hello 0.1.0\n')
  assert.equal((await settings({ proxy: null })).status, 200)
  assert.equal((await api('POST', '/restart?wait=true')).body.state, 'succeeded')
})

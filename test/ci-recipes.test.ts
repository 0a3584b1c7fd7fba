// The CI recipes in docs/ci deploy for real: the curl command is taken from each recipe as written and run
// with bash against a live berth with the fixture release; a release that gets rolled back fails the job.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import YAML from 'yaml'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture, REPO } from './helpers/fixtures.js'
import { call } from './helpers/http.js'

let d: TestDaemon
let port: number
const json = { 'content-type': 'application/json' }
const projects: string[] = []

/**
 * The shell of the recipe's deploy step exactly as written: from the first line that reads _build (which
 * tarball to send) to the end of the step, the curl invocation.
 */
function deployShellOf(recipe: string): string {
  const doc = YAML.parse(fs.readFileSync(path.join(REPO, 'docs', 'ci', recipe), 'utf8'))
  const lines: string[] = recipe.startsWith('github')
    ? Object.values(doc.jobs as Record<string, { steps: { run?: string }[] }>).flatMap((j) => j.steps.find((s) => s.run?.includes('curl '))?.run?.split('\n') ?? [])
    : Object.values(doc as Record<string, { script?: string[] }>).flatMap((j) => j.script ?? [])
  const from = lines.findIndex((l) => l.includes('_build'))
  assert.ok(from >= 0 && lines.slice(from).some((l) => l.includes('curl ')), `${recipe} picks a tarball from _build and deploys it with curl`)
  return lines.slice(from).join('\n')
}

/**
 * A project directory as `mix release` leaves it on a CI runner with a cached _build: the release just
 * assembled (`rel/hello`, its start_erl.data naming `version`) with its tarball, next to the tarballs of
 * earlier builds. The older ones are releases that crash on boot: sending one of them fails the deploy.
 */
async function project(version: string, tarball: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ci-project-'))
  const prod = path.join(dir, '_build', 'prod')
  fs.mkdirSync(path.join(prod, 'rel', 'hello', 'releases'), { recursive: true })
  fs.writeFileSync(path.join(prod, 'rel', 'hello', 'releases', 'start_erl.data'), `13.1.5 ${version}`)
  const stale = (await fixture('crash_on_boot')).tarball
  for (const old of ['0.0.1', '0.0.2', '0.0.3', '0.0.9', '0.0.10']) fs.copyFileSync(stale, path.join(prod, `hello-${old}.tar.gz`))
  fs.copyFileSync(tarball, path.join(prod, `hello-${version}.tar.gz`))
  projects.push(dir)
  return dir
}

/** Runs asynchronously: the berth under test lives in this process and must keep serving. */
function runRecipe(recipe: string, cwd: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-euo', 'pipefail', '-c', deployShellOf(recipe)], {
    cwd,
    env: { ...process.env, APP: 'hello', BERTH_URL: d.url, BERTH_TOKEN: d.token(`ci-${recipe}-${Date.now()}`, ['deploy'], ['hello']) },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c) => (stdout += c))
  child.stderr.on('data', (c) => (stderr += c))
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
  return new Promise((resolve) => child.on('close', (status) => {
    clearTimeout(timer)
    resolve({ status, stdout, stderr })
  }))
}

before(async () => {
  d = await startDaemon()
  port = await freePort()
  await call(`${d.url}/v1/apps/hello/env`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ PORT: String(port) }) })
  await call(`${d.url}/v1/apps/hello/settings`, { method: 'PUT', token: d.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 500 }) })
})
after(async () => {
  for (const p of projects) fs.rmSync(p, { recursive: true, force: true })
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

test('the GitHub Actions recipe deploys the tarball just built, among the older ones of a cached _build', async () => {
  const r = await runRecipe('github-actions.yml', await project('0.1.0', (await fixture('v1')).tarball))
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.equal(JSON.parse(r.stdout).deployment.state, 'succeeded')
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.1.0\n')
})

test('the GitLab CI recipe deploys the tarball just built, among the older ones of a cached _build', async () => {
  const r = await runRecipe('gitlab-ci.yml', await project('0.2.0', (await fixture('v2')).tarball))
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.2.0\n')
})

test('a deployment that is rolled back fails the job, with the reason printed', async () => {
  // A release that never finishes booting (Application.start raises after 4 s), so the failure is the node's
  // fact, not a race between its crash and the 500 ms stable window: with crash_on_boot, which halts 0.5 s
  // after a complete boot, a loaded machine could see the window pass first and the job succeed.
  const r = await runRecipe('github-actions.yml', await project('0.3.2', (await fixture('slow_raise')).tarball))
  assert.notEqual(r.status, 0)
  const problem = JSON.parse(r.stdout)
  assert.equal(problem.code, 'DEPLOYMENT_ROLLED_BACK')
  assert.match(problem.detail, /rolled back/)
  assert.equal(problem.deployment.reasonCode, 'NODE_EXITED')
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.2.0\n')
})

/** The fleet recipes' shell as written: from the line that reads _build to the `berth fleet deploy` line. */
function fleetShellOf(recipe: string): string {
  const doc = YAML.parse(fs.readFileSync(path.join(REPO, 'docs', 'ci', recipe), 'utf8'))
  const lines: string[] = recipe.startsWith('github')
    ? Object.values(doc.jobs as Record<string, { steps: { run?: string }[] }>).flatMap((j) => j.steps.find((s) => s.run?.includes('berth fleet deploy'))?.run?.split('\n') ?? [])
    : Object.values(doc as Record<string, { script?: string[] }>).flatMap((j) => (j.script?.some((l) => l.includes('berth fleet deploy')) ? j.script : []))
  const from = lines.findIndex((l) => l.includes('_build'))
  assert.ok(from >= 0 && lines.slice(from).some((l) => l.includes('berth fleet deploy')), `${recipe} picks a tarball from _build and runs berth fleet deploy`)
  return lines.slice(from).join('\n')
}

test('the fleet recipes (GitHub Actions, GitLab CI) roll the tarball just built over two hosts with berth fleet deploy', async () => {
  const d2 = await startDaemon()
  try {
    const port2 = await freePort()
    await call(`${d2.url}/v1/apps/hello/env`, { method: 'PUT', token: d2.adminToken, headers: json, body: JSON.stringify({ PORT: String(port2) }) })
    await call(`${d2.url}/v1/apps/hello/settings`, { method: 'PUT', token: d2.adminToken, headers: json, body: JSON.stringify({ stableWindowMs: 500 }) })
    // `berth` on PATH is this checkout, as `npm install --global` of it would give.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ci-bin-'))
    projects.push(bin)
    fs.writeFileSync(path.join(bin, 'berth'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(REPO, 'bin', 'berth.js')}" "$@"\n`, { mode: 0o755 })
    const tokens = { BERTH_TOKEN_WEB1: d.token(`fleet-ci-${Date.now()}`, ['read', 'deploy', 'operate'], ['hello']), BERTH_TOKEN_WEB2: d2.token('fleet-ci', ['read', 'deploy', 'operate'], ['hello']) }
    for (const [recipe, fx] of [['github-actions-fleet.yml', 'v1'], ['gitlab-ci-fleet.yml', 'v2']] as const) {
      const f = await fixture(fx)
      const dir = await project(f.version, f.tarball)
      fs.mkdirSync(path.join(dir, 'deploy'))
      fs.writeFileSync(path.join(dir, 'deploy', 'fleet.yml'), `app: hello\nhosts:\n  - { name: web-1, url: "${d.url}", tokenEnv: BERTH_TOKEN_WEB1 }\n  - { name: web-2, url: "${d2.url}", tokenEnv: BERTH_TOKEN_WEB2 }\n`)
      const child = spawn('bash', ['-euo', 'pipefail', '-c', fleetShellOf(recipe)], { cwd: dir, env: { ...process.env, ...tokens, APP: 'hello', PATH: `${bin}:${process.env.PATH}` } })
      let out = ''
      child.stdout.on('data', (c) => (out += c))
      child.stderr.on('data', (c) => (out += c))
      const status = await new Promise<number | null>((resolve) => child.on('close', resolve))
      assert.equal(status, 0, `${recipe}: ${out}`)
      assert.match(out, /succeeded on every host/)
      for (const p of [port, port2]) assert.equal(await (await fetch(`http://127.0.0.1:${p}/`)).text(), `hello ${f.version}\n`)
      for (const t of Object.values(tokens)) assert.ok(!out.includes(t), 'no token in the job log')
    }
  } finally {
    await d2.stop()
    assert.deepEqual(processesUnder(d2.dataDir), [])
  }
})

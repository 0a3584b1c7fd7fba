// The CI recipes in docs/ci deploy for real: the curl command is taken from each recipe as written and run
// with bash against a live berth with the fixture release; a release that gets rolled back fails the job.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import YAML from 'yaml'
import { freePort, processesUnder, startDaemon, type TestDaemon } from './helpers/daemon.js'
import { fixture, REPO } from './helpers/fixtures.js'
import { call } from './helpers/http.js'

let d: TestDaemon
let port: number
const json = { 'content-type': 'application/json' }

/** The shell text from the curl invocation to the end of its step, exactly as the recipe has it. */
function curlOf(recipe: string): string {
  const doc = YAML.parse(fs.readFileSync(path.join(REPO, 'docs', 'ci', recipe), 'utf8'))
  const scripts: string[] = recipe.startsWith('github')
    ? Object.values(doc.jobs as Record<string, { steps: { run?: string }[] }>).flatMap((j) => j.steps.map((s) => s.run ?? ''))
    : Object.values(doc as Record<string, { script?: string[] }>).flatMap((j) => j.script ?? [])
  const step = scripts.find((s) => s.includes('curl '))
  assert.ok(step, `${recipe} has a curl step`)
  return step!.slice(step!.indexOf('curl '))
}

/** Runs asynchronously: the berth under test lives in this process and must keep serving. */
function runRecipe(recipe: string, tarball: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-euo', 'pipefail', '-c', curlOf(recipe)], {
    env: { ...process.env, TARBALL: tarball, APP: 'hello', BERTH_URL: d.url, BERTH_TOKEN: d.token(`ci-${recipe}-${Date.now()}`, ['deploy'], ['hello']) },
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
  await d.stop()
  assert.deepEqual(processesUnder(d.dataDir), [])
})

test('the GitHub Actions recipe deploys the fixture release', async () => {
  const r = await runRecipe('github-actions.yml', (await fixture('v1')).tarball)
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.equal(JSON.parse(r.stdout).deployment.state, 'succeeded')
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.1.0\n')
})

test('the GitLab CI recipe deploys the fixture release', async () => {
  const r = await runRecipe('gitlab-ci.yml', (await fixture('v2')).tarball)
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.2.0\n')
})

test('a deployment that is rolled back fails the job, with the reason printed', async () => {
  const r = await runRecipe('github-actions.yml', (await fixture('crash_on_boot')).tarball)
  assert.notEqual(r.status, 0)
  const problem = JSON.parse(r.stdout)
  assert.equal(problem.code, 'DEPLOYMENT_ROLLED_BACK')
  assert.match(problem.detail, /rolled back/)
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello 0.2.0\n')
})

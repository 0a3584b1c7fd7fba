#!/usr/bin/env node
// The whole test suite, from a fresh machine: installs what the tests need (Elixir, rebar3 and Chromium via
// apt-get when missing), compiles, builds each fixture release once, then runs every test file with node:test.

import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: REPO, ...opts })
  if (r.status !== 0) {
    console.error(`test setup: ${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
    process.exit(r.status || 1)
  }
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

function aptInstall(packages) {
  if (process.getuid?.() !== 0) {
    console.error(`test setup: ${packages.join(' ')} missing and not root; install them with apt-get`)
    process.exit(1)
  }
  run('apt-get', ['update', '-qq'])
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
}

const missing = []
if (!have('mix')) missing.push('elixir', 'erlang-dev')
// The relx fixture release is built with `rebar3 as prod tar`.
if (!have('rebar3')) missing.push('rebar3')
// The web terminal test drives Debian's Chromium with playwright-core (no browser download).
if (!fs.existsSync('/usr/bin/chromium')) missing.push('chromium')
// The proxy setting (zero-downtime deploys) runs Debian's haproxy in front of the app.
if (!fs.existsSync('/usr/sbin/haproxy')) missing.push('haproxy')
// The edge's ACME tests run a real ACME server (pebble, with pebble-challtestsrv as its DNS); its certificate
// tests make CAs and leaves with openssl and check them with curl --resolve, as an operator would.
if (!have('pebble') || !have('pebble-challtestsrv')) missing.push('pebble')
if (!have('openssl')) missing.push('openssl')
if (!have('curl')) missing.push('curl')
if (missing.length > 0) {
  console.log(`test setup: installing ${missing.join(' ')} (apt-get)`)
  aptInstall(missing)
}
if (!fs.existsSync(path.join(REPO, 'node_modules'))) run('npm', ['ci'])
run(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'])
// bin/berth.js runs the bundle of what tsc just wrote.
run(process.execPath, [path.join(REPO, 'scripts', 'bundle.mjs')])
run(process.execPath, [path.join(REPO, 'scripts', 'build-fixtures.mjs')])

const testDir = path.join(REPO, 'dist', 'test')
const only = process.argv.slice(2)
const files = fs
  .readdirSync(testDir)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => path.join(testDir, f))
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=600000', ...files], { stdio: 'inherit', cwd: REPO })
process.exit(r.status ?? 1)

// Issue 23 §6, what a newcomer met: states and sentences that say what happened (a forced stop, a stopped
// app, a first deploy whose migration failed, why an app is down), and the small gaps (--version, --cacert,
// every setting in the help, the last failed release kept, a build that is missing or stale). The CLI runs
// as a subprocess against a real berth with the real fixture releases.

import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { parse as parseYaml } from 'yaml'
import { endProcessesUnder, freePort, runCli, spawnDaemon, tempDir, type ChildDaemon } from './helpers/daemon.js'
import { fixture, REPO } from './helpers/fixtures.js'

const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }

test('berth --version and -V print the version of package.json and exit 0', async () => {
  for (const flag of ['--version', '-V']) {
    const r = await runCli([flag])
    assert.equal(r.code, 0, `${flag}: ${r.stderr}`)
    assert.equal(r.stdout, `berth ${pkg.version}\n`)
  }
  assert.match((await runCli(['--help'])).stdout, /--version, -V/)
})

/** The dotted names of a schema's properties, recursing into objects (and the object branch of a oneOf). */
function schemaNames(schema: Record<string, unknown>, prefix = ''): string[] {
  const props = (schema.properties ?? (schema.oneOf as Record<string, unknown>[] | undefined)?.find((s) => s.properties)?.properties) as Record<string, Record<string, unknown>> | undefined
  if (!props) return []
  return Object.entries(props).flatMap(([k, v]) => {
    const inner = schemaNames(v, `${prefix}${k}.`)
    return inner.length ? inner : [`${prefix}${k}`]
  })
}

test('berth settings --help names every setting of the API schema, proxy and its fields included', async () => {
  const doc = parseYaml(fs.readFileSync(path.join(REPO, 'openapi.yaml'), 'utf8')) as { components: { schemas: Record<string, Record<string, unknown>> } }
  const names = schemaNames(doc.components.schemas.Settings!)
  assert.ok(names.includes('proxy.listen') && names.includes('restart.maxRestarts'), names.join(' '))
  const r = await runCli(['settings', '--help'])
  assert.equal(r.code, 0)
  const listed = /Settings: ([\s\S]*?)\.\n/.exec(r.stdout)?.[1]?.replace(/\s+/g, ' ')
  assert.ok(listed, r.stdout)
  // NAME.{A,B} stands for NAME.A and NAME.B.
  const expanded = listed.split(/, (?![^{]*\})/).flatMap((item) => {
    const m = /^(\w+)\.\{([^}]*)\}$/.exec(item)
    return m ? m[2]!.split(',').map((k) => `${m[1]}.${k}`) : [item]
  })
  assert.deepEqual([...expanded].sort(), [...names].sort())
})

test('the pid fields say which process each is: run_erl or the BEAM', () => {
  const doc = parseYaml(fs.readFileSync(path.join(REPO, 'openapi.yaml'), 'utf8')) as { components: { schemas: Record<string, { properties: Record<string, { description?: string }> }> } }
  const { NodeStatus, ProxyInstance } = doc.components.schemas
  assert.match(NodeStatus!.properties.pid!.description ?? '', /run_erl/)
  assert.match(NodeStatus!.properties.beamPid!.description ?? '', /BEAM/)
  assert.match(ProxyInstance!.properties.pid!.description ?? '', /run_erl/)
})

describe('against a real berth', () => {
  let daemon: ChildDaemon
  let dataDir: string
  let env: Record<string, string>
  let port: number
  const cli = (args: string[]) => runCli(args, env)
  const releaseIds = async () => (JSON.parse((await cli(['releases', 'hello', '--json'])).stdout) as { releases: { id: string }[] }).releases.map((r) => r.id).sort()
  /** The release a `berth deploy FILE` uploaded, from its output. */
  const uploaded = (out: string) => /^release(?: already uploaded:)? (\S+) \(version/m.exec(out)?.[1] ?? assert.fail(`no release in: ${out}`)
  const ids: Record<string, string> = {}
  const tarballs: Record<string, string> = {}
  let snapshot: string

  before(async () => {
    dataDir = tempDir('berth-honest-')
    daemon = await spawnDaemon(dataDir)
    env = { BERTH_URL: daemon.url, BERTH_TOKEN: fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim() }
    port = await freePort()
    // Copies: the shared fixture tarballs may be rebuilt (new bytes, new ids) while this runs, and the
    // retention test deploys v1 twice expecting one release.
    snapshot = tempDir('berth-honest-tarballs-')
    for (const name of ['v1', 'v2', 'migrate_fail', 'migrate_hang'] as const) {
      tarballs[name] = path.join(snapshot, `${name}.tar.gz`)
      fs.copyFileSync((await fixture(name)).tarball, tarballs[name]!)
    }
    assert.equal((await cli(['env', 'hello', 'replace', `PORT=${port}`])).code, 0)
    assert.equal((await cli(['settings', 'hello', 'set', 'stableWindowMs=1000', 'keepReleases=1'])).code, 0)
  })

  after(async () => {
    if (!daemon) return
    await fetch(`${daemon.url}/v1/apps/hello/stop?wait=true`, { method: 'POST', headers: { authorization: `Bearer ${env.BERTH_TOKEN}` } }).catch(() => {})
    await daemon.stop()
    assert.deepEqual(await endProcessesUnder(dataDir), [], 'no BEAM, run_erl or epmd is left behind')
    fs.rmSync(dataDir, { recursive: true, force: true })
    fs.rmSync(snapshot, { recursive: true, force: true })
  })

  test('a first deploy whose migration fails says there was no current release, and status shows why the app is down', async () => {
    const r = await cli(['deploy', tarballs.migrate_fail!, '--app', 'hello'])
    assert.equal(r.code, 1, r.stdout + r.stderr)
    ids.migrate_fail = uploaded(r.stdout)
    assert.match(r.stdout, /^failed: .*; there was no current release; nothing was started$/m)
    assert.doesNotMatch(r.stdout, /untouched/)
    const all = await cli(['status'])
    assert.equal(all.code, 0, all.stderr)
    assert.match(all.stdout, /^hello: deploy of \d+\.\d+\.\d+-[0-9a-f]{12} failed, .*: .*there was no current release; nothing was started$/m)
  })

  test('a stop that had to be forced says so: a warning, and the last exit; stop, start and restart say what they did', async () => {
    const deploy = await cli(['deploy', tarballs.v1!, '--app', 'hello'])
    assert.equal(deploy.code, 0, deploy.stdout + deploy.stderr)
    ids.v1 = uploaded(deploy.stdout)
    assert.doesNotMatch((await cli(['status'])).stdout, /^hello: /m, 'no complaint once the app runs')
    // `bin/hello pid` for a stop command: it answers and exits 0, and the node goes on running.
    assert.equal((await cli(['settings', 'hello', 'set', 'commands.stop=pid', 'stopTimeoutMs=3000'])).code, 0)
    const forced = await cli(['stop', 'hello'])
    assert.equal(forced.code, 0, forced.stdout + forced.stderr)
    assert.match(forced.stdout, /^stopping \.\.\. ok/m)
    assert.match(forced.stdout, /^warning: the node of hello did not stop within 3\.0 s \(stopTimeoutMs\) of its stop command \(which (exited 0|timed out)\): berth sent SIGTERM.*, so the app did not shut down cleanly$/m)
    assert.match(forced.stdout, /^stopped: hello is stopped and stays stopped until berth start hello or a deploy/m)
    assert.doesNotMatch(forced.stdout, /succeeded: hello runs/)
    assert.match((await cli(['status', 'hello'])).stdout, /^last exit +\S+ stopped by stop, forced with SIG(TERM|KILL): still running 3\.0 s after its stop command/m)
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`))

    assert.equal((await cli(['settings', 'hello', 'set', 'commands.stop=null', 'stopTimeoutMs=15000'])).code, 0)
    const start = await cli(['start', 'hello'])
    assert.equal(start.code, 0, start.stdout + start.stderr)
    assert.match(start.stdout, /^started: hello runs 0\.1\.0-[0-9a-f]{12} \(/m)
    const restart = await cli(['restart', 'hello'])
    assert.equal(restart.code, 0, restart.stdout + restart.stderr)
    assert.match(restart.stdout, /^restarted: hello runs 0\.1\.0-[0-9a-f]{12} \(/m)
    const stop = await cli(['stop', 'hello'])
    assert.equal(stop.code, 0, stop.stdout + stop.stderr)
    assert.doesNotMatch(stop.stdout, /^warning:/m, 'a clean stop has no warning')
    assert.match(stop.stdout, /^stopped: hello is stopped and stays stopped until berth start hello or a deploy \(/m)
    assert.match((await cli(['status', 'hello'])).stdout, /^last exit +\S+ stopped by stop \(/m)
    const again = await cli(['stop', 'hello'])
    assert.equal(again.code, 0)
    assert.match(again.stdout, /^stopped: hello was not running; it stays stopped/m)
  })

  test('retention keeps the newest failed release for diagnosis, beyond keepReleases, until a newer failure replaces it', async () => {
    assert.deepEqual(await releaseIds(), [ids.v1!, ids.migrate_fail!].sort())
    // v1 succeeded after migrate_fail failed; v2 succeeds now. With keepReleases 1, v2 stays, v1 too (the
    // deployment's previous release is kept while it runs), and the failure, older than current, stays as well.
    const deploy2 = await cli(['deploy', tarballs.v2!, '--app', 'hello'])
    assert.equal(deploy2.code, 0, deploy2.stdout + deploy2.stderr)
    const v2 = uploaded(deploy2.stdout)
    assert.deepEqual(await releaseIds(), [v2, ids.v1!, ids.migrate_fail!].sort())
    // A newer failure (a migration past its timeout) takes its place at the next successful deploy.
    assert.equal((await cli(['settings', 'hello', 'set', 'migrateTimeoutMs=1000'])).code, 0)
    const hang = await cli(['deploy', tarballs.migrate_hang!, '--app', 'hello'])
    assert.equal(hang.code, 1, hang.stdout + hang.stderr)
    assert.equal((await cli(['settings', 'hello', 'set', 'migrateTimeoutMs=300000'])).code, 0)
    const back = await cli(['deploy', tarballs.v1!, '--app', 'hello'])
    assert.equal(back.code, 0, back.stdout + back.stderr)
    assert.equal(uploaded(back.stdout), ids.v1)
    assert.deepEqual(await releaseIds(), [ids.v1!, v2, uploaded(hang.stdout)].sort(), 'migrate_fail is gone: migrate_hang is the newest failure')
  })
})

describe('a berth on https with a self-signed certificate', () => {
  let daemon: ChildDaemon
  let dir: string
  let token: string
  let cert: string

  before(async () => {
    dir = tempDir('berth-tls-')
    cert = path.join(dir, 'cert.pem')
    const key = path.join(dir, 'key.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
    const dataDir = path.join(dir, 'data')
    daemon = await spawnDaemon(dataDir, { BERTH_TLS_CERT: cert, BERTH_TLS_KEY: key })
    assert.match(daemon.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    token = fs.readFileSync(path.join(dataDir, 'initial-admin-token'), 'utf8').trim()
  })

  after(async () => {
    await daemon?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('without --cacert the CLI refuses with the certificate named; with --cacert or BERTH_CA_FILE it works', async () => {
    const base = { BERTH_URL: daemon.url, BERTH_TOKEN: token, BERTH_CA_FILE: '' }
    const refused = await runCli(['whoami'], base)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^berth: Cannot talk to berth at https:\/\/127\.0\.0\.1:\d+: its TLS certificate is not trusted \(self[- ]signed certificate\)\. .*pass --cacert FILE \(or set BERTH_CA_FILE\).* \(DEPTH_ZERO_SELF_SIGNED_CERT\)$/m)
    const flag = await runCli(['whoami', '--cacert', cert], base)
    assert.equal(flag.code, 0, flag.stderr)
    assert.match(flag.stdout, /initial-admin/)
    const viaEnv = await runCli(['status'], { ...base, BERTH_CA_FILE: cert })
    assert.equal(viaEnv.code, 0, viaEnv.stderr)
    const missing = await runCli(['whoami', '--cacert', path.join(dir, 'nope.pem')], base)
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /cannot read the CA file .*nope\.pem \(--cacert or BERTH_CA_FILE\): ENOENT/)
  })

  test('the fleet commands take --cacert too', async () => {
    const file = path.join(dir, 'fleet.yaml')
    fs.writeFileSync(file, `app: hello\nhosts:\n  - name: one\n    url: ${daemon.url}\n    tokenEnv: BERTH_TOKEN\n`)
    const env = { BERTH_TOKEN: token, BERTH_CA_FILE: '' }
    const refused = await runCli(['fleet', 'status', '--fleet', file], env)
    assert.match(refused.stdout, /no \(DEPTH_ZERO_SELF_SIGNED_CERT\)/)
    assert.match(refused.stdout, /0 of 1 hosts reachable/)
    const ok = await runCli(['fleet', 'status', '--fleet', file, '--cacert', cert], env)
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    assert.match(ok.stdout, /1 of 1 hosts reachable/)
  })
})

describe('bin/berth.js never rebuilds behind the user\'s back', () => {
  test('a missing build is an error naming the command to run; a stale one a warning, and the build still runs', async () => {
    const dir = tempDir('berth-bin-')
    try {
      fs.mkdirSync(path.join(dir, 'bin'))
      fs.copyFileSync(path.join(REPO, 'bin', 'berth.js'), path.join(dir, 'bin', 'berth.js'))
      const run = () => execNode(path.join(dir, 'bin', 'berth.js'), ['--version'])
      const missing = run()
      assert.equal(missing.code, 1)
      assert.match(missing.stderr, /^berth: the build is missing \(.*dist\/bundle\/main\.js does not exist\): run `npm run build` in .* \(`npm ci` runs it too\)$/m)
      fs.mkdirSync(path.join(dir, 'dist', 'bundle'), { recursive: true })
      fs.writeFileSync(path.join(dir, 'dist', 'bundle', 'main.js'), "export async function main(argv) { process.stdout.write(`built ${argv.join(' ')}\\n`); return 0 }\n")
      fs.mkdirSync(path.join(dir, 'src', 'cli'), { recursive: true })
      const source = path.join(dir, 'src', 'cli', 'main.ts')
      fs.writeFileSync(source, '// newer than the build\n')
      const later = new Date(Date.now() + 60_000)
      fs.utimesSync(source, later, later)
      const stale = run()
      assert.equal(stale.code, 0, stale.stderr)
      assert.equal(stale.stdout, 'built --version\n')
      assert.match(stale.stderr, /^berth: warning: the build in dist\/ is older than src\/cli\/main\.ts: .*run `npm run build`/m)
      const earlier = new Date(Date.now() - 60_000)
      fs.utimesSync(source, earlier, earlier)
      const fresh = run()
      assert.equal(fresh.stderr, '')
      assert.equal(fresh.stdout, 'built --version\n')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the README starts berth without npx (which packs the project into its cache, running prepare: a silent rebuild)', () => {
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8')
    const twoCommands = /## Two commands[\s\S]*?```sh\n([^`]*)```/.exec(readme)?.[1]
    assert.equal(twoCommands, 'npm ci && npm start\n')
    assert.doesNotMatch(readme, /npx berth/)
  })
})

function execNode(script: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

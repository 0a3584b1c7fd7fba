// The systemd units (systemd/berth.service, systemd/berth-edge.service): the settings that app supervision and
// the shared edge depend on are present and every deliberately loose sandbox setting says why; where
// systemd-analyze is installed, each unit's exposure score stays at or below the level it reached, and
// `systemd-analyze verify` accepts it.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { CREDENTIAL_NAME, keySource } from '../src/secrets/keyring.js'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const UNIT = path.join(REPO, 'systemd', 'berth.service')
const EDGE_UNIT = path.join(REPO, 'systemd', 'berth-edge.service')

/**
 * `systemd-analyze security --offline=true` reached 1.5 with systemd 252 (Debian 12), 1.7 since the unit grants
 * CAP_NET_BIND_SERVICE (the proxy binds 80/443), and 2.5 since each app runs as its own uid (issue 26): the
 * capabilities that switching users needs (SETUID/SETGID 0.3, CHOWN 0.2, KILL 0.1 in systemd-analyze's list),
 * @setuid/@chown allowed (0.2), ProtectProc=default so berth sees its apps' processes (0.2), and the delegated
 * cgroup for per-app limits (0.1). Run as root with the same bounding set instead, it is 2.8. The issue's bound
 * is 2.5, so this unit has no room left: a new loose setting must buy its place back.
 */
const MAX_EXPOSURE = 2.5
/** The bound for berth.service (issue 26). */
const BOUND = 2.5
/**
 * berth-edge.service reached 1.5 with systemd 252: what is left is the network itself (the edge serves the
 * internet), AF_UNIX, the one capability, PrivateUsers=no, no RootDirectory, and MemoryDenyWriteExecute=no
 * (haproxy's regex JIT, for the access log's format); the bound is 2.0.
 */
const MAX_EDGE_EXPOSURE = 1.5
/** The bound for berth-edge.service (issue 25). */
const EDGE_BOUND = 2.0

/**
 * The capabilities berth.service grants, each with what it is for; the unit names each in the comment above
 * CapabilityBoundingSet=, and grants no other.
 */
const CAPABILITIES: Record<string, string> = {
  // haproxy (the proxy setting, an edge berth runs itself) listens on 80/443 without root.
  CAP_NET_BIND_SERVICE: 'listen on 80 or 443',
  // Each app's node, migrations, rpc and consoles run as the app's uid.
  CAP_SETUID: 'setpriv --reuid',
  // And as the app's gid, with none of berth's supplementary groups.
  CAP_SETGID: 'setpriv --regid --clear-groups',
  // The app's shared/, log/, instance directories and cookie become the app's (and the upgrade's one-time pass).
  CAP_CHOWN: 'hand an app its shared/, log/',
  // Stop, restart and kill app processes, which no longer run as berth.
  CAP_KILL: 'stop, restart and kill app processes',
}

/** System calls that switching to an app's uid needs: setpriv's, and chown for handing it its directories. */
const USER_SWITCH_CALLS = ['setresuid', 'setresgid', 'setgroups', 'setuid', 'setgid', 'capset', 'chown', 'fchown', 'fchownat', 'lchown']

/** The node flags of bin/berth.js's first line (`#!/usr/bin/env -S node FLAGS`): how berth is meant to run. */
function entryFlags(): string {
  const first = fs.readFileSync(path.join(REPO, 'bin', 'berth.js'), 'utf8').split('\n')[0]!
  const m = /^#!\/usr\/bin\/env -S node( .*)?$/.exec(first)
  assert.ok(m, `bin/berth.js starts with #!/usr/bin/env -S node [flags]: ${first}`)
  return (m[1] ?? '').trim()
}

/** Settings left loose on purpose: each needs a comment line right above it. */
const LOOSE = ['KillMode=process', 'PrivateUsers=no', 'ProcSubset=all', 'PrivateTmp=no', 'RemoveIPC=no', 'PrivateNetwork=no', 'IPAddressDeny=', 'MemoryDenyWriteExecute=no',
  'ProtectProc=default', 'Delegate=cpu memory pids', 'ReadWritePaths=-/sys/fs/cgroup/system.slice/berth.service', 'UMask=0027', 'StateDirectoryMode=0751']

/** The edge unit's loose settings: each needs a comment line right above it too. */
const EDGE_LOOSE = ['PrivateUsers=no', 'PrivateNetwork=no', 'IPAddressDeny=', 'RemoveIPC=no', 'ProcSubset=pid', 'MemoryDenyWriteExecute=no', 'KillMode=mixed', 'StartLimitIntervalSec=0']

function unitLines(text = fs.readFileSync(UNIT, 'utf8')): string[] {
  return text.split('\n').map((l) => l.trim())
}

function analyze(args: string[]) {
  const r = spawnSync('systemd-analyze', ['--no-pager', ...args], { encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, error: r.error, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
}

function analyzeMissing(): boolean {
  const r = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
  return Boolean(r.error) || r.status !== 0
}

/** Copies the unit into a temporary directory as berth.service, edited by `edit`; returns its path. */
function unitCopy(dir: string, edit: (text: string) => string): string {
  const file = path.join(dir, 'berth.service')
  fs.writeFileSync(file, edit(fs.readFileSync(UNIT, 'utf8')))
  return file
}

test('the unit keeps what app supervision depends on', () => {
  const lines = unitLines()
  for (const want of ['KillMode=process', 'Environment=BERTH_DATA_DIR=/var/lib/berth', 'Environment=BERTH_LISTEN=127.0.0.1:4100', 'User=berth', 'StateDirectory=berth', `ExecStart=/usr/bin/node ${entryFlags()} /opt/berth/bin/berth.js serve`]) {
    assert.ok(lines.includes(want), `systemd/berth.service has the line ${want}`)
  }
  for (const loose of LOOSE) {
    const i = lines.indexOf(loose)
    assert.ok(i > 0, `systemd/berth.service has the line ${loose}`)
    assert.ok(lines[i - 1]!.startsWith('#'), `${loose} has a comment line right above it saying why`)
  }
  assert.ok(lines.includes('NoNewPrivileges=yes'))
  assert.ok(!lines.includes('User=root'), 'berth does not run as root')
  // systemd must not SIGKILL berth while it still waits for uploads.
  const grace = Number(/^Environment=BERTH_SHUTDOWN_GRACE_MS=(\d+)$/m.exec(lines.join('\n'))?.[1])
  const stop = Number(/^TimeoutStopSec=(\d+)s$/m.exec(lines.join('\n'))?.[1])
  assert.ok(grace > 0 && stop * 1000 > grace, `TimeoutStopSec (${stop} s) exceeds BERTH_SHUTDOWN_GRACE_MS (${grace} ms)`)
})

test('the unit grants exactly the capabilities that switching to app users needs, and says what each is for', () => {
  const lines = unitLines()
  const values = (key: string) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1).split(/\s+/).sort())
  const want = Object.keys(CAPABILITIES).sort()
  // Ambient: berth is not root, so only ambient capabilities reach its effective set (and setpriv's).
  assert.deepEqual(values('AmbientCapabilities'), [want], 'AmbientCapabilities= holds exactly these')
  // Bounding: nothing else can be had, not even through exec.
  assert.deepEqual(values('CapabilityBoundingSet'), [want], 'CapabilityBoundingSet= holds exactly these')
  // Not root: root would add 0.4 to the exposure score and own every file berth makes.
  assert.deepEqual(values('User'), [['berth']])
  // Each capability is explained in the comment block right above CapabilityBoundingSet=.
  const at = lines.findIndex((l) => l.startsWith('CapabilityBoundingSet='))
  let start = at
  while (start > 0 && lines[start - 1]!.startsWith('#')) start--
  const comment = lines.slice(start, at).join('\n')
  for (const cap of want) {
    const line = comment.split('\n').find((l) => new RegExp(`^#\\s+${cap}\\s`).test(l))
    assert.ok(line?.includes(CAPABILITIES[cap]!), `${cap} is named above CapabilityBoundingSet= with its use (${CAPABILITIES[cap]}): ${line}`)
  }
  // The launcher must drop them: a non-root uid switching to another non-root uid keeps its capabilities.
  assert.match(comment, /setpriv --inh-caps=-all --ambient-caps=-all/)
  // The isolation settings are offered, commented out, with their defaults.
  assert.ok(lines.includes('#Environment=BERTH_APP_ISOLATION=auto'))
  assert.ok(lines.includes('#Environment=BERTH_APP_UIDS=41000-41999'))
})

test('the system call filter lets setpriv and chown work and still denies the rest of @privileged', (t) => {
  const lines = unitLines()
  const denied = lines.filter((l) => l.startsWith('SystemCallFilter=~')).flatMap((l) => l.slice('SystemCallFilter=~'.length).split(/\s+/))
  assert.ok(denied.length > 0, 'a deny list is set')
  // Denying any of these groups denies setresuid/setgroups or chown: every app launch would fail with EPERM.
  for (const group of ['@privileged', '@setuid', '@chown']) assert.ok(!denied.includes(group), `${group} is not denied`)
  for (const call of USER_SWITCH_CALLS) assert.ok(!denied.includes(call), `${call} is not denied`)
  if (analyzeMissing()) {
    t.diagnostic('systemd-analyze not installed: the groups are not expanded')
    return
  }
  // Expanded by systemd itself: no denied group holds a call setpriv or chown needs, and every call of
  // @privileged outside @setuid, @chown and capset stays denied.
  const expand = (names: string[]): Set<string> => {
    const out = new Set<string>()
    for (const n of names) {
      if (!n.startsWith('@')) {
        out.add(n)
        continue
      }
      const r = analyze(['syscall-filter', n])
      assert.equal(r.status, 0, r.out)
      for (const l of r.out.split('\n').map((s) => s.trim())) if (/^[a-z_0-9]+$/.test(l)) out.add(l)
      for (const l of r.out.split('\n').map((s) => s.trim())) if (/^@[a-z-]+$/.test(l) && l !== n) for (const c of expand([l])) out.add(c)
    }
    return out
  }
  const deniedCalls = expand(denied)
  const needed = expand(['@setuid', '@chown', 'capset'])
  assert.deepEqual([...needed].filter((c) => deniedCalls.has(c)), [], 'no call of @setuid, @chown or capset is denied')
  const rest = [...expand(['@privileged'])].filter((c) => !needed.has(c))
  assert.ok(rest.length > 10, `@privileged expanded to ${rest.length} further calls`)
  assert.deepEqual(rest.filter((c) => !deniedCalls.has(c)), [], 'the rest of @privileged stays denied')
})

test('the edge unit runs haproxy as berth with CAP_NET_BIND_SERVICE alone, once berth wrote its config, and outlives berth restarts', () => {
  const lines = unitLines(fs.readFileSync(EDGE_UNIT, 'utf8'))
  const values = (key: string) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1))
  for (const want of ['User=berth', 'Group=berth', 'NoNewPrivileges=yes', 'Restart=always', 'ExecReload=/bin/kill -USR2 $MAINPID',
    'ExecStart=/usr/sbin/haproxy -W -db -S /var/lib/berth/edge/master.sock,mode,600 -f /var/lib/berth/edge/haproxy.cfg',
    'ExecStartPre=/usr/bin/test -s /var/lib/berth/edge/haproxy.cfg', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX']) {
    assert.ok(lines.includes(want), `systemd/berth-edge.service has the line ${want}`)
  }
  assert.ok(values('RestartSec').length === 1, 'a failed wait for the config is tried again after a pause')
  // The one capability, in both sets, and nothing else.
  assert.deepEqual(values('AmbientCapabilities'), ['CAP_NET_BIND_SERVICE'])
  assert.deepEqual(values('CapabilityBoundingSet'), ['CAP_NET_BIND_SERVICE'])
  assert.ok(!lines.includes('User=root') && !values('User').includes('root'))
  // Ordered after berth, but never stopped or restarted with it: `systemctl restart berth` drops nothing.
  assert.ok(values('After').some((v) => v.split(/\s+/).includes('berth.service')), 'After=berth.service')
  for (const key of ['PartOf', 'BindsTo', 'Requires', 'Requisite']) assert.deepEqual(values(key).filter((v) => v.includes('berth.service')), [], `no ${key}=berth.service`)
  for (const loose of EDGE_LOOSE) {
    const i = lines.indexOf(loose)
    assert.ok(i > 0, `systemd/berth-edge.service has the line ${loose}`)
    assert.ok(lines[i - 1]!.startsWith('#'), `${loose} has a comment line right above it saying why`)
  }
  // berth reloads the edge through the master socket the unit opens: berth.service names the same one.
  assert.ok(unitLines().includes('#Environment=BERTH_EDGE_MASTER_SOCKET=/var/lib/berth/edge/master.sock'), 'berth.service offers BERTH_EDGE_MASTER_SOCKET, commented out')
  // The command line berth itself spawns (edge/process.ts) is the unit's, so either can run the same edge.
  assert.match(fs.readFileSync(path.join(REPO, 'src', 'edge', 'process.ts'), 'utf8'), /\['-W', '-db', '-S', `\$\{this\.masterSocket\},mode,600`, '-f', this\.d\.config\]/)
})

test('the unit hands berth its env key as an encrypted credential, where berth looks for it', () => {
  const lines = unitLines()
  const m = lines.map((l) => /^LoadCredentialEncrypted=([^:]+):(\/.+)$/.exec(l)).find(Boolean)
  assert.ok(m, 'systemd/berth.service has LoadCredentialEncrypted=NAME:/path')
  assert.equal(m[1], CREDENTIAL_NAME, 'the credential has the name berth reads from $CREDENTIALS_DIRECTORY')
  // The install lines at the top create the credential the unit loads (a missing one fails the start).
  assert.ok(fs.readFileSync(UNIT, 'utf8').includes(`systemd-creds encrypt --name=${CREDENTIAL_NAME} - ${m[2]}`), 'the install comment creates that credential')
  // What systemd gives (a 0400 file in a 0500 directory) is what berth takes, over its own key file.
  const creds = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-creds-'))
  try {
    fs.writeFileSync(path.join(creds, CREDENTIAL_NAME), 'x', { mode: 0o400 })
    assert.deepEqual(keySource({ dataDir: '/var/lib/berth', envKeyFile: null, credentialsDir: creds }), { file: path.join(creds, CREDENTIAL_NAME), credential: true })
    assert.deepEqual(keySource({ dataDir: '/var/lib/berth', envKeyFile: null, credentialsDir: null }), { file: '/var/lib/berth/keys/env.key', credential: false })
  } finally {
    fs.rmSync(creds, { recursive: true, force: true })
  }
})

for (const [unit, max, bound] of [[UNIT, MAX_EXPOSURE, BOUND], [EDGE_UNIT, MAX_EDGE_EXPOSURE, EDGE_BOUND]] as const) {
  const name = path.basename(unit)
  test(`systemd-analyze security: ${name} exposure at most ${max}`, (t) => {
    if (analyzeMissing()) {
      t.skip('systemd-analyze not installed')
      return
    }
    const threshold = Math.round(max * 10)
    const r = analyze(['security', '--offline=true', `--threshold=${threshold}`, unit])
    if (/unrecognized option|unknown option/i.test(r.out)) {
      t.skip('systemd-analyze too old for --offline/--threshold (needs systemd 250 or later)')
      return
    }
    const m = new RegExp(`Overall exposure level for ${name.replace('.', '\\.')}: (\\d+(?:\\.\\d+)?)`).exec(r.out)
    assert.ok(m, `no "Overall exposure level" line in:\n${r.out}`)
    const score = Number(m[1])
    t.diagnostic(`${name} exposure ${score}`)
    assert.ok(score <= max, `exposure ${score} is above ${max}:\n${r.out}`)
    assert.ok(score <= bound, `exposure ${score} is above the bound ${bound}`)
    assert.equal(r.status, 0, `--threshold=${threshold} exceeded:\n${r.out}`)
  })
}

test('systemd-analyze verify accepts the unit', (t) => {
  if (analyzeMissing()) {
    t.skip('systemd-analyze not installed')
    return
  }
  // verify checks that ExecStart's program exists and is executable; /usr/bin/node is where the unit expects
  // node on the host, so the copy points at the node running this test instead (berth.js, an argument, is not
  // checked). It does not need user berth to exist. Unknown keys and bad values are only warnings (exit 0),
  // so any line naming the unit counts as a failure.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-unit-'))
  try {
    const file = unitCopy(dir, (s) => s.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `))
    const r = analyze(['verify', '--man=no', file])
    const complaints = r.out.split('\n').filter((l) => l.includes('berth.service'))
    assert.deepEqual(complaints, [], r.out)
    assert.equal(r.status, 0, r.out)

    // The same check notices a broken unit: the test above is not passing vacuously.
    const broken = unitCopy(dir, (s) => s.replace(/^KillMode=process$/m, 'KillMode=processes\nProtectHomme=yes'))
    const b = analyze(['verify', '--man=no', broken])
    assert.match(b.out, /berth\.service:\d+: Unknown key .*ProtectHomme/)
    assert.match(b.out, /berth\.service:\d+: Failed to parse kill mode/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('systemd-analyze verify accepts the edge unit', (t) => {
  if (analyzeMissing()) {
    t.skip('systemd-analyze not installed')
    return
  }
  // Its programs (/usr/sbin/haproxy, /usr/bin/test, /bin/kill) must exist where the unit names them.
  if (!fs.existsSync('/usr/sbin/haproxy')) {
    t.skip('haproxy not installed at /usr/sbin/haproxy')
    return
  }
  const r = analyze(['verify', '--man=no', EDGE_UNIT])
  assert.deepEqual(r.out.split('\n').filter((l) => l.includes('berth-edge.service')), [], r.out)
  assert.equal(r.status, 0, r.out)
})

test('npm start and npx berth run node with the flags of bin/berth.js, as the unit does', () => {
  const flags = entryFlags()
  assert.match(flags, /--max-semi-space-size=\d+/)
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string }; bin: { berth: string } }
  // Run as a program (not `node bin/berth.js`), so its first line applies; so does npx through the bin link.
  assert.equal(pkg.scripts.start, './bin/berth.js serve')
  assert.equal(pkg.bin.berth, 'bin/berth.js')
  const r = spawnSync(path.join(REPO, 'bin', 'berth.js'), ['serve', '--help'], { encoding: 'utf8', env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` } })
  assert.equal(r.status, 0, `${r.error ?? ''}${r.stderr}`)
  assert.match(r.stdout, /^usage: berth serve/)
})

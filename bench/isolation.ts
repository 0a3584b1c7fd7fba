// Isolation benchmark: what starting an app's process through the launcher (isolation/launch.ts: sh that joins
// the cgroups, setpriv to the app's uid) costs, against spawning the same program directly, in the same run.
//
//   npm run build && node dist/bench/isolation.js [--runs N] [--spawns N]
//
//   --runs N     rounds (default 3); each round measures every side, interleaved, and the table shows medians
//   --spawns N   spawns of each side per round (default 200 for /bin/true, N/10 for the BEAM)
//
// Sides: the floor (spawn the program directly), isolation off (setpriv dropping capabilities), isolation on
// (sh + setpriv to a uid). Programs: /bin/true (the launcher's own cost), and the fixture release's
// `bin/myapp eval 1` (a BEAM boot: what every eval, rpc, pid and stop pays anyway). Needs root.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { AppLauncher } from '../src/isolation/launch.js'
import { AppUsers, decideIsolation } from '../src/isolation/users.js'
import { Paths } from '../src/paths.js'
import { SETPRIV } from '../src/process/proc.js'
import { FIXTURES, fmt, median, parseCli } from './lib.js'

const opts = parseCli('bench/isolation', import.meta.url, { '--runs': { key: 'runs', type: 'int', min: 1 }, '--spawns': { key: 'spawns', type: 'int', min: 10 } }, { runs: 3, spawns: 200 })
if (process.getuid?.() !== 0) throw new Error('run as root: the launcher switches to app uids')

const data = fs.mkdtempSync('/tmp/berth-bench-iso-')
const log = pino({ level: 'silent' })
const users = new AppUsers(new Paths(data), { first: 41000, last: 41999 }, log)
const on = new AppLauncher({ state: decideIsolation('on'), users, setpriv: SETPRIV })
const off = new AppLauncher({ state: decideIsolation('off'), users, setpriv: SETPRIV })

/** The fixture release (its erts), unpacked once. */
async function unpack(): Promise<void> {
  const dir = path.join(data, 'rel')
  fs.mkdirSync(dir)
  await run('tar', ['xzf', path.join(FIXTURES, 'myapp.tar.gz'), '-C', dir])
}

async function run(file: string, args: string[]): Promise<number> {
  const t = process.hrtime.bigint()
  await new Promise<void>((resolve, reject) => {
    const c = spawn(file, args, { stdio: 'ignore', env: { PATH: '/usr/bin:/bin', HOME: data, RELEASE_TMP: path.join(data, 'tmp') } })
    c.on('error', reject)
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${file} exited ${code}`))))
  })
  return Number(process.hrtime.bigint() - t) / 1e6
}

async function main(): Promise<void> {
  await unpack()
  const relDir = path.join(data, 'rel')
  const top = relDir
  fs.chmodSync(data, 0o755)
  fs.mkdirSync(path.join(data, 'tmp'), { mode: 0o777 })
  fs.chmodSync(path.join(data, 'tmp'), 0o777)
  const programs: [string, string, string[], number][] = [
    ['/bin/true', '/bin/true', [], opts.spawns],
    ['bin/myapp eval 1', path.join(top, 'bin', 'myapp'), ['eval', '1'], Math.max(5, Math.round(opts.spawns / 10))],
  ]
  const rows: string[] = []
  for (const [name, file, args, n] of programs) {
    const per: Record<string, number[]> = { floor: [], off: [], on: [] }
    for (let round = 0; round < opts.runs; round++) {
      const t: Record<string, number[]> = { floor: [], off: [], on: [] }
      for (let i = 0; i < n; i++) {
        t.floor!.push(await run(file, args))
        const o = off.wrap('bench', file, args)
        t.off!.push(await run(o.file, o.args))
        const w = on.wrap('bench', file, args)
        t.on!.push(await run(w.file, w.args))
      }
      for (const k of Object.keys(t)) per[k]!.push(median(t[k]!))
    }
    const f = median(per.floor!)
    rows.push(`| ${name} | ${fmt(f, 2)} ms | ${fmt(median(per.off!), 2)} ms (+${fmt(median(per.off!) - f, 2)}) | ${fmt(median(per.on!), 2)} ms (+${fmt(median(per.on!) - f, 2)}) | ${fmt(median(per.on!) / f, 2)}× |`)
  }
  console.log(`isolation: ${opts.runs} rounds, medians of per-round medians; load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`)
  console.log('| program | direct (floor) | isolation off | isolation on | on / floor |')
  console.log('| --- | --- | --- | --- | --- |')
  for (const r of rows) console.log(r)
}

main()
  .catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(() => fs.rmSync(data, { recursive: true, force: true }))

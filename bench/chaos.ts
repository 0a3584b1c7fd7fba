#!/usr/bin/env node
// Chaos run (issue 12): kill -9 berth at random moments of random work, restart it, check the invariants.
//
//   npm run build && node dist/bench/chaos.js [--kills N] [--seed S] [--big-mb M] [--settle-ms MS] [--logs DIR] [--json FILE]
//
//   --kills N       kills (default 200; env BERTH_CHAOS_KILLS)
//   --seed S        PRNG seed (default random; env BERTH_CHAOS_SEED): the same seed replays the same work and moments
//   --big-mb M      random padding of each large upload, MiB (default 24)
//   --settle-ms MS  how long berth gets after each restart before every invariant must hold (default 30000)
//   --scenarios A,B only these kinds of work (names as printed per kill, e.g. "console,deploy good")
//   --logs DIR      keep every berth's log there (default: a temp dir, removed at the end)
//   --json FILE     also write the result (phases, violations) as JSON
//
// The harness is test/helpers/chaos.ts (shared with test/chaos.test.ts, the short run in the suite). It prints the
// seed, one line per kill (the work, the moment, the phase it hit), and at the end one line:
// "N kills, M distinct phases, V invariant violations", then each violation with its seed and iteration.
// Exit code 1 when there were violations. Every process it starts is killed at the end, also on Ctrl+C.

import fs from 'node:fs'
import os from 'node:os'
import { runChaos } from '../test/helpers/chaos.js'
import { parseCli, type OptionSpec } from './lib.js'

const OPTIONS: Record<string, OptionSpec> = {
  '--kills': { key: 'kills', type: 'int', min: 1 },
  '--seed': { key: 'seed', type: 'int', min: 0 },
  '--big-mb': { key: 'bigUploadMb', type: 'int', min: 0 },
  '--settle-ms': { key: 'settleMs', type: 'int', min: 1 },
  '--scenarios': { key: 'scenarios', type: 'list' },
  '--logs': { key: 'logDir', type: 'path' },
  '--json': { key: 'json', type: 'path' },
}
// Like the other benches: -h/--help prints the header above, a wrong option exits 2 (it used to start a run).
const { kills, seed, bigUploadMb, settleMs, logDir, json, scenarios } = parseCli('bench/chaos', import.meta.url, OPTIONS, {
  kills: Number(process.env.BERTH_CHAOS_KILLS ?? 200),
  seed: Number(process.env.BERTH_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31)),
  bigUploadMb: 24,
  settleMs: 30_000,
  logDir: undefined as string | undefined,
  json: undefined as string | undefined,
  scenarios: undefined as string[] | undefined,
})

// Ctrl+C: exit through process.exit so the harness's exit hook kills what it started.
process.on('SIGINT', () => process.exit(130))
process.on('SIGTERM', () => process.exit(143))

const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ')
console.log(`load average before: ${load()} (${os.cpus().length} CPUs)`)
const result = await runChaos({ kills, seed, bigUploadMb, settleMs, logDir, scenarios, log: (line) => console.log(line) })
console.log(`load average after: ${load()}; ${(result.ms / 1000).toFixed(0)} s, ${(result.ms / 1000 / kills).toFixed(1)} s per kill`)
console.log('phases:', Object.entries(result.phases).sort((a, b) => b[1] - a[1]).map(([p, n]) => `${p} ${n}`).join(', '))
if (json) fs.writeFileSync(json, JSON.stringify({ ...result, load: os.loadavg() }, null, 2))
process.exitCode = result.violations.length > 0 ? 1 : 0

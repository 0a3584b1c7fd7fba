// Chaos, short run (issue 12): kill -9 berth at random moments of random work, restart it on the same data dir
// and check the crash-safety invariants each time. The long run is bench/chaos.mjs; both use helpers/chaos.ts.
// BERTH_CHAOS_KILLS and BERTH_CHAOS_SEED override the kill count and the (otherwise random, printed) seed.

import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { runChaos, summary, type ChaosResult, type Violation } from './helpers/chaos.js'
import { processesUnder } from './helpers/daemon.js'

const kills = Number(process.env.BERTH_CHAOS_KILLS ?? 10)
const seed = Number(process.env.BERTH_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))

const show = (vs: Violation[]) => vs.map((v) => `seed ${v.seed} iteration ${v.iteration} [${v.phase}] ${v.invariant}: ${v.detail}`).join('\n')

describe('chaos', () => {
  let r: ChaosResult
  before(async () => {
    r = await runChaos({ kills, seed, bigUploadMb: 8, log: (line) => console.log(line) })
  })

  test(`${kills} kills -9 of berth at random moments: no invariant violation (seed printed above)`, () => {
    console.log(`${summary(r)}; seed ${r.seed}; phases: ${Object.keys(r.phases).sort().join(', ')}`)
    assert.deepEqual(processesUnder(r.workDir), [], 'every process the run started is gone')
    assert.ok(Object.keys(r.phases).length >= 3, `the kills hit several phases: ${JSON.stringify(r.phases)}`)
    const unknown = r.violations.filter((v) => v.known === null)
    assert.equal(unknown.length, 0, show(unknown))
  })

  // The deploy code's known crash-recovery defects are being fixed in parallel; until then their cases are
  // counted here and reported, not failed. Drop the todo once the fixes land.
  test('no violation of the known defects either (issue 12 items 5 and 6)', { todo: 'issue 12 item 6 (recover() leaves an unverified release live; a node started at agent start stays `starting`) and item 5 (DELETE of a release an unfinished deployment uses)' }, () => {
    const known = r.violations.filter((v) => v.known !== null)
    assert.equal(known.length, 0, show(known))
  })
})

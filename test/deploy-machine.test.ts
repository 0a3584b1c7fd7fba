// The deployment state machine as a table: every legal move, every other one refused, final states final,
// and the paths the deployer takes (deploy, rollback, operate, proxied, recovery) walk through it.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fail, isFinal, nextState, restored, succeed, transition, TRANSITIONS, type DeploymentEvent, type OpenState } from '../src/deploy/machine.js'
import { isBerthError } from '../src/errors.js'
import { FINAL, STEP_NAMES, type Deployment, type DeploymentState } from '../src/store/deployments.js'

const EVENTS: DeploymentEvent[] = [...STEP_NAMES, 'succeed', 'fail', 'restored']
const OPEN = Object.keys(TRANSITIONS) as OpenState[]
const STATES: DeploymentState[] = [...OPEN, ...FINAL]

/** Every legal move, written out once more by hand: a change to the table has to change this list too. */
const LEGAL: [DeploymentState, DeploymentEvent, DeploymentState][] = [
  ['pending', 'migrating', 'migrating'],
  ['pending', 'reverting_migrations', 'reverting_migrations'],
  ['pending', 'stopping', 'stopping'],
  ['pending', 'starting', 'starting'],
  ['pending', 'fail', 'failed'],
  ['migrating', 'switching', 'switching'],
  ['migrating', 'fail', 'failed'],
  ['reverting_migrations', 'switching', 'switching'],
  ['reverting_migrations', 'fail', 'failed'],
  ['stopping', 'starting', 'starting'],
  ['stopping', 'succeed', 'succeeded'],
  ['stopping', 'fail', 'failed'],
  ['switching', 'starting', 'starting'],
  ['switching', 'rollback', 'switching'],
  ['switching', 'restored', 'rolled_back'],
  ['switching', 'fail', 'failed'],
  ['starting', 'verifying', 'verifying'],
  ['starting', 'rollback', 'starting'],
  ['starting', 'restored', 'rolled_back'],
  ['starting', 'fail', 'failed'],
  ['verifying', 'routing', 'routing'],
  ['verifying', 'succeed', 'succeeded'],
  ['verifying', 'rollback', 'verifying'],
  ['verifying', 'restored', 'rolled_back'],
  ['verifying', 'fail', 'failed'],
  ['routing', 'draining', 'draining'],
  ['routing', 'succeed', 'succeeded'],
  ['routing', 'rollback', 'routing'],
  ['routing', 'restored', 'rolled_back'],
  ['routing', 'fail', 'failed'],
  ['draining', 'succeed', 'succeeded'],
  ['draining', 'fail', 'failed'],
]

function deployment(state: DeploymentState): Deployment {
  return { id: 'd', app: 'shop', kind: 'deploy', release: 'r2', previous: 'r1', state, reason: null, reasonCode: null, warnings: [], steps: [], actor: null, rollout: null, createdAt: '', finishedAt: null }
}

test('every legal transition leads where the table says', () => {
  for (const [from, event, to] of LEGAL) {
    assert.equal(nextState(from, event), to, `${event} in ${from}`)
    assert.equal(transition(from, event), to, `${event} in ${from}`)
  }
})

test('every other transition is refused, with INTERNAL naming the move', () => {
  const legal = new Set(LEGAL.map(([from, event]) => `${from} ${event}`))
  let refused = 0
  for (const from of STATES) {
    for (const event of EVENTS) {
      if (legal.has(`${from} ${event}`)) continue
      refused++
      assert.equal(nextState(from, event), null, `${event} in ${from} is not a legal move`)
      assert.throws(
        () => transition(from, event),
        (err: unknown) => isBerthError(err) && err.code === 'INTERNAL' && err.message.includes(`${event} in ${from}`),
      )
    }
  }
  assert.equal(refused, STATES.length * EVENTS.length - LEGAL.length)
})

test('final states are final: no event moves them, and only they are final', () => {
  for (const s of FINAL) {
    assert.ok(isFinal(s))
    for (const event of EVENTS) assert.equal(nextState(s, event), null, `${event} in ${s}`)
  }
  for (const s of OPEN) assert.ok(!isFinal(s), s)
})

test('every open state can fail, and every open state is reachable from pending', () => {
  for (const s of OPEN) assert.equal(nextState(s, 'fail'), 'failed', s)
  const seen = new Set<DeploymentState>(['pending'])
  const queue: DeploymentState[] = ['pending']
  while (queue.length > 0) {
    const s = queue.shift()!
    for (const event of EVENTS) {
      const next = nextState(s, event)
      if (next && !seen.has(next)) {
        seen.add(next)
        queue.push(next)
      }
    }
  }
  assert.deepEqual([...seen].sort(), [...STATES].sort())
})

test('the paths the deployer takes walk through the table', () => {
  const walk = (events: DeploymentEvent[]) => events.reduce<DeploymentState>((s, e) => transition(s, e), 'pending')
  assert.equal(walk(['migrating', 'switching', 'starting', 'verifying', 'succeed']), 'succeeded', 'a deploy')
  assert.equal(walk(['migrating', 'switching', 'starting', 'verifying', 'routing', 'draining', 'succeed']), 'succeeded', 'a deploy beside the live instance')
  assert.equal(walk(['migrating', 'switching', 'starting', 'verifying', 'routing', 'succeed']), 'succeeded', 'a first deploy behind the proxy')
  assert.equal(walk(['migrating', 'switching', 'starting', 'verifying', 'rollback', 'restored']), 'rolled_back', 'a failed verification put back')
  assert.equal(walk(['migrating', 'fail']), 'failed', 'a failed migration')
  assert.equal(walk(['reverting_migrations', 'switching', 'starting', 'verifying', 'succeed']), 'succeeded', 'a rollback')
  assert.equal(walk(['stopping', 'succeed']), 'succeeded', 'a stop')
  assert.equal(walk(['stopping', 'starting', 'verifying', 'succeed']), 'succeeded', 'a restart')
  assert.equal(walk(['starting', 'verifying', 'routing', 'draining', 'succeed']), 'succeeded', 'a restart behind the proxy')
  assert.throws(() => walk(['switching']), 'no switch before the migration step')
  assert.throws(() => walk(['migrating', 'starting']), 'no start before the switch in a deploy')
})

test('fail, succeed and restored record the outcome and refuse a final deployment', () => {
  const d = deployment('verifying')
  fail(d, 'BOOT_FAILED', 'the node exited during boot; rolled back')
  assert.deepEqual([d.state, d.reasonCode, d.reason], ['failed', 'BOOT_FAILED', 'the node exited during boot; rolled back'])
  assert.throws(() => fail(d, 'INTERNAL', 'again'))
  assert.throws(() => succeed(d))
  assert.equal(d.reason, 'the node exited during boot; rolled back', 'a refused move changes nothing')

  const r = deployment('starting')
  restored(r, 'boot failed; rolled back to r1')
  assert.deepEqual([r.state, r.reason, r.reasonCode], ['rolled_back', 'boot failed; rolled back to r1', null])

  const s = deployment('routing')
  succeed(s)
  assert.deepEqual([s.state, s.reason], ['succeeded', null])
  const t = deployment('draining')
  succeed(t, 'agent restarted during draining; kept it')
  assert.equal(t.reason, 'agent restarted during draining; kept it')
})

// What "booted" is asked and read as (supervision/boot-check.ts), without a node: the applications of a .rel
// that must run, the question in each release language, and the answers as each rpc command prints them.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { bootApps, bootQuery, parseBootAnswer } from '../src/supervision/boot-check.js'
import { tempDir } from './helpers/daemon.js'

test("the applications that must run are the .rel's permanent and transient ones", () => {
  const dir = tempDir('berth-boot-check-')
  try {
    fs.mkdirSync(path.join(dir, 'releases', '0.3.2'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'releases', 'start_erl.data'), '13.1.5 0.3.2\n')
    fs.writeFileSync(path.join(dir, 'releases', '0.3.2', 'hello.rel'), `%% coding: utf-8
{release,{"hello","0.3.2"},{erts,"13.1.5"},
 [{kernel,"8.5.3",permanent},{stdlib,"4.2"},{hello,"0.3.2",permanent},{iex,"1.14.0",none},{tools,"3.5",load},
  {observer,"2.1",temporary},{shop_core,"1.0",transient,[inc]},{plain,"1.0",[inc]}]}.
`)
    assert.deepEqual(bootApps(dir), { file: 'releases/0.3.2/hello.rel', apps: ['kernel', 'stdlib', 'hello', 'shop_core', 'plain'] })
    fs.rmSync(path.join(dir, 'releases', '0.3.2', 'hello.rel'))
    assert.equal(bootApps(dir), null, 'no .rel: null, and verification says it checks init alone')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('the question in Elixir (Mix, Distillery) and in Erlang (relx eval)', () => {
  assert.equal(bootQuery('Elixir', ['kernel', 'hello']), 'IO.inspect(case :init.get_status() do {:started, _} -> {:started, [:kernel, :hello] -- Enum.map(:application.which_applications(), &elem(&1, 0))}; {s, _} -> {s, []} end)')
  assert.equal(bootQuery('Erlang', ['kernel', 'relx_hello']), 'case init:get_status() of {started, _} -> {started, [kernel, relx_hello] -- [A || {A, _, _} <- application:which_applications()]}; {S, _} -> {S, []} end.')
  assert.match(bootQuery('Erlang', ["odd'name"]), /\['odd\\'name'\]/)
  assert.match(bootQuery('Elixir', ['Odd']), /\[:"Odd"\]/)
})

test('answers as each rpc command prints them; anything else is no answer', () => {
  assert.deepEqual(parseBootAnswer('{:started, []}\n'), { status: 'started', missing: [] })
  assert.deepEqual(parseBootAnswer('{:started, [:hello, :shop]}\n{:started, [:hello, :shop]}\n'), { status: 'started', missing: ['hello', 'shop'] })
  assert.deepEqual(parseBootAnswer('{starting,[]}\n'), { status: 'starting', missing: [] })
  assert.deepEqual(parseBootAnswer("{started,[relx_hello,'odd']}"), { status: 'started', missing: ['relx_hello', 'odd'] })
  assert.equal(parseBootAnswer('--rpc-eval : RPC failed with reason :nodedown\n'), null)
  assert.equal(parseBootAnswer('Node relx_hello@vm not responding to pings.\n'), null)
  assert.equal(parseBootAnswer('{badrpc,nodedown}'), null)
})

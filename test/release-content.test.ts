// Reading a release's own metadata: the Erlang terms of .rel and .app files, the export tables of .beam
// files (as compilers write them, compressed, and with OTP 28's long-atom table), the choice of the
// migration module in real releases built from the fixture projects, and the release's kind.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import { DEFAULT_SETTINGS, mergeSettings } from '../src/apps/settings.js'
import { isBerthError } from '../src/errors.js'
import { beamExports } from '../src/releases/beam.js'
import { ectoMigrations, findMigrationModule, releaseApps } from '../src/releases/content.js'
import { commandFor, detectKind, failedAnswer, resolveCommands, unknownCommandHint } from '../src/releases/kinds.js'
import { fixedNodeName } from '../src/releases/layout.js'
import { Atom, parseTerms, prop, Tuple } from '../src/releases/terms.js'
import { tempDir } from './helpers/daemon.js'
import { fixture, type FixtureName } from './helpers/fixtures.js'

const dirs: Record<string, string> = {}
let root: string

before(async () => {
  root = tempDir('berth-content-')
  for (const name of ['v2', 'myapp', 'storefront', 'relx'] as FixtureName[]) {
    dirs[name] = path.join(root, name)
    fs.mkdirSync(dirs[name]!)
    execFileSync('tar', ['xzf', (await fixture(name)).tarball, '-C', dirs[name]!])
  }
})

after(() => fs.rmSync(root, { recursive: true, force: true }))

/** A minimal BEAM container with the given atoms and exports (indices into atoms, 1-based). */
function beam(atoms: string[], exports: [number, number][], opts: { compactLengths?: boolean } = {}): Buffer {
  const chunk = (id: string, data: Buffer) => {
    const pad = Buffer.alloc((4 - (data.length % 4)) % 4)
    const head = Buffer.alloc(8)
    head.write(id, 0, 'latin1')
    head.writeUInt32BE(data.length, 4)
    return Buffer.concat([head, data, pad])
  }
  const count = Buffer.alloc(4)
  count.writeInt32BE(opts.compactLengths ? -atoms.length : atoms.length)
  const names = atoms.map((a) => {
    const bytes = Buffer.from(a, 'utf8')
    const n = bytes.length
    const len = !opts.compactLengths ? Buffer.from([n]) : n < 16 ? Buffer.from([n << 4]) : Buffer.from([((n >> 3) & 0xe0) | 0x08, n & 0xff])
    return Buffer.concat([len, bytes])
  })
  const expt = Buffer.alloc(4 + exports.length * 12)
  expt.writeUInt32BE(exports.length, 0)
  exports.forEach(([atom, arity], i) => {
    expt.writeUInt32BE(atom, 4 + i * 12)
    expt.writeUInt32BE(arity, 8 + i * 12)
    expt.writeUInt32BE(i + 1, 12 + i * 12)
  })
  const body = Buffer.concat([Buffer.from('BEAM'), chunk('AtU8', Buffer.concat([count, ...names])), chunk('Code', Buffer.from([1, 2, 3])), chunk('ExpT', expt)])
  const head = Buffer.alloc(8)
  head.write('FOR1', 0, 'latin1')
  head.writeUInt32BE(body.length, 4)
  return Buffer.concat([head, body])
}

describe('Erlang terms', () => {
  test('an .app file with quoted atoms, strings with escapes, comments and nested lists', () => {
    const [app] = parseTerms(`%% generated\n{application,shop,\n [{description,"a \\"shop\\""}, {vsn,"2.0.0"},\n  {modules,['Elixir.Shop.Release',shop_sup]}, {mod,{'Elixir.Shop.Application',[]}}, {n, -1.5e3}]}.\n`, 'shop.app')
    assert.ok(app instanceof Tuple)
    const props = app.items[2]
    assert.equal(prop(props, 'description'), 'a "shop"')
    assert.deepEqual((prop(props, 'modules') as Atom[]).map((a) => a.name), ['Elixir.Shop.Release', 'shop_sup'])
    assert.equal(prop(props, 'n'), -1500)
  })

  test('binaries, maps and chars as ~p writes them in an application env (Elixir apps have them)', () => {
    const [app] = parseTerms(`{application,hello,[{env,[{mode,<<"ok">>},{u,<<"é"/utf8>>},{bytes,<<1,2,255>>},{m,#{a => [$x], <<"k">> => {}}},{sep,","}]},{modules,['Elixir.Hello.Release']}]}.`, 'hello.app')
    const env = prop((app as Tuple).items[2], 'env')
    assert.equal(prop(env, 'mode'), 'ok')
    assert.equal(prop(env, 'u'), 'é')
    assert.deepEqual(prop(env, 'bytes'), Buffer.from([1, 2, 255]))
    assert.equal(prop(env, 'sep'), ',', 'a string "," is a string, not punctuation')
    assert.deepEqual((prop((app as Tuple).items[2], 'modules') as Atom[]).map((a) => a.name), ['Elixir.Hello.Release'])
  })

  test('text that is not terms is refused with the file named, not guessed', () => {
    for (const bad of ['{a, b', '{a, b}', '#{a b}.', '{a,, b}.', '{pid, <0.1.0>}.', 'F = fun() -> ok end.']) {
      assert.throws(() => parseTerms(bad, 'x.app'), (err: unknown) => isBerthError(err) && err.code === 'RELEASE_INVALID' && /x\.app/.test(err.message), bad)
    }
  })
})

describe('BEAM export tables', () => {
  test('exports of real modules compiled by Elixir and by erlc', () => {
    const shop = path.join(dirs.storefront!, 'lib', 'shop-2.0.0', 'ebin')
    const names = (f: string) => beamExports(fs.readFileSync(path.join(shop, f))).map((e) => `${e.name}/${e.arity}`)
    assert.ok(names('Elixir.Shop.Release.beam').includes('migrate/0'))
    assert.ok(names('Elixir.Shop.Cache.Release.beam').includes('purge/1'))
    assert.ok(!names('Elixir.Shop.Cache.Release.beam').includes('migrate/0'))
    const erl = beamExports(fs.readFileSync(path.join(dirs.relx!, 'lib', 'relx_hello-0.3.0', 'ebin', 'relx_hello_server.beam'))).map((e) => `${e.name}/${e.arity}`)
    assert.ok(erl.includes('start_link/0') && erl.includes('init/1'), erl.join(' '))
  })

  test('a gzip-compressed .beam and an OTP 28 table with compact atom lengths', () => {
    const long = `migrate_${'ü'.repeat(100)}`
    const plain = beam(['Elixir.X.Release', 'migrate', long], [[2, 0], [3, 1]])
    assert.deepEqual(beamExports(zlib.gzipSync(plain)), [{ name: 'migrate', arity: 0 }, { name: long, arity: 1 }])
    assert.deepEqual(beamExports(beam(['m', 'migrate', long], [[2, 0], [3, 1]], { compactLengths: true })), [{ name: 'migrate', arity: 0 }, { name: long, arity: 1 }])
  })

  test('a file that is not a BEAM, or is cut short, is refused', () => {
    assert.throws(() => beamExports(Buffer.from('not a beam file at all')), /not a BEAM file/)
    const cut = beam(['m', 'migrate'], [[2, 0]]).subarray(0, 40)
    assert.throws(() => beamExports(cut), (err: unknown) => isBerthError(err) && err.code === 'RELEASE_INVALID')
  })
})

describe('the migration module of a release', () => {
  test('hello: Hello.Release, with the application env holding binaries', () => {
    assert.equal(findMigrationModule(dirs.v2!, 'hello', '0.2.0').chosen?.module, 'Hello.Release')
  })

  test('myapp: MyApp.Release of the top-level application myapp', () => {
    const found = findMigrationModule(dirs.myapp!, 'myapp', '1.0.0')
    assert.deepEqual(found.chosen, { module: 'MyApp.Release', app: 'myapp', topLevel: true })
    assert.match(found.note, /found MyApp\.Release\.migrate\/0 \(application myapp\)/)
  })

  test('storefront: the release name is not the application; Shop.Release wins over Shop.Cache.Release', () => {
    const apps = releaseApps(dirs.storefront!, 'storefront', '2.0.0')
    const shop = apps.find((a) => a.name === 'shop')!
    assert.equal(shop.topLevel, true)
    assert.equal(shop.mod, 'Elixir.Shop.Application')
    assert.equal(apps.find((a) => a.name === 'logger')!.topLevel, false, 'a dependency of shop is not top-level')
    const found = findMigrationModule(dirs.storefront!, 'storefront', '2.0.0')
    assert.equal(found.chosen?.module, 'Shop.Release')
    assert.deepEqual(found.found.map((m) => m.module), ['Shop.Release'])
  })

  test('relx: no *.Release module, and the note says where berth looked', () => {
    const found = findMigrationModule(dirs.relx!, 'relx_hello', '0.3.0')
    assert.equal(found.chosen, null)
    assert.match(found.note, /none of its applications \(.*relx_hello.*\) has a module named \*\.Release that exports migrate\/0/)
  })

  test('a release whose metadata cannot be read has no migration module, and says so', () => {
    const empty = path.join(root, 'empty')
    fs.mkdirSync(path.join(empty, 'releases', '1.0.0'), { recursive: true })
    const found = findMigrationModule(empty, 'empty', '1.0.0')
    assert.equal(found.chosen, null)
    assert.match(found.note, /could not be read/)
  })

  test('Ecto migrations are found in the top-level application, whatever the release is called', () => {
    assert.deepEqual(ectoMigrations(dirs.v2!, 'hello'), ['20240101000000_add_things.exs'])
    assert.deepEqual(ectoMigrations(dirs.storefront!, 'storefront'), [])
  })
})

describe('release kinds', () => {
  test('Mix and relx releases are told apart by their start scripts', () => {
    assert.equal(detectKind(dirs.v2!, 'hello', '0.2.0'), 'mix')
    assert.equal(detectKind(dirs.storefront!, 'storefront', '2.0.0'), 'mix')
    assert.equal(detectKind(dirs.relx!, 'relx_hello', '0.3.0'), 'relx')
  })

  test("a node name fixed in vm.args (not from RELEASE_NODE) is found; Mix's env.sh naming is not one", () => {
    assert.deepEqual(fixedNodeName(dirs.relx!, '0.3.0'), { file: 'releases/0.3.0/vm.args.src', name: '${RELX_HELLO_NODE:-relx_hello}' })
    assert.equal(fixedNodeName(dirs.v2!, '0.2.0'), null)
    const rel = path.join(root, 'named', 'releases', '1.0.0')
    fs.mkdirSync(rel, { recursive: true })
    const named = (file: string, text: string) => {
      for (const f of ['vm.args', 'vm.args.src', 'vm.args.eex']) fs.rmSync(path.join(rel, f), { force: true })
      fs.writeFileSync(path.join(rel, file), text)
      return fixedNodeName(path.join(root, 'named'), '1.0.0')?.name ?? null
    }
    assert.equal(named('vm.args.src', '-sname ${RELEASE_NODE}\n-setcookie c\n'), null)
    assert.equal(named('vm.args', '## -sname commented\n-name ${RELEASE_NODE}@127.0.0.1\n'), null)
    assert.equal(named('vm.args', '# Name of the node\n  -name shop@127.0.0.1\n'), 'shop@127.0.0.1')
    assert.equal(named('vm.args.eex', '-sname shop\n'), 'shop')
    assert.equal(named('vm.args', `${'## padding\n'.repeat(600)}-sname big\n`), 'big', 'a vm.args over 4 KiB is read too')
  })

  test('a Distillery 2 layout (releases/VSN/libexec, bin/NAME execing NAME.sh) and an unknown script', () => {
    const dist = path.join(root, 'distillery')
    fs.mkdirSync(path.join(dist, 'releases', '1.0.0', 'libexec'), { recursive: true })
    fs.mkdirSync(path.join(dist, 'bin'))
    fs.writeFileSync(path.join(dist, 'bin', 'shop'), '#!/bin/sh\nexec "$RELEASES_DIR/$REL_VSN/$REL_NAME.sh" "$@"\n')
    fs.writeFileSync(path.join(dist, 'releases', '1.0.0', 'shop.sh'), '#!/usr/bin/env bash\n')
    assert.equal(detectKind(dist, 'shop', '1.0.0'), 'distillery')
    fs.rmSync(path.join(dist, 'releases', '1.0.0', 'libexec'), { recursive: true })
    assert.equal(detectKind(dist, 'shop', '1.0.0'), 'distillery', 'NAME.sh alone is enough')
    fs.writeFileSync(path.join(dist, 'bin', 'other'), '#!/bin/sh\nexec erl "$@"\n')
    assert.equal(detectKind(dist, 'other', '1.0.0'), 'unknown')
    assert.equal(detectKind(dist, 'missing', '1.0.0'), 'unknown')
  })

  test("each kind's commands, overrides on top, and the words for a command a kind lacks", () => {
    assert.deepEqual(resolveCommands('mix', {}), { start: 'start_iex', eval: 'eval', rpc: 'rpc', remote: 'remote', stop: 'stop', pid: 'pid' })
    assert.deepEqual(resolveCommands('relx', { start: 'foreground' }), { start: 'foreground', eval: null, rpc: 'eval', remote: 'remote_console', stop: 'stop', pid: 'pid' })
    assert.equal(commandFor('distillery', {}, 'eval', 'shop'), 'eval')
    assert.throws(() => commandFor('relx', {}, 'eval', 'relx_hello'), (err: unknown) => isBerthError(err) && err.code === 'COMMAND_UNSUPPORTED' && /running node.*commands\.eval.*bin\/relx_hello/.test(err.message))
    assert.equal(commandFor('relx', { eval: 'migrate' }, 'eval', 'relx_hello'), 'migrate')
    assert.match(unknownCommandHint('relx', 'foregrond', 'relx_hello', 'start'), /"foregrond" is not a command of bin\/relx_hello in a relx \(rebar3\) release \(it has foreground, console/)
    assert.equal(unknownCommandHint('relx', 'foreground', 'relx_hello', 'start'), '')
    assert.equal(unknownCommandHint('distillery', 'my_custom', 'shop', 'eval'), '', 'Distillery custom commands are never refused')
  })

  test('the commands setting holds overrides only; null puts the default back', () => {
    const set = mergeSettings(DEFAULT_SETTINGS, { commands: { start: 'foreground', pid: 'pid' } })
    assert.deepEqual(set.commands, { start: 'foreground', pid: 'pid' })
    assert.deepEqual(mergeSettings(set, { commands: { start: null } }).commands, { pid: 'pid' })
    assert.throws(() => mergeSettings(DEFAULT_SETTINGS, { commands: { boot: 'x' } }), /Unknown command "boot"/)
    assert.throws(() => mergeSettings(DEFAULT_SETTINGS, { requireMigration: 'yes' }), /requireMigration must be true or false/)
  })

  test('an answer of {badrpc, …} or an evaluation error is a failure; an ordinary answer is not', () => {
    assert.match(failedAnswer('{badrpc, nodedown}\n')!, /answered \{badrpc, nodedown\}/)
    assert.match(failedAnswer('{:badrpc, :timeout}')!, /badrpc/)
    assert.match(failedAnswer(`{error, "*** eval: {'EXIT',{boom,[]}}"}`)!, /failed on the node/)
    assert.equal(failedAnswer('{error, not_found}'), null, 'an expression may return an error tuple')
    assert.equal(failedAnswer('ok\n'), null)
    assert.equal(failedAnswer(''), null)
  })
})

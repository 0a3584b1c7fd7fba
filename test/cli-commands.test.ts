// The CLI covers the API: every operation of openapi.yaml is reached by a command (the map in
// src/cli/registry.ts, checked both ways), and every command's --help exits 0 and names each of its options.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadApiDocument } from '../src/http/openapi.js'
import { USAGE } from '../src/cli/main.js'
import { ALSO_REACHES, COMMANDS, LOCAL_COMMANDS, OPERATIONS, type CommandName } from '../src/cli/registry.js'
import { runCli } from './helpers/daemon.js'

const api = loadApiDocument()
const names = Object.keys(COMMANDS) as CommandName[]
const PLACEHOLDER = /^[A-Z][A-Z_=.]*$/

test('every operation in openapi.yaml is reached from the CLI, and the map names only real operations', () => {
  const documented = [...api.operations.keys()].sort()
  const mapped = Object.keys(OPERATIONS).sort()
  assert.deepEqual(documented.filter((id) => !mapped.includes(id)), [], 'operations no command reaches: add them to OPERATIONS in src/cli/registry.ts')
  assert.deepEqual(mapped.filter((id) => !documented.includes(id)), [], 'OPERATIONS names operations openapi.yaml does not have')
})

test('each mapped command exists and its help names the subcommand and flags used', async () => {
  for (const [id, reach] of Object.entries(OPERATIONS)) {
    if (typeof reach === 'string') {
      const [name, ...words] = reach.split(' ') as [CommandName, ...string[]]
      assert.ok(names.includes(name), `${id}: "${name}" is not a berth command`)
      const help = (await COMMANDS[name]()).help ?? (await runCli([name, '--help'])).stdout
      for (const w of words.filter((w) => !PLACEHOLDER.test(w))) assert.ok(help.includes(w), `${id}: berth ${name} --help does not mention "${w}"`)
    } else if ('alias' in reach) {
      assert.equal(typeof OPERATIONS[reach.alias], 'string', `${id} is an alias of ${reach.alias}, which a command must reach`)
      assert.equal(api.operations.get(id)!.path, api.operations.get(reach.alias)!.path, `${id} and ${reach.alias} are the same resource`)
    } else {
      // Pages are for a browser: they answer HTML (or its scripts and styles), not the JSON a command prints.
      const op = (api.doc.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>)[api.operations.get(id)!.path]!.get!
      const types = Object.keys(op.responses['200']?.content ?? {})
      assert.ok(types.some((t) => t === 'text/html' || t === 'text/javascript'), `${id} is listed as a page but answers ${types.join(', ')}`)
    }
  }
})

test('every client command reaches an operation; the top-level usage lists every command', () => {
  const reached = new Set(Object.values(OPERATIONS).flatMap((r) => (typeof r === 'string' ? [r.split(' ')[0]] : [])))
  for (const [name, also] of Object.entries(ALSO_REACHES)) {
    assert.ok(api.operations.has(also!.operation), `${name} reaches ${also!.operation}, which openapi.yaml does not have`)
    reached.add(name)
  }
  for (const name of names) {
    if (!LOCAL_COMMANDS.includes(name)) assert.ok(reached.has(name), `berth ${name} reaches no operation in OPERATIONS`)
    assert.match(USAGE, new RegExp(`^  ${name}\\b|[|] ${name}\\b`, 'm'), `berth --help does not list ${name}`)
  }
})

test('each command: --help exits 0, starts with its usage line and names every option it takes', async () => {
  const loaded = await Promise.all(names.map(async (name) => ({ name, command: await COMMANDS[name]() })))
  const runs = await Promise.all(loaded.map(({ name }) => runCli([name, '--help'], { BERTH_TOKEN: '' })))
  loaded.forEach(({ name, command }, i) => {
    const r = runs[i]!
    assert.equal(r.code, 0, `berth ${name} --help: ${r.stderr}`)
    assert.match(r.stdout, new RegExp(`^usage:\\s+berth ${name}\\b`), `berth ${name} --help starts with its usage`)
    if (command.help === null) return
    assert.equal(r.stdout, command.help, `berth ${name} --help prints the help its Command declares`)
    for (const option of Object.keys(command.options)) {
      if (option === 'help') continue
      assert.ok(r.stdout.includes(`--${option}`), `berth ${name} --help does not name --${option}`)
    }
  })
  const unknown = await runCli(['frobnicate'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /unknown command "frobnicate"/)
})

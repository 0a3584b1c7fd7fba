// The architecture as a test: the import graph of src/ has no cycles, no import points up the layer order,
// and only the HTTP edge and the CLI know Fastify. Reads the TypeScript sources, so it needs no build.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { REPO } from './helpers/fixtures.js'
import { stronglyConnected } from './helpers/architecture.js'

const SRC = path.join(REPO, 'src')

/** Bottom to top; a module may import its own layer and those before it. Root files are named by basename. */
export const LAYERS: string[][] = [
  ['root', 'errors', 'paths', 'fsutil', 'config', 'log', 'generated'],
  ['store'],
  // OS processes; the per-app haproxy (which asks for its routes through an injected function); the slot
  // state that owns those routes, and which reads a lost route back from haproxy's config.
  ['process'],
  // Each app's uid, its launcher (the argv every process of the app starts with), the ownership of its
  // directories, and its resource limits' cgroups; the limits are read from the settings by injection.
  ['isolation'],
  ['proxy'],
  ['instances'],
  ['auth', 'secrets'],
  ['apps', 'releases'],
  ['intake'],
  ['webhooks'],
  // The shared edge: its haproxy, certificates (custom and ACME), access logs; told its routes by injection.
  ['edge'],
  ['supervision'],
  ['deploy'],
  ['fleet'],
  ['sessions'],
  ['services'],
  ['http'],
  // The browser pages' code: it takes the API's types from generated, and nothing imports it (it is bundled).
  ['web'],
  ['cli'],
]

interface Edge {
  from: string
  to: string
  typeOnly: boolean
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return sources(p)
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : []
  })
}

/** Import and re-export statements with a relative specifier; `typeOnly` when no value crosses the edge. */
export function edgesOf(file: string, text: string): Edge[] {
  const edges: Edge[] = []
  const statement = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*'([^']+)'/gm
  const bare = /^\s*import\s+'([^']+)'/gm
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith('.')) return
    const to = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'))
    edges.push({ from: file, to, typeOnly })
  }
  for (const m of text.matchAll(statement)) {
    const [, , typeKeyword, clause, spec] = m
    let typeOnly = Boolean(typeKeyword)
    // import { type A, type B } from: every named specifier is a type, and no default import.
    const named = /^\{([^}]*)\}$/.exec(clause!.trim())
    if (!typeOnly && named) {
      const names = named[1]!.split(',').map((n) => n.trim()).filter(Boolean)
      typeOnly = names.length > 0 && names.every((n) => n.startsWith('type '))
    }
    add(spec!, typeOnly)
  }
  for (const m of text.matchAll(bare)) add(m[1]!, false)
  return edges
}

function layerOf(file: string): number {
  const rel = path.relative(SRC, file).split(path.sep)
  const name = rel.length === 1 ? path.basename(rel[0]!, '.ts') : rel[0]!
  const i = LAYERS.findIndex((l) => l.includes(name))
  assert.ok(i >= 0, `src/${rel.join('/')} is in no layer: add "${name}" to LAYERS in test/layers.test.ts`)
  return i
}

function graph(): { files: string[]; edges: Edge[] } {
  const files = sources(SRC)
  const edges = files.flatMap((f) => edgesOf(f, fs.readFileSync(f, 'utf8')))
  return { files, edges }
}

/** Every cycle's files: the architecture test's Tarjan, one copy for both. */
export const cycles = stronglyConnected

const rel = (f: string) => path.relative(REPO, f)

test('the checks themselves: a cycle and a type-only import are recognised', () => {
  assert.deepEqual(cycles(['a', 'b', 'c'], [{ from: 'a', to: 'b' }, { from: 'b', to: 'a' }, { from: 'b', to: 'c' }]).map((c) => c.sort()), [['a', 'b']])
  assert.deepEqual(cycles(['a', 'b'], [{ from: 'a', to: 'b' }]), [])
  const f = path.join(SRC, 'x', 'y.ts')
  const e = edgesOf(f, "import type { A } from '../a.js'\nimport { type B, c } from '../b.js'\nimport { type D } from '../d.js'\nexport * from './e.js'\n")
  assert.deepEqual(e.map((x) => [path.basename(x.to), x.typeOnly]), [['a.ts', true], ['b.ts', false], ['d.ts', true], ['e.ts', false]])
})

test('the value-import graph of src/ has no cycles', () => {
  const { files, edges } = graph()
  assert.ok(files.length > 40, 'found the sources')
  const found = cycles(files, edges.filter((e) => !e.typeOnly))
  assert.deepEqual(found.map((c) => c.map(rel).sort()), [])
})

test('no import points up the layer order (type imports included)', () => {
  const { edges } = graph()
  const up = edges.filter((e) => layerOf(e.to) > layerOf(e.from)).map((e) => `${rel(e.from)} -> ${rel(e.to)}`)
  assert.deepEqual(up, [])
})

test('route modules import only from below, never from each other', () => {
  const { edges } = graph()
  const routes = path.join(SRC, 'http', 'routes')
  const sideways = edges.filter((e) => path.dirname(e.from) === routes && path.dirname(e.to) === routes).map((e) => `${rel(e.from)} -> ${rel(e.to)}`)
  assert.deepEqual(sideways, [])
  const intoApp = edges.filter((e) => path.dirname(e.from) === routes && e.to === path.join(SRC, 'http', 'app.ts')).map((e) => rel(e.from))
  assert.deepEqual(intoApp, [], 'routes take their context from http/context.ts, not from the app that registers them')
})

test('only src/http and src/cli import fastify', () => {
  const offenders = sources(SRC)
    .filter((f) => !/^(http|cli)$/.test(path.relative(SRC, f).split(path.sep)[0]!))
    .filter((f) => /from\s+'(fastify|@fastify\/[^']+)'/.test(fs.readFileSync(f, 'utf8')))
    .map(rel)
  assert.deepEqual(offenders, [])
})

test('plain new Error( stays rare outside the error catalogue', () => {
  const plain = sources(SRC)
    .filter((f) => f !== path.join(SRC, 'errors.ts'))
    .flatMap((f) => [...fs.readFileSync(f, 'utf8').matchAll(/new Error\(/g)].map(() => rel(f)))
  assert.ok(plain.length <= 2, `at most 2 plain errors outside src/errors.ts, found: ${plain.join(', ')}`)
})

// Issue 24's done-when, kept true: src/ has no import cycle (type-only imports count), no hand-written file over
// 450 lines, no hand-written .js over 60, and generated files only under generated/. Reads sources, needs no build.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { cyclePaths, edgesOf, generatedOutside, importGraph, MAX_JS_LINES, MAX_LINES, oversized, oversizedJs } from './helpers/architecture.js'
import { REPO } from './helpers/fixtures.js'

const SRC = path.join(REPO, 'src')
const list = (lines: string[]) => lines.map((l) => `\n  ${l}`).join('')

describe('src/', () => {
  test('the import graph has no cycle, counting type-only imports and re-exports', () => {
    const { files, edges } = importGraph(SRC)
    assert.ok(files.length > 40 && edges.length > 100, 'found the sources and their imports')
    const cycles = cyclePaths(files, edges)
    assert.ok(cycles.length === 0, `import cycles in src/ (break each by moving what both sides need into a module both import):${list(cycles)}`)
  })

  test(`no hand-written source file is over ${MAX_LINES} lines`, () => {
    const big = oversized(SRC).map((f) => `src/${f.file}: ${f.lines} lines`)
    assert.ok(big.length === 0, `split these by concern (generated/ directories are exempt):${list(big)}`)
  })

  test(`no hand-written JavaScript over ${MAX_JS_LINES} lines: code of any size is TypeScript`, () => {
    const js = oversizedJs(SRC).map((f) => `src/${f.file}: ${f.lines} lines`)
    assert.ok(js.length === 0, `move these to TypeScript (browser code: src/web/, bundled at build time):${list(js)}`)
  })

  test('generated files live only under a generated/ directory', () => {
    const outside = generatedOutside(SRC).map((f) => `src/${f}`)
    assert.ok(outside.length === 0, `move these under src/generated/ and point their generator there:${list(outside)}`)
  })
})

describe('the checks themselves, on synthetic trees', () => {
  const roots: string[] = []
  after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })))
  const tree = (files: Record<string, string>): string => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-architecture-'))
    roots.push(root)
    for (const [name, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true })
      fs.writeFileSync(path.join(root, name), text)
    }
    return root
  }
  const lines = (n: number, prefix = '// line') => Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}`).join('\n') + '\n'
  const cyclesOf = (root: string) => {
    const { files, edges } = importGraph(root)
    return cyclePaths(files, edges)
  }

  test('a cycle closed by a multi-line `import type` is found and printed as a path', () => {
    const root = tree({
      'supervision/ledger.ts': "import {\n  type Proc,\n  type Pid,\n} from './proc.js'\nexport interface Entry { p: Proc; pid: Pid }\n",
      'supervision/proc.ts': "import type { Entry } from './ledger.js'\nexport type Proc = Entry\nexport type Pid = number\n",
      'root.ts': "export const ROOT = '/'\n",
    })
    assert.deepEqual(cyclesOf(root), ['supervision/ledger.ts -type→ supervision/proc.ts -type→ supervision/ledger.ts'])
  })

  test('re-exports, `import x = require()`, type queries and lazy import() are edges; packages and missing files are not', () => {
    const root = tree({
      'a.ts': "export * from './b.js'\n",
      'b.ts': "export { type C } from './c.js'\nimport fs = require('node:fs')\nexport const x = fs\n",
      'c.ts': "export type C = typeof import('./d.js').D\nimport 'fastify'\nimport './gone.js'\n",
      'd.ts': "export const D = 1\nexport const load = () => import('./a.js')\n",
    })
    const { edges } = importGraph(root)
    assert.deepEqual(
      edges.map((e) => `${e.from}>${e.to}${e.typeOnly ? ' type' : ''}${e.dynamic ? ' dynamic' : ''}`),
      ['a.ts>b.ts', 'b.ts>c.ts type', 'c.ts>d.ts type', 'd.ts>a.ts dynamic'],
    )
    assert.deepEqual(cyclesOf(root), ['a.ts → b.ts -type→ c.ts -type→ d.ts → a.ts'])
  })

  test('each cycle of a larger knot is printed once; a module importing itself is a cycle', () => {
    const root = tree({
      'x/a.ts': "import { b } from './b.js'\nimport { c } from '../y/c.js'\nexport const a = b + c\n",
      'x/b.ts': "import { a } from './a.js'\nexport const b = a\n",
      'y/c.ts': "import { a } from '../x/a.js'\nexport const c = a\n",
      'z.ts': "import { z as again } from './z.js'\nexport const z = again\n",
    })
    assert.deepEqual(cyclesOf(root).sort(), ['x/a.ts → x/b.ts → x/a.ts', 'x/a.ts → y/c.ts → x/a.ts', 'z.ts → z.ts'])
  })

  test('a tree without cycles has none, whatever it imports', () => {
    const root = tree({
      'a.ts': "import type { B } from './b.js'\nimport { c } from './c.js'\nexport const a: B = c\n",
      'b.ts': "import { c } from './c.js'\nexport type B = typeof c\n",
      'c.ts': 'export const c = 1\n',
      'web/page.js': "import { h } from './h.js'\nh()\n",
      'web/h.js': 'export function h() {}\n',
    })
    assert.deepEqual(cyclesOf(root), [])
    assert.ok(edgesOf(root, 'a.ts', fs.readFileSync(path.join(root, 'a.ts'), 'utf8')).some((e) => e.to === 'b.ts' && e.typeOnly))
  })

  test('a file of 451 lines is over the limit, 450 is not; a generated/ directory is exempt', () => {
    const root = tree({
      'deploy/big.ts': lines(451),
      'deploy/fits.ts': lines(450),
      'web/style.css': lines(451, '/* rule */'),
      'generated/api-types.ts': '// Generated by scripts/gen-api-types.mjs: do not edit.\n' + lines(3000),
      'deploy/no-final-newline.ts': lines(450).trimEnd(),
    })
    assert.deepEqual(oversized(root), [{ file: 'deploy/big.ts', lines: 451 }, { file: 'web/style.css', lines: 451 }])
  })

  test('hand-written .js over 60 lines is found, in any folder; 60 lines and generated/ are fine', () => {
    const root = tree({ 'http/assets/dashboard.js': lines(61), 'web/small.js': lines(60), 'tool.mjs': lines(61), 'generated/bundle.js': lines(500) })
    assert.deepEqual(oversizedJs(root), [{ file: 'http/assets/dashboard.js', lines: 61 }, { file: 'tool.mjs', lines: 61 }])
  })

  test('generated files outside generated/ are found by their header, their name or a generatedBy field', () => {
    const root = tree({
      'http/api-types.ts': 'export interface paths {}\n',
      'http/openapi-types.ts': '// Generated by scripts/gen-api-types.mjs (openapi-typescript).\nexport {}\n',
      'web/x.ts': '// @generated\nexport {}\n',
      'store/schema.json': JSON.stringify({ generatedBy: 'scripts/x.mjs', data: 1 }),
      'generated/openapi.json': JSON.stringify({ generatedBy: 'scripts/gen-api-types.mjs' }),
      'generated/y.ts': '// DO NOT EDIT\n',
      // Hand-written headers that merely mention the words.
      'http/context.ts': '// registers an operation typed from the same document (generated/api-types.ts).\n',
      'auth/tokens.ts': '// Tokens are generated with crypto.randomBytes and stored hashed.\n',
      'config.json': '{"a": 1}',
    })
    assert.deepEqual(generatedOutside(root), ['http/api-types.ts', 'http/openapi-types.ts', 'store/schema.json', 'web/x.ts'])
  })
})

// The checks behind test/architecture.test.ts (issue 24's done-when), as functions of a directory so that the
// test can run them on src/ and on small synthetic trees: import cycles, file sizes, where generated files live.

import fs from 'node:fs'
import path from 'node:path'
import ts from 'typescript'

/** What a human edits: the size limits apply to these. */
export const SOURCE_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.css', '.html']
/** Modules whose imports make the graph (browser scripts import each other too). */
const MODULE_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs']
const JS_EXTENSIONS = ['.js', '.mjs', '.cjs']
export const MAX_LINES = 450
export const MAX_JS_LINES = 60
export const GENERATED_DIR = 'generated'
/** Files known to be written by a script, whatever their first lines say (they were once outside generated/). */
const GENERATED_NAMES = new Set(['api-types.ts', 'openapi.json'])

export interface Edge {
  from: string
  to: string
  /** No value crosses: `import type`, `import { type A }`, `export type … from`, `import('…').T` in a type. */
  typeOnly: boolean
  /** `import('…')` called at run time (lazy loading). */
  dynamic: boolean
}

/** Every file below dir, relative to it with '/' separators, sorted. */
export function filesBelow(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) out.push(path.relative(dir, p).split(path.sep).join('/'))
    }
  }
  walk(dir)
  return out.sort()
}

const isDeclaration = (f: string) => /\.d\.[cm]?ts$/.test(f)
const inGenerated = (rel: string) => rel.split('/').slice(0, -1).includes(GENERATED_DIR)

/** Counted as a text editor counts: a final newline ends the last line instead of starting another. */
export function lineCount(text: string): number {
  if (text === '') return 0
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0)
}

/**
 * Whether a file says it was written by a program: a known generated name, a JSON document with a top-level
 * `generatedBy`, or one of the first three lines carrying the usual markers. Narrow on purpose: "generated/"
 * as a path, or "a generated certificate", in a hand-written header is not a marker.
 */
export function looksGenerated(rel: string, text: string): boolean {
  if (GENERATED_NAMES.has(path.posix.basename(rel))) return true
  if (rel.endsWith('.json')) {
    try {
      const doc = JSON.parse(text) as unknown
      return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'generatedBy' in doc
    } catch {
      return false
    }
  }
  const head = text.split('\n').slice(0, 3).join('\n')
  return /@generated\b|\bdo not edit\b|\b(auto-?)?generated (by|from|with)\b[^\n]*(scripts?\/|\.m?js\b|openapi-typescript|esbuild|protoc|tool)/i.test(head)
}

function scriptKind(file: string): ts.ScriptKind {
  return JS_EXTENSIONS.some((e) => file.endsWith(e)) ? ts.ScriptKind.JS : ts.ScriptKind.TS
}

/** Relative specifiers only: packages and node: builtins are outside the tree. NodeNext's '.js' names the '.ts'. */
function resolve(dir: string, fromRel: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(fromRel), spec))
  const candidates = [base]
  const swap: Record<string, string> = { '.js': '.ts', '.mjs': '.mts', '.cjs': '.cts' }
  for (const [js, tsExt] of Object.entries(swap)) if (base.endsWith(js)) candidates.unshift(base.slice(0, -js.length) + tsExt)
  candidates.push(`${base}.ts`, `${base}/index.ts`, `${base}/index.js`)
  for (const c of candidates) if (!c.startsWith('..') && fs.existsSync(path.join(dir, c)) && fs.statSync(path.join(dir, c)).isFile()) return c
  return null
}

/**
 * Every import and re-export of one module, read from its syntax tree (multi-line clauses, `import type`,
 * `export * from`, `import x = require()`, `import('…')` in a type or an expression).
 */
export function edgesOf(dir: string, rel: string, text: string): Edge[] {
  const source = ts.createSourceFile(rel, text, ts.ScriptTarget.Latest, true, scriptKind(rel))
  const edges: Edge[] = []
  const add = (spec: ts.Expression | undefined, typeOnly: boolean, dynamic = false) => {
    if (!spec || !ts.isStringLiteralLike(spec)) return
    const to = resolve(dir, rel, spec.text)
    if (to) edges.push({ from: rel, to, typeOnly, dynamic })
  }
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause
      let typeOnly = Boolean(clause?.isTypeOnly)
      // import { type A, type B } from: no value crosses when every name is a type and there is no default.
      if (clause && !typeOnly && !clause.name && clause.namedBindings && ts.isNamedImports(clause.namedBindings)) {
        const names = clause.namedBindings.elements
        typeOnly = names.length > 0 && names.every((n) => n.isTypeOnly)
      }
      add(node.moduleSpecifier, typeOnly)
    } else if (ts.isExportDeclaration(node)) {
      let typeOnly = node.isTypeOnly
      if (!typeOnly && node.exportClause && ts.isNamedExports(node.exportClause)) {
        const names = node.exportClause.elements
        typeOnly = names.length > 0 && names.every((n) => n.isTypeOnly)
      }
      add(node.moduleSpecifier, typeOnly)
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal as ts.Expression, true)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false, true)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return edges
}

/** The import graph of the modules below dir. */
export function importGraph(dir: string): { files: string[]; edges: Edge[] } {
  const files = filesBelow(dir).filter((f) => MODULE_EXTENSIONS.some((e) => f.endsWith(e)) && !isDeclaration(f))
  const edges = files.flatMap((f) => edgesOf(dir, f, fs.readFileSync(path.join(dir, f), 'utf8')))
  return { files, edges }
}

/** The strongly connected components with more than one module, or one that imports itself (Tarjan). */
export function stronglyConnected(nodes: string[], edges: { from: string; to: string }[]): string[][] {
  const out = new Map<string, string[]>()
  for (const e of edges) out.set(e.from, [...(out.get(e.from) ?? []), e.to])
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  let next = 0
  const visit = (v: string) => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const w of out.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1 || (out.get(v) ?? []).includes(v)) found.push(scc.sort())
    }
  }
  for (const n of nodes) if (!index.has(n)) visit(n)
  return found
}

/**
 * Each component as readable cycles: for every module in it, the shortest way back to itself, written
 * `a.ts → b.ts → a.ts` (an edge that carries only types is marked `-type→`), each cycle once.
 */
export function cyclePaths(nodes: string[], edges: Edge[]): string[] {
  const lines: string[] = []
  for (const scc of stronglyConnected(nodes, edges)) {
    const members = new Set(scc)
    const inside = edges.filter((e) => members.has(e.from) && members.has(e.to))
    const seen = new Set<string>()
    for (const start of scc) {
      // Breadth-first from start back to itself, inside the component only.
      const prev = new Map<string, Edge>()
      const queue = [start]
      while (queue.length > 0 && !prev.has(start)) {
        const v = queue.shift()!
        for (const e of inside) {
          if (e.from !== v || prev.has(e.to)) continue
          prev.set(e.to, e)
          queue.push(e.to)
        }
      }
      const chain: Edge[] = []
      for (let v = start; chain.length === 0 || v !== start; ) {
        const e = prev.get(v)!
        chain.unshift(e)
        v = e.from
      }
      // The same cycle is found from each of its modules: write it once, starting at its smallest module.
      const ring = chain.map((e) => e.from)
      const first = ring.indexOf([...ring].sort()[0]!)
      const rotated = [...chain.slice(first), ...chain.slice(0, first)]
      const key = rotated.map((e) => e.from).join('>')
      if (seen.has(key)) continue
      seen.add(key)
      lines.push([rotated[0]!.from, ...rotated.map((e) => `${e.typeOnly ? '-type→' : '→'} ${e.to}`)].join(' '))
    }
  }
  return lines
}

export interface Finding {
  file: string
  lines: number
}

/** Hand-written sources over the limit (generated/ directories excepted: a generator writes what it must). */
export function oversized(dir: string, limit = MAX_LINES, extensions = SOURCE_EXTENSIONS): Finding[] {
  return filesBelow(dir)
    .filter((f) => extensions.some((e) => f.endsWith(e)) && !isDeclaration(f) && !inGenerated(f))
    .map((f) => ({ file: f, lines: lineCount(fs.readFileSync(path.join(dir, f), 'utf8')) }))
    .filter((x) => x.lines > limit)
}

/** Hand-written JavaScript over MAX_JS_LINES: code of any size belongs in TypeScript, checked by tsc. */
export function oversizedJs(dir: string, limit = MAX_JS_LINES): Finding[] {
  return oversized(dir, limit, JS_EXTENSIONS)
}

/** Files that say they are generated but sit outside every generated/ directory. */
export function generatedOutside(dir: string): string[] {
  return filesBelow(dir).filter((f) => !inGenerated(f) && looksGenerated(f, fs.readFileSync(path.join(dir, f), 'utf8')))
}

// openapi.yaml is the single description of the HTTP contract: routes take their method, URL, validation
// schemas and required scope from it by operationId, so a route cannot exist without being documented.

import crypto from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import type { Scope } from '../auth/tokens.js'
import { problem } from '../errors.js'
import { fromRoot } from '../root.js'

export const OPENAPI_FILE = fromRoot('openapi.yaml')
/**
 * openapi.yaml already parsed, with the sha256 of the text it came from; written by scripts/gen-api-types.mjs
 * next to the types. Parsing the YAML was a fifth of berth's start; JSON.parse of the same is ~1 ms.
 */
export const OPENAPI_JSON_FILE = fromRoot('src', 'generated', 'openapi.json')

type Json = Record<string, unknown>

export interface Operation {
  operationId: string
  method: string
  /** OpenAPI form, e.g. /v1/apps/{app} */
  path: string
  /** Fastify form, e.g. /v1/apps/:app */
  url: string
  /** null: no authentication (healthz, the document itself). */
  scope: Scope | null
  schema: {
    params?: Json
    querystring?: Json
    body?: Json
    response?: Record<string, Json>
  }
}

export interface ApiDocument {
  text: string
  doc: Json
  operations: Map<string, Operation>
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const

export function loadApiDocument(file = OPENAPI_FILE): ApiDocument {
  const text = fs.readFileSync(file, 'utf8')
  const doc = (file === OPENAPI_FILE ? parsedBefore(text) : null) ?? (yaml().parse(text) as Json)
  const operations = new Map<string, Operation>()
  const nullables = new WeakMap<object, unknown>()
  const paths = (doc.paths ?? {}) as Record<string, Json>
  for (const [p, item] of Object.entries(paths)) {
    const shared = (item.parameters ?? []) as Json[]
    for (const m of METHODS) {
      const op = item[m] as Json | undefined
      if (!op) continue
      const id = op.operationId as string
      if (!id) throw problem('API_DOCUMENT_INVALID', `openapi.yaml: ${m.toUpperCase()} ${p} has no operationId`)
      if (operations.has(id)) throw problem('API_DOCUMENT_INVALID', `openapi.yaml: operationId ${id} is used twice`)
      const security = op.security as unknown[] | undefined
      const scope = security && security.length === 0 ? null : ((op['x-berth-scope'] as Scope | undefined) ?? null)
      if (!(security && security.length === 0) && !scope) throw problem('API_DOCUMENT_INVALID', `openapi.yaml: ${id} needs x-berth-scope or security: []`)
      operations.set(id, {
        operationId: id,
        method: m.toUpperCase(),
        path: p,
        url: p.replace(/\{([^}]+)\}/g, ':$1'),
        scope,
        schema: buildSchema(doc, [...shared, ...((op.parameters ?? []) as Json[])], op, nullables),
      })
    }
  }
  return { text, doc, operations }
}

/** The document from OPENAPI_JSON_FILE when that was made from exactly this text; null otherwise (stale, absent). */
function parsedBefore(text: string): Json | null {
  try {
    const cached = JSON.parse(fs.readFileSync(OPENAPI_JSON_FILE, 'utf8')) as { sha256?: string; document?: Json }
    return cached.sha256 === sha256(text) && cached.document ? cached.document : null
  } catch {
    return null
  }
}

export function sha256(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex')
}

/** The YAML parser, loaded only when the parsed copy cannot be used. */
function yaml(): { parse(text: string): unknown } {
  return createRequire(import.meta.url)('yaml') as { parse(text: string): unknown }
}

/**
 * Inlines `#/components/...` references; our schemas have no cycles. Each component is inlined once per
 * document and then shared by every place that refers to it (Ajv and fast-json-stringify only read schemas):
 * walking the same Deployment and Problem trees again for every route was most of what loading the document cost.
 */
export function deref(doc: Json, value: unknown, depth = 0, done = resolvedRefs(doc)): unknown {
  if (depth > 32) throw problem('API_DOCUMENT_INVALID', 'openapi.yaml: $ref nesting too deep')
  if (Array.isArray(value)) return value.map((v) => deref(doc, v, depth + 1, done))
  if (value && typeof value === 'object') {
    const ref = (value as Json).$ref
    if (typeof ref === 'string') {
      const known = done.get(ref)
      if (known !== undefined) return known
      const target = ref.replace(/^#\//, '').split('/').reduce<unknown>((o, k) => (o as Json | undefined)?.[k], doc)
      if (target === undefined) throw problem('API_DOCUMENT_INVALID', `openapi.yaml: unresolved $ref ${ref}`)
      const resolved = deref(doc, target, depth + 1, done)
      done.set(ref, resolved)
      return resolved
    }
    return Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, deref(doc, v, depth + 1, done)]))
  }
  return value
}

const refsOf = new WeakMap<Json, Map<string, unknown>>()
function resolvedRefs(doc: Json): Map<string, unknown> {
  let m = refsOf.get(doc)
  if (!m) refsOf.set(doc, (m = new Map()))
  return m
}

function objectOf(params: Json[]): Json | undefined {
  if (params.length === 0) return undefined
  return {
    type: 'object',
    properties: Object.fromEntries(params.map((p) => [p.name as string, p.schema as Json])),
    required: params.filter((p) => p.required).map((p) => p.name as string),
  }
}

function buildSchema(doc: Json, rawParams: Json[], op: Json, nullables: WeakMap<object, unknown>): Operation['schema'] {
  const params = rawParams.map((p) => deref(doc, p) as Json)
  const schema: Operation['schema'] = {}
  const path = objectOf(params.filter((p) => p.in === 'path'))
  const query = objectOf(params.filter((p) => p.in === 'query'))
  if (path) schema.params = path
  if (query) schema.querystring = query
  const json = ((op.requestBody as Json | undefined)?.content as Json | undefined)?.['application/json'] as Json | undefined
  if (json?.schema) schema.body = deref(doc, json.schema) as Json
  const responses: Record<string, Json> = {}
  for (const [code, r] of Object.entries((op.responses ?? {}) as Record<string, Json>)) {
    if (!code.startsWith('2')) continue
    const body = ((deref(doc, r) as Json).content as Json | undefined)?.['application/json'] as Json | undefined
    if (body?.schema) responses[code] = nullableTypes(deref(doc, body.schema), nullables) as Json
  }
  if (Object.keys(responses).length > 0) schema.response = responses
  return schema
}

/**
 * `oneOf: [{type: null}, S]` as `S` with `type: [S.type, null]`, for response schemas only. The two say the
 * same, but fast-json-stringify serializes a oneOf by running Ajv over the value on every answer (the whole
 * last deployment of GET /v1/apps/{app}, date-time formats included), and a type list by a typeof check.
 */
export function nullableTypes(value: unknown, done = new WeakMap<object, unknown>()): unknown {
  if (Array.isArray(value)) return value.map((v) => nullableTypes(v, done))
  if (!value || typeof value !== 'object') return value
  // Shared subtrees (see deref) are converted once and stay shared.
  if (done.has(value)) return done.get(value)
  const out = Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, nullableTypes(v, done)])) as Json
  const result = nullable(out)
  done.set(value, result)
  return result
}

function nullable(out: Json): Json {
  const alts = out.oneOf ?? out.anyOf
  if (!Array.isArray(alts) || alts.length !== 2) return out
  const isNull = (x: unknown) => (x as Json | null)?.type === 'null' && Object.keys(x as Json).length === 1
  const other = alts.find((x) => !isNull(x)) as Json | undefined
  if (!other || !alts.some(isNull) || typeof other.type !== 'string') return out
  const { oneOf: _o, anyOf: _a, ...rest } = out
  return { ...rest, ...other, type: [other.type, 'null'] }
}

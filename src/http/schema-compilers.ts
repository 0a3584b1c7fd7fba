// Fastify's own schema compilers (Ajv for input, fast-json-stringify for answers), each route's compiled on
// its first use instead of at boot, where compiling all of them was a third of berth's start.

import { createRequire } from 'node:module'
import type { FastifySchemaCompiler, FastifyServerOptions } from 'fastify'

type Factory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>
type RouteSchema = Parameters<FastifySchemaCompiler<unknown>>[0]
type Validate = ((data: unknown, cxt?: unknown) => unknown) & { errors?: unknown; schemaEnv?: unknown }
type Builder<R, F> = (external: unknown, options: unknown) => (route: R) => F

/** Resolved from fastify's own package, so these are exactly the versions (and Ajv) Fastify itself would use. */
const fromFastify = () => createRequire(createRequire(import.meta.url).resolve('fastify'))

/**
 * A compilersFactory equal to Fastify's default except that a route's validator and serializer are built
 * when a request first needs them (then kept), and Ajv and fast-json-stringify are loaded only then. An
 * invalid schema therefore fails on its route's first request (a 500 problem) instead of at boot;
 * test/openapi.test.ts compiles every route's schemas (`compileAll`) so that one never ships.
 */
export function lazyCompilers(): Factory & { compileAll(): number } {
  const pending = new Set<() => unknown>()
  const buildValidator = (external: unknown, options: unknown) => {
    let real: ReturnType<Builder<RouteSchema, Validate>> | null = null
    return (route: RouteSchema) => {
      let fn: Validate | null = null
      const compiled = (): Validate => {
        real ??= (fromFastify()('@fastify/ajv-compiler') as () => Builder<RouteSchema, Validate>)()(external, options)
        fn ??= real(route)
        pending.delete(compiled)
        return fn
      }
      pending.add(compiled)
      // Ajv keeps a failed validation's reasons on the function; Fastify reads them from the one it was given.
      const validate: Validate = function (data, cxt) {
        const f = compiled()
        const ok = f(data, cxt)
        validate.errors = f.errors
        return ok
      }
      // Fastify passes the parent data (so Ajv can coerce a root value) only to functions that have a schemaEnv.
      Object.defineProperty(validate, 'schemaEnv', { get: () => compiled().schemaEnv })
      return validate
    }
  }
  const buildSerializer = (external: unknown, options: unknown) => {
    let real: ReturnType<Builder<unknown, (data: unknown) => string>> | null = null
    return (route: unknown) => {
      let fn: ((data: unknown) => string) | null = null
      const compiled = () => {
        real ??= (fromFastify()('@fastify/fast-json-stringify-compiler') as () => Builder<unknown, (data: unknown) => string>)()(external, options)
        fn ??= real(route)
        pending.delete(compiled)
        return fn
      }
      pending.add(compiled)
      return (data: unknown) => compiled()(data)
    }
  }
  return {
    buildValidator: buildValidator as unknown as Factory['buildValidator'],
    buildSerializer: buildSerializer as unknown as Factory['buildSerializer'],
    /** Compiles every schema not compiled yet (for tests); answers how many it compiled. */
    compileAll: () => {
      const all = [...pending]
      for (const c of all) c()
      return all.length
    },
  }
}

// `berth health`, `berth metrics`, `berth openapi`, `berth whoami`: the agent itself and the token in use.
// health needs no token, so a probe or an install script can check that berth answers; metrics and the API
// document print as served.

import { safeLines } from '../safe-text.js'
import { parseArgs } from 'node:util'
import { pipeline } from 'node:stream/promises'
import { UsageError } from '../usage.js'
import { client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, SERVER_HELP, type Command } from './common.js'

const HEALTH_HELP = `usage: berth health

Asks berth whether it is up (GET /healthz: the daemon answers and its database does) and prints its
version. Needs no token. Exits 0 when berth is up, 1 when it does not answer.

${CONNECTION_HELP}
`

const METRICS_HELP = `usage: berth metrics

Prints berth's Prometheus metrics as served at /metrics (deployments by outcome, step durations, node
restarts and exits, app state, console sessions, uploads). Needs the read scope. The output is
Prometheus text (there is no --json).

${SERVER_HELP}
`

const OPENAPI_HELP = `usage: berth openapi

Prints the API document this berth serves (openapi.yaml, OpenAPI 3.1), e.g. to generate a client or
lint it. Needs no token. The output is YAML (there is no --json).

${SERVER_HELP}
`

const WHOAMI_HELP = `usage: berth whoami

Prints the token in use as berth sees it (GET /v1/token): its name, scopes, the apps it is limited to
and when it expires; never its secret. Needs the read scope.

${CONNECTION_HELP}
`

const { json: _json, ...TEXT_OPTIONS } = COMMON_OPTIONS

export const health: Command = {
  help: HEALTH_HELP,
  options: COMMON_OPTIONS,
  run: async (argv, env = process.env) => {
    const { values, positionals } = parse(argv, {})
    if (helped(values, HEALTH_HELP)) return 0
    if (positionals.length) throw new UsageError(`health takes no arguments, got ${positionals.join(' ')}`)
    const api = client(values, env, { anonymous: true })
    const answer = await api.request<{ status: string; version: string }>('GET', '/healthz')
    if (values.json) printJson(answer)
    else process.stdout.write(`berth ${answer.version} at ${api.baseUrl}: ${answer.status}\n`)
    return 0
  },
}

function text(name: string, help: string, path: string, anonymous: boolean): Command {
  return {
    help,
    options: TEXT_OPTIONS,
    run: async (argv, env = process.env) => {
      const { values, positionals } = parseArgs({ args: argv, options: TEXT_OPTIONS, allowPositionals: true, strict: true })
      if (helped(values, help)) return 0
      if (positionals.length) throw new UsageError(`${name} takes no arguments, got ${positionals.join(' ')}`)
      const res = await client(values, env, { anonymous }).stream(path, '*/*')
      try {
        await pipeline(res, safeLines(), process.stdout)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
      }
      return 0
    },
  }
}

export const metrics = text('metrics', METRICS_HELP, '/metrics', false)
export const openapi = text('openapi', OPENAPI_HELP, '/openapi.yaml', true)

interface TokenView {
  name: string
  scopes: string[]
  apps: string[] | null
  expiresAt: string | null
}

export const whoami: Command = {
  help: WHOAMI_HELP,
  options: COMMON_OPTIONS,
  run: async (argv, env = process.env) => {
    const { values, positionals } = parse(argv, {})
    if (helped(values, WHOAMI_HELP)) return 0
    if (positionals.length) throw new UsageError(`whoami takes no arguments, got ${positionals.join(' ')}`)
    const t = await client(values, env).request<TokenView>('GET', '/v1/token')
    if (values.json) printJson(t)
    else process.stdout.write(`${t.name}\nscopes:  ${t.scopes.join(', ')}\napps:    ${t.apps ? t.apps.join(', ') : 'every app'}\nexpires: ${t.expiresAt ?? 'never'}\n`)
    return 0
  },
}

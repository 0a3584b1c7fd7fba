// `berth pause APP`, `berth resume APP` and `berth edge`: the shared edge's pause of an app (503 with
// Retry-After and a maintenance page on all its hostnames) and the edge's status.

import fs from 'node:fs'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'
import { UsageError } from '../usage.js'

interface Pause {
  app: string
  paused: boolean
  retryAfterSeconds: number | null
}

const PAUSE_HELP = `usage: berth pause APP [--retry-after SECONDS] [--page FILE]

The edge answers every hostname of APP with 503, Retry-After (default 60 s) and the app's maintenance
page: FILE (HTML, kept for later pauses), else the one given before, else berth's own. The node keeps
running; berth resume APP ends it. Needs the operate scope.

${CONNECTION_HELP}
`

const RESUME_HELP = `usage: berth resume APP

Ends APP's pause: the edge sends its requests to the live instance again. Needs the operate scope.

${CONNECTION_HELP}
`

const EDGE_HELP = `usage: berth edge

The host's shared edge: its listeners, its haproxy, and each app it routes with its hostnames, TLS mode
and whether it is paused. Needs an admin token.

${CONNECTION_HELP}
`

export const pause: Command = {
  help: PAUSE_HELP,
  options: { ...COMMON_OPTIONS, 'retry-after': { type: 'string' }, page: { type: 'string' } },
  run: async (argv, env = process.env) => {
    const { values, positionals } = parse(argv, { 'retry-after': { type: 'string' }, page: { type: 'string' } })
    if (helped(values, PAUSE_HELP)) return 0
    const app = appArg(positionals[0], 'berth pause APP')
    const body: { retryAfterSeconds?: number; page?: string } = {}
    if (values['retry-after'] !== undefined) {
      if (!/^\d{1,5}$/.test(values['retry-after'])) throw new UsageError(`--retry-after must be whole seconds, got "${values['retry-after']}"`)
      body.retryAfterSeconds = Number(values['retry-after'])
    }
    if (values.page !== undefined) {
      try {
        body.page = fs.readFileSync(values.page, 'utf8')
      } catch (err) {
        throw new UsageError(`cannot read the page ${values.page}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      }
    }
    const out = await client(values, env).request<Pause>('POST', appPath(app, '/pause'), body)
    if (values.json) printJson(out)
    else console.log(`${app} is paused: the edge answers 503 with Retry-After ${out.retryAfterSeconds} s`)
    return 0
  },
}

export const resume: Command = {
  help: RESUME_HELP,
  options: COMMON_OPTIONS,
  run: async (argv, env = process.env) => {
    const { values, positionals } = parse(argv, {})
    if (helped(values, RESUME_HELP)) return 0
    const app = appArg(positionals[0], 'berth resume APP')
    const out = await client(values, env).request<Pause>('POST', appPath(app, '/resume'))
    if (values.json) printJson(out)
    else console.log(`${app} is not paused: the edge sends its requests to the live instance`)
    return 0
  },
}

interface EdgeAnswer {
  configured: boolean
  state?: string
  http?: string
  https?: string | null
  pid?: number | null
  supervisedBy?: string
  restarts?: number
  lastExit?: string | null
  apps?: { app: string; hosts: string[]; tls: string; paused: boolean }[]
}

export const edge: Command = {
  help: EDGE_HELP,
  options: COMMON_OPTIONS,
  run: async (argv, env = process.env) => {
    const { values, positionals } = parse(argv, {})
    if (helped(values, EDGE_HELP)) return 0
    if (positionals.length > 0) throw new UsageError(`edge takes no arguments, got ${positionals.join(' ')}`)
    const e = await client(values, env).request<EdgeAnswer>('GET', '/v1/edge')
    if (values.json) printJson(e)
    else if (!e.configured) console.log('no edge on this host (BERTH_EDGE_HTTP is not set)')
    else {
      console.log(`edge   ${e.state} on http ${e.http}${e.https ? `, https ${e.https}` : ''} (haproxy pid ${e.pid ?? '-'}, run by ${e.supervisedBy}, ${e.restarts} restart(s))`)
      if (e.lastExit) console.log(`last exit  ${e.lastExit}`)
      for (const a of e.apps ?? []) console.log(`${a.app.padEnd(20)} ${a.tls.padEnd(6)} ${a.paused ? 'PAUSED ' : ''}${a.hosts.join(' ')}`)
    }
    return 0
  },
}

// `berth events APP [--limit N]`: the app's audit trail, newest first: who did what, when, with what outcome;
// `berth events --follow [APP]`: the same events live, from the server-sent event stream GET /v1/events.

import { safeTree } from '../safe-text.js'
import type { Event } from '../api.js'
import { table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth events APP [--limit N]
       berth events --follow [APP]

APP's audit trail, newest first: AT (local time), ACTOR (the token's name, or berth itself), ACTION
(deploy, rollback, start, stop, restart, release.upload, env.update, node.exit, session.open, ...),
OUTCOME, and DETAIL (names only: environment values never reach the trail).
  --limit N    how many events (1 to 1000, default 100)
  -f, --follow print events as they happen, of APP or of every app the token may see, until
               interrupted or the token is revoked (with --json: one JSON object a line)

${CONNECTION_HELP}
`

const OPTIONS = { limit: { type: 'string' }, follow: { type: 'boolean', short: 'f' } } as const

export const command: Command = { help: HELP, options: { ...COMMON_OPTIONS, ...OPTIONS }, run: eventsCommand }

async function eventsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  if (helped(values, HELP)) return 0
  if (values.follow) return follow(values, positionals, env)
  const app = appArg(positionals[0], 'berth events APP [--limit N]')
  if (positionals.length > 1) throw new UsageError(`events takes one app, got ${positionals.join(' ')}`)
  let query = ''
  if (values.limit !== undefined) {
    if (!/^\d+$/.test(values.limit) || Number(values.limit) < 1 || Number(values.limit) > 1000) throw new UsageError(`--limit must be a whole number from 1 to 1000, not "${values.limit}"`)
    query = `?limit=${values.limit}`
  }
  const answer = await client(values, env).request<{ events: Event[] }>('GET', appPath(app, `/events${query}`))
  if (values.json) {
    printJson(answer)
    return 0
  }
  if (answer.events.length === 0) {
    process.stdout.write(`${app} has no events\n`)
    return 0
  }
  const rows = answer.events.map((e) => [when(e.at), e.actor ?? '-', e.action, e.outcome, e.detail ? summary(e.detail) : ''])
  process.stdout.write(table([['AT', 'ACTOR', 'ACTION', 'OUTCOME', 'DETAIL'], ...rows]))
  return 0
}

/** One line of `key=value` pairs, long values cut, so a table row stays a row. */
function summary(detail: Record<string, unknown>): string {
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v)
      return `${k}=${text.length > 60 ? `${text.slice(0, 57)}...` : text}`
    })
    .join(' ')
    .replace(/\s*\n\s*/g, ' ')
}

async function follow(values: ReturnType<typeof parse>['values'], positionals: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (positionals.length > 1) throw new UsageError(`events --follow takes at most one app, got ${positionals.join(' ')}`)
  if (values.limit !== undefined) throw new UsageError('--limit is for the past events; --follow prints new ones')
  const app = positionals[0] === undefined ? null : appArg(positionals[0], 'berth events --follow [APP]')
  const res = await client(values, env).stream(`/v1/events${app ? `?app=${app}` : ''}`, 'text/event-stream')
  let buffer = ''
  for await (const chunk of res) {
    buffer += (chunk as Buffer).toString('utf8')
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const type = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (!type || data === undefined) continue
      const body = safeTree(JSON.parse(data)) as Event & { reason?: string }
      if (type !== 'audit') {
        process.stderr.write(`berth: the event stream ended: ${body.reason ?? type}\n`)
        return type === 'end' && /shut/.test(body.reason ?? '') ? 0 : 1
      }
      if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`)
      else process.stdout.write(`${when(body.at)}  ${body.app}  ${body.actor ?? '-'}  ${body.action} ${body.outcome}${body.detail ? `  ${summary(body.detail)}` : ''}\n`)
    }
  }
  return 0
}

// `berth events APP [--limit N]`: the app's audit trail, newest first: who did what, when, with what outcome.

import type { Event } from '../api.js'
import { table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth events APP [--limit N]

APP's audit trail, newest first: AT (local time), ACTOR (the token's name, or berth itself), ACTION
(deploy, rollback, start, stop, restart, release.upload, env.update, node.exit, session.open, ...),
OUTCOME, and DETAIL (names only: environment values never reach the trail).
  --limit N    how many events (1 to 1000, default 100)

${CONNECTION_HELP}
`

const OPTIONS = { limit: { type: 'string' } } as const

export const command: Command = { help: HELP, options: { ...COMMON_OPTIONS, ...OPTIONS }, run: eventsCommand }

async function eventsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS)
  if (helped(values, HELP)) return 0
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

// `berth deployments APP [ID]`: the history of deployments, rollbacks and operations, or one of them with
// its steps and each step's output (the migration's console, what verification saw).

import type { Deployment } from '../api.js'
import { between, details, duration, table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth deployments APP
       berth deployments APP ID

Without ID: APP's deployments, rollbacks, starts, stops and restarts, newest first (the last 50): ID, KIND,
RELEASE, STATE, STARTED (local time), TOOK and BY (the token, or berth itself).
With ID: that one in detail: release and previous, state and reason, warnings, then every step with its
state, duration and output (the migration's console, what verification saw).

${CONNECTION_HELP}
`

export const command: Command = { help: HELP, options: COMMON_OPTIONS, run: deploymentsCommand }

async function deploymentsCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, {})
  if (helped(values, HELP)) return 0
  const app = appArg(positionals[0], 'berth deployments APP [ID]')
  const [id, ...extra] = positionals.slice(1)
  if (extra.length) throw new UsageError(`deployments takes an app and at most one id, got ${positionals.join(' ')}`)
  const api = client(values, env)
  if (id !== undefined) {
    const d = await api.request<Deployment>('GET', appPath(app, `/deployments/${encodeURIComponent(id)}`))
    if (values.json) printJson(d)
    else process.stdout.write(deploymentDetails(d))
    return 0
  }
  const answer = await api.request<{ deployments: Deployment[] }>('GET', appPath(app, '/deployments'))
  if (values.json) {
    printJson(answer)
    return 0
  }
  if (answer.deployments.length === 0) {
    process.stdout.write(`${app} has no deployments yet\n`)
    return 0
  }
  const rows = answer.deployments.map((d) => {
    const took = between(d.createdAt, d.finishedAt)
    return [d.id, d.kind, d.release, d.state, when(d.createdAt), took === null ? '-' : duration(took), d.actor ?? '-']
  })
  process.stdout.write(table([['ID', 'KIND', 'RELEASE', 'STATE', 'STARTED', 'TOOK', 'BY'], ...rows]))
  return 0
}

function deploymentDetails(d: Deployment): string {
  const took = between(d.createdAt, d.finishedAt)
  const pairs: [string, string][] = [
    ['id', d.id],
    ['kind', d.kind],
    ['release', d.release],
    ['previous', d.previous ?? '-'],
    ['state', d.state],
    ['reason', d.reason ?? '-'],
    ['started', `${when(d.createdAt)}${d.actor ? ` by ${d.actor}` : ''}`],
    ['took', took === null ? '- (not finished)' : duration(took)],
  ]
  if (d.rollout) pairs.push(['rollout', `${d.rollout} (berth fleet)`])
  for (const w of d.warnings) pairs.push(['warning', w])
  let text = details(pairs)
  text += `\nsteps:\n`
  if (d.steps.length === 0) text += '  (none yet)\n'
  for (const s of d.steps) {
    const ms = between(s.startedAt, s.endedAt)
    text += `  ${s.name} ... ${s.state}${ms === null || s.state === 'skipped' ? '' : ` (${duration(ms)})`}\n`
    const out = s.output.trimEnd()
    if (out) text += out.split('\n').map((l) => `      ${l}\n`).join('')
  }
  return text
}

// `berth status [APP]`: every app the token may see in a table, or one app's release, node and last deployment.

import type { App, AppSummary } from '../api.js'
import { details, duration, table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const HELP = `usage: berth status [APP]

Without APP: a table of the apps the token may see (NAME, CURRENT release, node STATE, UPTIME, RESTARTS,
RELEASES stored), then a line for each app whose last deployment failed or was rolled back (with its
reason) or whose node is crashed, in backoff or errored (with its last exit). With APP: its current release, node state, pids (run_erl and the BEAM), uptime,
restarts, last exit, health check and last deployment.
--json prints GET /v1/apps/APP, or without APP {"apps": [...]} with that object for every app.

${CONNECTION_HELP}
`

export const command: Command = { help: HELP, options: COMMON_OPTIONS, run: statusCommand }

async function statusCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, {})
  if (helped(values, HELP)) return 0
  if (positionals.length > 1) throw new UsageError(`status takes at most one app, got ${positionals.join(' ')}`)
  const api = client(values, env)
  if (positionals[0] !== undefined) {
    const app = await api.request<App>('GET', appPath(appArg(positionals[0], 'berth status [APP]')))
    if (values.json) printJson(app)
    else process.stdout.write(appDetails(app))
    return 0
  }
  const { apps: summaries } = await api.request<{ apps: AppSummary[] }>('GET', '/v1/apps')
  // The list has no node states; a host runs a handful of apps, so one request each is cheap.
  const apps = await Promise.all(summaries.map((s) => api.request<App>('GET', appPath(s.name))))
  if (values.json) {
    printJson({ apps })
    return 0
  }
  if (apps.length === 0) {
    process.stdout.write('no apps yet (an app exists from its first upload)\n')
    return 0
  }
  const rows = apps.map((a, i) => [a.name, a.current ?? '-', a.node.state, a.node.uptimeMs === null ? '-' : duration(a.node.uptimeMs), String(a.node.restarts), String(summaries[i]!.releases)])
  process.stdout.write(table([['NAME', 'CURRENT', 'STATE', 'UPTIME', 'RESTARTS', 'RELEASES'], ...rows]))
  const why = apps.flatMap(problems)
  if (why.length) process.stdout.write(`\n${why.join('')}`)
  return 0
}

const DOWN = new Set(['crashed', 'backoff', 'errored'])

/** Why an app is in trouble, a line each, so the overview says it without a second command. */
function problems(app: App): string[] {
  const lines: string[] = []
  const d = app.lastDeployment
  if (d && (d.state === 'failed' || d.state === 'rolled_back')) lines.push(`${app.name}: ${d.kind} of ${d.release} ${d.state}, ${when(d.createdAt)}: ${d.reason ?? 'no reason given'}\n`)
  if (DOWN.has(app.node.state)) lines.push(`${app.name}: node ${app.node.state}${app.node.lastExit ? `, last exit ${app.node.lastExit}` : ''}\n`)
  return lines
}

function appDetails(app: App): string {
  const { node } = app
  const pairs: [string, string][] = [
    ['app', app.name],
    ['current', app.current ?? '- (never deployed)'],
    ['node', node.release && node.release !== app.current ? `${node.state} (release ${node.release})` : node.state],
    ['pid', node.pid === null ? '-' : `${node.pid} (run_erl)${node.beamPid === null ? '' : `, beam ${node.beamPid}`}`],
    ['uptime', node.uptimeMs === null ? '-' : `${duration(node.uptimeMs)} (since ${when(node.startedAt).replace(/ \(.*$/, '')})`],
    ['restarts', String(node.restarts)],
    ['last exit', node.lastExit ?? '-'],
  ]
  if (node.health) {
    const h = node.health
    const state = h.ok === null ? 'not checked yet' : h.ok ? 'ok' : `failing (${h.consecutiveFailures} in a row${h.lastError ? `: ${h.lastError}` : ''})`
    pairs.push(['health', `${state}, ${h.url}`])
  }
  const p = app.proxy
  if (p) {
    const inst = (i: { slot: string; port: number; release: string | null; pid: number | null }) => `${i.release ?? '-'} in slot ${i.slot} on 127.0.0.1:${i.port}${i.pid === null ? '' : `, run_erl pid ${i.pid}`}`
    pairs.push(['proxy', `${p.listen} ${p.state}${p.pid === null ? '' : ` (haproxy pid ${p.pid})`}${p.restarts > 0 ? `, restarted ${p.restarts}x, last: ${p.lastExit ?? '-'}` : ''}`])
    pairs.push(['live', p.live ? inst(p.live) : '- (no instance takes traffic)'])
    if (p.starting) pairs.push(['starting', inst(p.starting)])
    if (p.draining) pairs.push(['draining', `${inst(p.draining)}, ${duration(p.draining.remainingMs)} left`])
  }
  const d = app.lastDeployment
  if (d) {
    pairs.push(['last deployment', `${d.kind} of ${d.release} ${d.state}, ${when(d.createdAt)}${d.actor ? ` by ${d.actor}` : ''}`])
    if (d.reason) pairs.push(['', d.reason])
  } else pairs.push(['last deployment', '-'])
  return details(pairs)
}

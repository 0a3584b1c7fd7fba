// `berth plan APP RELEASE` (and `berth deploy --dry-run`): asks berth what deploying a release would do and
// prints the plan. Nothing changes on the server; the exit code says whether the deploy would be refused.

import type { BerthClient } from '../client.js'
import type { Plan } from '../api.js'
import { UsageError } from '../usage.js'
import { appArg, appPath, client, COMMON_OPTIONS, CONNECTION_HELP, helped, parse, printJson, type Command } from './common.js'

const PLAN_HELP = `usage: berth plan APP RELEASE [--no-migrate]

Shows what deploying RELEASE (an id, or a version naming one release) to APP would do, and changes
nothing (POST /v1/apps/APP/deployments?dryRun=true): the steps, the migrate expression or why there is
none, the Ecto migrations the release adds and those current has that it lacks, which of vm.args,
sys.config, env.sh and runtime.exs differ (with a short diff), a change of ERTS or OTP, the command map,
and what would make the deploy fail now. Exits 0 when nothing would stop the deploy, 1 otherwise.

  --no-migrate   the plan of \`berth deploy --no-migrate\`: the migrating step shows as skipped, with why

${CONNECTION_HELP}
`

const PLAN_OPTIONS = { 'no-migrate': { type: 'boolean' } } as const

export const command: Command = { help: PLAN_HELP, options: { ...COMMON_OPTIONS, ...PLAN_OPTIONS }, run: planCommand }

export async function planCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parse(argv, PLAN_OPTIONS)
  if (helped(values, PLAN_HELP)) return 0
  const app = appArg(positionals[0], 'berth plan APP RELEASE')
  const release = positionals[1]
  if (!release) throw new UsageError('missing the release: berth plan APP RELEASE')
  if (positionals.length > 2) throw new UsageError(`plan takes an app and a release, got ${positionals.join(' ')}`)
  const plan = await fetchPlan(client(values, env), app, release, values['no-migrate'] ? { migrate: false } : {})
  if (values.json) printJson(plan)
  else process.stdout.write(formatPlan(plan))
  return plan.blockers.length === 0 ? 0 : 1
}

/** `options` as the deploy would send them (migrate: false changes the plan; rollout only tags the deploy). */
export function fetchPlan(api: BerthClient, app: string, release: string, options: { migrate?: boolean; rollout?: string } = {}): Promise<Plan> {
  return api.request<Plan>('POST', appPath(app, '/deployments?dryRun=true'), { release, ...options })
}

function indent(text: string, by = '    '): string {
  return text.trimEnd().split('\n').map((l) => `${by}${l}\n`).join('')
}

/** The plan as an operator reads it: what would happen first, what to look at after. */
export function formatPlan(p: Plan): string {
  const out: string[] = []
  out.push(`plan: deploy ${p.app} ${p.release}${p.current ? ` over ${p.current}` : ' (first deploy)'} — a dry run, nothing was changed\n`)
  if (p.kind) out.push(`kind: ${p.kind}\n`)
  out.push(`node: ${p.node.state}${p.node.release ? ` ${p.node.release}` : ''}${p.node.pid ? ` (pid ${p.node.pid})` : ''}\n`)
  out.push('steps:\n')
  const width = Math.max(...p.steps.map((s) => s.name.length))
  for (const s of p.steps) out.push(`  ${s.name.padEnd(width)}  ${s.runs.padEnd(10)}  ${s.detail}\n`)
  out.push(p.migrate.expr ? `migrate: ${p.migrate.expr}\n` : `migrate: none: ${p.migrate.reason}\n`)
  out.push(`migrations added: ${p.migrations.added.length ? p.migrations.added.join(', ') : 'none'}\n`)
  if (p.migrations.missing.length) out.push(`migrations current has that the release lacks: ${p.migrations.missing.join(', ')}\n`)
  if (!p.current) out.push('config: nothing to compare (no current release)\n')
  else if (p.config.length === 0) out.push('config: vm.args, sys.config, env.sh and runtime.exs are unchanged\n')
  for (const c of p.config) {
    out.push(`config ${c.file}: ${c.change}${c.diff === null ? ' (too large to show)' : ''}\n`)
    if (c.diff) out.push(indent(c.diff))
  }
  const rt = (v: { from: string | null; to: string | null; changed: boolean }) => (v.changed ? `${v.from ?? 'unknown'} -> ${v.to ?? 'unknown'}` : (v.to ?? 'unknown'))
  out.push(`runtime: ERTS ${rt(p.erts)}, OTP ${rt(p.otp)}${p.erts.changed || p.otp.changed ? '' : p.current ? ' (unchanged)' : ''}\n`)
  out.push(`commands: ${Object.entries(p.commands).map(([k, v]) => `${k}=${v ?? '(none)'}`).join(' ')}\n`)
  for (const w of p.warnings) out.push(`warning: ${w}\n`)
  for (const b of p.blockers) out.push(`would fail: ${b.message} (${b.code})\n`)
  return out.join('')
}

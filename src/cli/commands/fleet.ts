// `berth fleet deploy|status|rollback --fleet FILE`: the CLI as the conductor of a rollout over many hosts
// (src/fleet does the work). Progress a line per event, then one line per host; exit 0 only if all succeeded.

import crypto from 'node:crypto'
import fs from 'node:fs'
import { parseArgs } from 'node:util'
import { problem } from '../../errors.js'
import { DEFAULT_FOLLOW, type Deployment, type FollowOptions } from '../../fleet/agent.js'
import { hostTokens, parseFleet, type Fleet, type FleetOverrides } from '../../fleet/file.js'
import { deployFleet, rollbackFleet, type HostResult, type RolloutEvent, type RolloutResult } from '../../fleet/rollout.js'
import { fleetStatus, type FleetStatus } from '../../fleet/status.js'
import { ROLLOUT_ID } from '../../paths.js'
import { HttpAgent } from '../fleet-agent.js'
import { between, bytes, duration, table, when } from '../format.js'
import { UsageError } from '../usage.js'
import { caArg, printJson, type Command } from './common.js'

const HELP = `usage: berth fleet deploy TARBALL --fleet FILE [--canary N] [--batch N|P%] [--migrate once|every]
       berth fleet status --fleet FILE
       berth fleet rollback --fleet FILE [--to ID]

Rolls a release over every host of a fleet file, each host's berth being the truth for that host:

  deploy     uploads TARBALL to every host first, in parallel (a host that cannot take it stops the
             rollout before anything changes); hosts already on the release are skipped, so running
             it again resumes a halted or interrupted rollout. Then the canary hosts one at a time, the
             first with the migration, then the rest in batches, without it when migrate is once.
             The first failed or rolled back deployment, or a host that stops answering, halts it: no
             further host is touched and every host this rollout moved is put back.
  status     one row per host: reachable, current release and version, node state, last deployment
             and its rollout; a host on another release than most of the fleet is marked with *.
             Exits 0 even when a host is unreachable (its row says so).
  rollback   every host back to --to ID (an id or a version), or to the release the fleet ran before,
             canary first and then batch by batch; stops at the first failure. No migrations run.

  --fleet FILE           the fleet file (YAML: app, hosts with name, url and tokenEnv, canary, batch,
                         migrate, deadline)
  --canary N             override the file's canary (hosts deployed first, one at a time)
  --batch N|P%           override the file's batch (hosts at a time, or a share of the fleet)
  --migrate once|every   override the file's migrate
  --deadline DURATION    the longest one host's deployment may take (30m, 90s, 1h; default the file's
                         deadline, else 30m); past it the host is failed and the rollout halts
  --to ID                rollback: the release to go back to
  --rollout ID           tag the deployments with this rollout id (default: the interrupted rollout's
                         own when resuming, else a new one)
  --json                 the result as JSON on stdout (progress goes to stderr)
  --cacert FILE          PEM certificates (a self-signed one, or a private CA) to trust for the hosts'
                         https:// URLs instead of the system's; or BERTH_CA_FILE

Each host's token comes from the environment variable its tokenEnv names (default BERTH_TOKEN); tokens
are never printed. Exits 0 when every host succeeded (or was already on the release), 1 on a halt with
a summary line per host, 2 when the arguments or the fleet file are wrong.

An agent is trusted with nothing: each answer must have its route's shape and at most 8 MiB, and come
within BERTH_FLEET_TIMEOUT_MS (default 60000) of silence, headers and body alike; a host that breaks any
of these, or whose deployment outlives the deadline, is a failed host (INVALID_RESPONSE,
ANSWER_TOO_LARGE, TIMEOUT, DEPLOYMENT_DEADLINE). Text from agents is printed as a terminal would show it,
escape sequences rendered and CI workflow commands (::error::, ##vso[) defused.
`

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  fleet: { type: 'string' },
  canary: { type: 'string' },
  batch: { type: 'string' },
  migrate: { type: 'string' },
  to: { type: 'string' },
  rollout: { type: 'string' },
  deadline: { type: 'string' },
  cacert: { type: 'string' },
} as const

export const command: Command = { help: HELP, options: OPTIONS, run: fleetCommand }

/** How the CLI follows each host's deployment; a test may shorten the grace with BERTH_FLEET_UNREACHABLE_MS. */
function followOptions(env: NodeJS.ProcessEnv, fleet: Fleet): FollowOptions {
  const grace = Number(env.BERTH_FLEET_UNREACHABLE_MS)
  return { ...DEFAULT_FOLLOW, deadlineMs: fleet.deadlineMs, ...(Number.isFinite(grace) && grace > 0 ? { unreachableMs: grace } : {}) }
}

/** Silence allowed per request to an agent, and the time an answer's body may take (BERTH_FLEET_TIMEOUT_MS, default 60 s). */
function requestTimeout(env: NodeJS.ProcessEnv): number | undefined {
  const ms = Number(env.BERTH_FLEET_TIMEOUT_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : undefined
}

async function fleetCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  const [sub, ...args] = positionals
  if (sub !== 'deploy' && sub !== 'status' && sub !== 'rollback') throw new UsageError('fleet needs deploy, status or rollback: berth fleet deploy TARBALL --fleet FILE')
  if (!values.fleet) throw new UsageError(`missing --fleet FILE: berth fleet ${sub} --fleet FILE`)
  if (values.rollout !== undefined && !ROLLOUT_ID.test(values.rollout)) throw new UsageError(`--rollout must be 1 to 64 letters, digits, ".", "_" or "-", not "${values.rollout.slice(0, 80)}"`)
  if (sub !== 'rollback' && values.to !== undefined) throw new UsageError('--to belongs to berth fleet rollback')
  if (sub === 'status' && (values.canary ?? values.batch ?? values.migrate ?? values.rollout ?? values.deadline) !== undefined) throw new UsageError('fleet status takes only --fleet, --cacert and --json')
  const ca = caArg(values.cacert ?? (env.BERTH_CA_FILE || undefined))
  if (sub !== 'deploy' && values.migrate !== undefined) throw new UsageError('--migrate belongs to berth fleet deploy (a rollback runs no migration)')
  const expected = sub === 'deploy' ? 1 : 0
  if (args.length !== expected) throw new UsageError(sub === 'deploy' ? 'fleet deploy takes one tarball: berth fleet deploy TARBALL --fleet FILE' : `fleet ${sub} takes no file but the --fleet one`)

  let fleet: Fleet
  let tokens: Map<string, string>
  try {
    fleet = loadFleet(values.fleet, { canary: values.canary, batch: values.batch, migrate: values.migrate, deadline: values.deadline })
    tokens = hostTokens(fleet, env)
  } catch (err) {
    // A wrong file or a missing variable is an argument error: nothing was touched.
    const e = err as { code?: string; message: string }
    if (e.code === 'FLEET_FILE_INVALID' || e.code === 'FLEET_TOKEN_MISSING') {
      process.stderr.write(`berth: ${e.message} (${e.code})\n`)
      return 2
    }
    throw err
  }
  const agents = fleet.hosts.map((h) => new HttpAgent(h, fleet.app, tokens.get(h.name)!, { timeoutMs: requestTimeout(env), ca }))
  const json = !!values.json
  const out = json ? process.stderr : process.stdout

  if (sub === 'status') {
    const status = await fleetStatus(fleet, agents)
    if (json) printJson(status)
    else process.stdout.write(formatStatus(status))
    return 0
  }

  const onEvent = progress(out, fleet)
  // Ctrl+C leaves each agent to finish the deployment it runs; the same command again resumes from there.
  const onInterrupt = () => {
    out.write(`\ninterrupted: deployments already started go on in their agents; run the same command again to resume (berth fleet status --fleet ${values.fleet})\n`)
    process.exit(130)
  }
  process.once('SIGINT', onInterrupt)
  let r: RolloutResult
  if (sub === 'deploy') {
    const file = args[0]!
    if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`${file} is not a file`)
    out.write(`uploading ${file} to ${fleet.hosts.length} host${fleet.hosts.length === 1 ? '' : 's'} of ${fleet.app}\n`)
    r = await deployFleet({ fleet, agents, file, sha256: await sha256File(file), rollout: values.rollout, follow: followOptions(env, fleet), onEvent })
  } else {
    r = await rollbackFleet({ fleet, agents, to: values.to, rollout: values.rollout, follow: followOptions(env, fleet), onEvent })
  }
  process.off('SIGINT', onInterrupt)
  if (json) printJson(r)
  else out.write(formatSummary(r))
  return r.ok ? 0 : 1
}

function loadFleet(file: string, overrides: FleetOverrides): Fleet {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw problem('FLEET_FILE_INVALID', `${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  return parseFleet(text, file, overrides)
}

/**
 * One line per event: a host's upload progress at most every 2 s (a quick one shows only its end), each
 * host's deployment as it starts, each of its steps as it ends, its outcome, the halt and the putting back.
 */
function progress(out: NodeJS.WritableStream, fleet: Fleet): (e: RolloutEvent) => void {
  const lastDrawn = new Map<string, number>()
  const shownSteps = new Map<string, number>()
  const latest = new Map<string, Deployment>()
  const width = Math.max(...fleet.hosts.map((h) => h.name.length))
  const line = (host: string, text: string) => out.write(`${host.padEnd(width)}  ${text}\n`)
  const started = Date.now()
  const took = (d: Deployment | undefined) => {
    const ms = d ? between(d.createdAt, d.finishedAt) : null
    return ms === null ? '' : ` in ${duration(ms)}`
  }
  return (e) => {
    switch (e.type) {
      case 'upload': {
        const now = Date.now()
        if (e.sent >= e.total || now - (lastDrawn.get(e.host) ?? started) < 2000) break
        lastDrawn.set(e.host, now)
        line(e.host, `upload ${Math.floor((e.sent / Math.max(e.total, 1)) * 100)}% of ${bytes(e.total)}`)
        break
      }
      case 'uploaded':
        line(e.host, `${e.created ? 'uploaded' : 'already had'} ${e.release}`)
        break
      case 'plan': {
        const order = e.phases.map((p) => p.hosts.map((h) => (p.migrate.includes(h) ? `${h} (migrates)` : h)).join(' + ')).join(', then ')
        out.write(`rollout ${e.rollout} of ${e.release}: ${order || 'nothing to do'}${e.skipped.length ? `; already on it: ${e.skipped.join(', ')}` : ''}\n`)
        break
      }
      case 'start':
        shownSteps.set(e.host, 0)
        latest.set(e.host, e.deployment)
        line(e.host, `${e.deployment.kind === 'deploy' ? 'deploying' : e.deployment.kind === 'stop' ? 'stopping' : 'rolling back to'} ${e.deployment.release}${e.deployment.kind === 'deploy' && !e.migrate ? ' without migrating' : ''} (deployment ${e.deployment.id})`)
        break
      case 'step': {
        latest.set(e.host, e.deployment)
        const steps = e.deployment.steps
        let i = shownSteps.get(e.host) ?? 0
        for (; i < steps.length && steps[i]!.state !== 'running'; i++) {
          const ms = between(steps[i]!.startedAt, steps[i]!.endedAt)
          line(e.host, `  ${steps[i]!.name} ${steps[i]!.state}${ms === null || steps[i]!.state === 'skipped' ? '' : ` (${duration(ms)})`}`)
        }
        shownSteps.set(e.host, i)
        break
      }
      case 'end':
        line(e.host, `${e.result.outcome}${e.result.outcome === 'done' ? took(latest.get(e.host)) : ''}${e.result.reason ? `: ${e.result.reason}` : ''}`)
        break
      case 'halt':
        out.write(`halted at ${e.halt.host} (${e.halt.code}); no further host is touched\n`)
        break
      case 'put-back':
        line(e.host, e.to ? `putting back ${e.to}` : 'stopping the node (it ran no release before)')
        break
    }
  }
}

/** One line per host, then the verdict. */
export function formatSummary(r: RolloutResult): string {
  const row = (h: HostResult) => [h.host, h.outcome, h.release ?? '-', h.before ? `was ${h.before}` : '-', h.reason ? `${h.reason}${h.code ? ` (${h.code})` : ''}` : '']
  const head = `\n${r.kind} ${r.rollout}${r.release ? ` of ${r.release}` : ''}:\n`
  const verdict = r.ok
    ? `succeeded on every host (${r.hosts.filter((h) => h.outcome === 'skipped').length} already on it)\n`
    : `halted at ${r.halted?.host ?? '?'}: ${r.halted?.reason ?? 'not every host succeeded'} (${r.halted?.code ?? 'FAILED'})\n`
  return head + table([['HOST', 'OUTCOME', 'RELEASE', 'BEFORE', 'REASON'], ...r.hosts.map(row)]) + verdict
}

function formatStatus(s: FleetStatus): string {
  const rows = s.hosts.map((h) => [
    `${h.differs ? '*' : ' '}${h.host}`,
    h.reachable ? (h.error ? `refused: ${h.error.code}` : 'yes') : `no (${h.error?.code ?? 'unreachable'})`,
    h.current ?? '-',
    h.version ?? '-',
    h.node ?? '-',
    h.lastDeployment ? `${h.lastDeployment.kind} ${h.lastDeployment.release} ${h.lastDeployment.state} ${when(h.lastDeployment.createdAt)}` : '-',
    h.lastDeployment?.rollout ?? '-',
  ])
  const note = s.hosts.some((h) => h.differs) ? `* runs another release than most of the fleet (${s.majority})\n` : ''
  return table([[' HOST', 'REACHABLE', 'CURRENT', 'VERSION', 'NODE', 'LAST DEPLOYMENT', 'ROLLOUT'], ...rows]) + note + `${s.reachable} of ${s.hosts.length} hosts reachable\n`
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256')
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}
